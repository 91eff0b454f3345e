"""The published thesis replication (docs/results/thesis_cnn): pooled ρ recomputed with SciPy from
the raw scores, the seed-level findings by an independent resampling, the table against its
intervals."""

import pathlib

import numpy as np
import pandas as pd
from scipy import stats

D = pathlib.Path(__file__).resolve().parents[1] / "docs" / "results" / "thesis_cnn"
NOISE = ("mnist_noise", "mnist_noise_struct")
BASELINES = ("scratch", "random_init")


def _last(t):
  return t[t["step"] == t.groupby("source")["step"].transform("max")]


def test_pooled_rsa_recomputed_with_scipy():
  """Seeds averaged per checkpoint, step-0 copies (one network for every source) merged."""
  scores = pd.read_csv(D / "scores_pool2.csv")
  gt = pd.read_csv(D / "analysis_ground_truth.csv")
  gt = gt[(gt["setting"] == "full") & ~gt["source"].isin(BASELINES)]
  corr = pd.read_csv(D / "analysis_correlations_all.csv")
  for target in ("mnist", "fashion_mnist"):
    s = scores[(scores["target"] == target) & (scores["score"] == "rsa")]
    s = s[s["layer"] == "pool2"].groupby(["source", "step"])["value"].mean()
    y = gt[gt["target"] == target].groupby(["source", "step"])["log_auc"].mean()
    j = pd.concat([s.rename("x"), y.rename("y")], axis=1, join="inner").reset_index()
    init = j[j["step"] == 0]
    assert np.ptp(init["x"]) < 1e-6 * max(1.0, abs(init["x"]).max())  # one network
    j = pd.concat([j[j["step"] > 0], init.iloc[:1]])
    row = corr[(corr["target"] == target) & (corr["layer"] == "pool2") & (corr["score"] == "rsa")
               & (corr["setting"] == "full") & (corr["probe"] == "train")].iloc[0]  # fmt: skip
    assert int(row["n"]) == len(j)
    np.testing.assert_allclose(row["spearman"], stats.spearmanr(j["x"], j["y"]).statistic,
                               atol=1e-9)  # fmt: skip


def _seed_means(target, score=None):
  if score is None:
    t = pd.read_csv(D / "analysis_ground_truth.csv")
    t = t[(t["target"] == target) & (t["setting"] == "full") & ~t["source"].isin(BASELINES)]
    col = "log_auc"
  else:
    t = pd.read_csv(D / "scores_pool2.csv")
    t = t[(t["target"] == target) & (t["layer"] == "pool2") & (t["score"] == score)]
    col = "value"
  return {s: g[col].to_numpy() for s, g in _last(t).groupby("source")}


def _check(row, values, statistic):
  point = statistic({s: v.mean() for s, v in values.items()})
  rng = np.random.default_rng(777)
  boot = [
    statistic({s: v[rng.choice(len(v), len(v))].mean() for s, v in values.items()})
    for _ in range(2_000)
  ]
  lo, hi = np.percentile(boot, [2.5, 97.5])
  assert f"{point:+.4f} [" in row["jtransfer"]
  pub_lo, pub_hi = (float(x) for x in row["jtransfer"].split(f"{point:+.4f} [")[1]
                    .split("]")[0].split(","))  # fmt: skip
  width = max(hi - lo, 1e-9)
  assert abs(pub_lo - lo) < 0.15 * width and abs(pub_hi - hi) < 0.15 * width
  assert row["decided"] == ("yes" if pub_lo > 0 or pub_hi < 0 else "no")


def test_seed_level_findings_recomputed():
  t = pd.read_csv(D / "findings.csv", keep_default_na=False)
  for target in ("mnist", "fashion_mnist"):
    la = _seed_means(target)
    assert min(len(v) for v in la.values()) >= 10  # the thesis' 10 seeds
    others = [s for s in la if s not in NOISE]
    row = t[t["claim"] == f"the noise sources transfer worst ({target})"].iloc[0]
    _check(row, la, lambda m, o=others: min(m[s] for s in o) - max(m[s] for s in NOISE))
  ident = _seed_means("mnist", "two_nn")
  row = t[t["claim"].str.startswith("pool2 ID on MNIST is highest")].iloc[0]
  _check(
    row, ident, lambda m: m["mnist_noise"] - max(v for s, v in m.items() if s != "mnist_noise")
  )


def test_findings_markdown_matches_csv():
  t = pd.read_csv(D / "findings.csv", keep_default_na=False)
  md = (D / "findings.md").read_text()
  assert len(t) == 11
  for r in t.itertuples(index=False):
    assert f"| {r.claim} | {r.paper} | {r.jtransfer} | {r.decided} | {r.agrees} |" in md

"""The published NC-paper comparison (docs/results/nc_paper): every ρ recomputed with SciPy from
the committed per-checkpoint scores, the paired differences' intervals by an independent cluster
bootstrap, and the findings' verdicts from their intervals."""

import pathlib

import numpy as np
import pandas as pd
from scipy import stats

D = pathlib.Path(__file__).resolve().parents[1] / "docs" / "results" / "nc_paper"
KEYS = ["source", "arch", "step"]


def _wide(target, layer):
  s = pd.read_csv(D / "images_scores.csv")
  g = s[(s["target"] == target) & (s["layer"] == layer)]
  wide = g.pivot_table(index=KEYS, columns="score", values="oriented")
  truth = g.groupby(KEYS)[["log_auc", "final_acc"]].mean().reindex(wide.index)
  return wide, truth


def test_rho_recomputed():
  rho = pd.read_csv(D / "images_rho.csv")
  assert len(rho) == 2 * 2 * 2 * 3  # targets x layers x truths x scores
  for r in rho.itertuples():
    wide, truth = _wide(r.target, r.layer)
    expected = stats.spearmanr(wide[r.score], truth[r.truth]).statistic
    np.testing.assert_allclose(r.rho, expected, atol=1e-12)
    assert r.n == len(wide) and r.n_clusters == wide.index.get_level_values("source").nunique()


def test_nc_is_oriented_lower_is_better():
  s = pd.read_csv(D / "images_scores.csv")
  nc = s[s["score"] == "nc_score"]
  np.testing.assert_allclose(nc["oriented"], -nc["value"], atol=1e-12)


def test_paired_differences_resampled_independently():
  vs = pd.read_csv(D / "images_versus.csv")
  rng = np.random.default_rng(2024)
  for r in vs[(vs["layer"] == "fc1") & (vs["truth"] == "final_acc")].itertuples():
    wide, truth = _wide(r.target, r.layer)
    x1, x2, y = wide["nc_score"].to_numpy(), wide[r.other].to_numpy(), truth[r.truth].to_numpy()
    src = wide.index.get_level_values("source").to_numpy()
    clusters = np.unique(src)
    members = [np.flatnonzero(src == c) for c in clusters]
    diffs = []
    for _ in range(1_000):
      idx = np.concatenate([members[k] for k in rng.integers(0, len(clusters), len(clusters))])
      a = stats.spearmanr(x1[idx], y[idx]).statistic
      b = stats.spearmanr(x2[idx], y[idx]).statistic
      diffs.append(a - b)
    lo, hi = np.nanpercentile(diffs, [2.5, 97.5])
    np.testing.assert_allclose(
      r.diff, stats.spearmanr(x1, y).statistic - stats.spearmanr(x2, y).statistic, atol=1e-12
    )
    width = hi - lo
    assert abs(r.diff_lo - lo) < 0.2 * width and abs(r.diff_hi - hi) < 0.2 * width, (r, lo, hi)


def _row(t, text, target):
  claim = t["claim"]
  return t[claim.str.contains(text) & claim.str.contains(f"({target},", regex=False)]


def test_findings_follow_their_intervals():
  t = pd.read_csv(D / "findings.csv", keep_default_na=False)
  rho = pd.read_csv(D / "images_rho.csv")
  vs = pd.read_csv(D / "images_versus.csv")
  for target in ("mnist", "fashion_mnist"):
    nc = rho[(rho["target"] == target) & (rho["layer"] == "fc1") & (rho["truth"] == "final_acc")
             & (rho["score"] == "nc_score")].iloc[0]  # fmt: skip
    row = _row(t, "near-perfectly", target)
    assert row["agrees"].iloc[0] == ("yes" if nc.lo >= 0.8 else "no" if nc.hi < 0.8 else "–")
    v = vs[(vs["target"] == target) & (vs["layer"] == "fc1") & (vs["truth"] == "final_acc")
           & (vs["other"] == "leep")].iloc[0]  # fmt: skip
    row = _row(t, "better than LEEP", target)
    expected = "yes" if v.diff_lo > 0 else "no" if v.diff_hi < 0 else "–"
    assert row["agrees"].iloc[0] == expected
    assert f"{v['diff']:+.2f} [{v.diff_lo:+.2f}, {v.diff_hi:+.2f}]" in row["jtransfer"].iloc[0]


def test_findings_markdown_matches_csv():
  t = pd.read_csv(D / "findings.csv", keep_default_na=False)
  md = (D / "findings.md").read_text()
  for r in t.itertuples(index=False):
    assert f"| {r.claim} | {r.paper} | {r.jtransfer} | {r.decided} | {r.agrees} |" in md


def test_audio_rows_recomputed():
  """Every audio row's r and Fisher-z interval from the committed audio_nc comparison (final
  models, the classifier's input or no layer, AUROC on the binary target), none decided."""
  nc = pd.read_csv(D / "audio_nc_comparison.csv")
  t = pd.read_csv(D / "findings.csv", keep_default_na=False)
  audio = t[t["claim"].str.endswith(", audio)")]
  cells = nc[(nc["checkpoint"] == "final") & nc["layer"].isin(["embedding", "-"])
             & nc["score"].isin(["nc_score", "logme", "leep"])]  # fmt: skip
  binary = cells["target"] == "fsdd_zero_vs_rest_spk45"
  cells = cells[np.where(binary, cells["metric"] == "test_auroc", cells["metric"] == "test_acc")]
  assert len(audio) == len(cells) == 3 * 2 * 2  # scores x targets x modes
  for c in cells.itertuples():
    row = audio[audio["claim"] == f"{c.score} correlates with transfer ({c.target}, {c.mode}, "
                f"{c.metric}, audio)"]  # fmt: skip
    assert len(row) == 1
    half = 1.96 / np.sqrt(c.n - 3)
    lo, hi = np.tanh(np.arctanh(c.pearson) - half), np.tanh(np.arctanh(c.pearson) + half)
    assert (
      row["jtransfer"].iloc[0] == f"r = {c.pearson:+.2f} [{lo:+.2f}, {hi:+.2f}], n = {c.n} models"
    )
    assert row["decided"].iloc[0] == "no"  # 6 models on 3 architectures: not independent pairs

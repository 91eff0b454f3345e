"""The published audio scale/ontology study (docs/results/audio_scale): its ladder slopes, the
similarity comparison and the findings recomputed from the committed seed-level cells with plain
NumPy/pandas (an independent, vectorised resampling with another seed)."""

import pathlib

import numpy as np
import pandas as pd
import pytest

D = pathlib.Path(__file__).resolve().parents[1] / "docs" / "results" / "audio_scale"
CLASS_LADDER = ("fsdd_digit_c2", "fsdd_digit_c5", "fsdd_digit_c10")
SAMPLE_LADDER = ("fsdd_digit_spk0123_n10", "fsdd_digit_spk0123_n45", "fsdd_digit_c10")
SPEAKER, SMALL = "fsdd_speaker_spk0123", "fsdd_digit_spk0123_n10"


@pytest.fixture(scope="module")
def cells():
  return pd.read_csv(D / "per_seed.csv")


@pytest.fixture(scope="module")
def findings():
  return pd.read_csv(D / "findings.csv")


def _per_source(t, value):
  return {s: g.sort_values("seed")[value].to_numpy(float) for s, g in t.groupby("source")}


def _resampled_means(per_source, n_boot=4000, seed=123):
  rng = np.random.default_rng(seed)
  out = {}
  for s, v in per_source.items():
    idx = rng.integers(0, len(v), (n_boot, len(v)))
    out[s] = v[idx].mean(axis=1)
  return out


def _slope(means, ladder, xs):
  x = np.log2(np.asarray(xs, float))
  y = np.stack([np.broadcast_to(means[s], np.shape(means[ladder[0]])) for s in ladder], axis=-1)
  xc = x - x.mean()
  return (y * xc).sum(axis=-1) / (xc**2).sum()


def test_design_is_the_deciding_one(cells):
  assert set(cells["source"]) == {*CLASS_LADDER, *SAMPLE_LADDER, SPEAKER}
  per = cells.groupby("source")["seed"].nunique()
  assert (per >= 5).all(), per
  assert (cells["n_ft_seeds"] >= 3).all()
  assert cells["complete"].all()
  assert cells.groupby("source")["step"].nunique().eq(1).all()  # the finished model only


@pytest.mark.parametrize(
  "row, ladder, column", [(0, CLASS_LADDER, "num_classes"), (1, SAMPLE_LADDER, "per_class")]
)
def test_ladder_slopes_and_verdicts(cells, findings, row, ladder, column):
  xs = [float(cells.loc[cells["source"] == s, column].iloc[0]) for s in ladder]
  assert xs == sorted(xs) and len(set(xs)) == 3
  text = findings.loc[row, "jtransfer"]
  for value in ("final_acc", "log_auc"):
    per = _per_source(cells, value)
    point = {s: v.mean() for s, v in per.items()}
    est = float(np.polyfit(np.log2(xs), [point[s] for s in ladder], 1)[0])
    assert f"slope per doubling {est:+.4f}" in text
    boot = _slope(_resampled_means(per), ladder, xs)
    lo, hi = np.percentile(boot, [2.5, 97.5])
    if value == "final_acc":  # the verdict follows the independent interval (unless on the edge)
      margin = 0.1 * (hi - lo)
      if lo > margin:
        assert findings.loc[row, "decided"] == "yes" and findings.loc[row, "agrees"] == "yes"
      elif hi < -margin:
        assert findings.loc[row, "decided"] == "yes" and findings.loc[row, "agrees"] == "no"
      elif lo < -margin and hi > margin:
        assert findings.loc[row, "decided"] == "no"


def test_similarity_versus_scale(cells, findings):
  text = findings.loc[2, "jtransfer"]
  per = _per_source(cells, "final_acc")
  est = per[SMALL].mean() - per[SPEAKER].mean()
  assert f"{SMALL} − {SPEAKER} {est:+.4f}" in text
  boot = _resampled_means(per)
  lo, hi = np.percentile(boot[SMALL] - boot[SPEAKER], [2.5, 97.5])
  margin = 0.1 * (hi - lo)
  if lo > margin:
    assert (findings.loc[2, "decided"], findings.loc[2, "agrees"]) == ("yes", "yes")
  elif hi < -margin:
    assert (findings.loc[2, "decided"], findings.loc[2, "agrees"]) == ("yes", "no")
  elif lo < -margin and hi > margin:
    assert findings.loc[2, "decided"] == "no"
  beats = sum(per[s].mean() > per[SPEAKER].mean() for s in per if s != SPEAKER)
  assert f"{beats} of {len(per) - 1} digit sources above the speaker source" in text


def test_scale_csv_is_the_seed_mean(cells):
  scale = pd.read_csv(D / "scale.csv").set_index("source")
  means = cells.groupby("source")[["final_acc", "log_auc"]].mean().add_suffix("_re")
  joined = scale.join(means, how="inner")
  assert len(joined) == len(means)
  np.testing.assert_allclose(joined["log_auc"], joined["log_auc_re"], atol=1e-12)
  np.testing.assert_allclose(joined["final_acc"], joined["final_acc_re"], atol=1e-12)


def test_markdown_matches_csv(findings):
  md = (D / "findings.md").read_text()
  for r in findings.itertuples():
    assert f"| {r.claim} | {r.paper} |" in md

"""Cluster bootstrap, one-sided significance, wrong direction: against references written here."""

import numpy as np
import pytest
from scipy import stats as sps

from jtransfer.analysis import cluster_bootstrap as cb
from jtransfer.analysis import report, stats


def _spearman_np(x, y) -> float:
  """Float64 Spearman: Pearson of average ranks (NaN when a side is constant)."""
  rx, ry = sps.rankdata(x), sps.rankdata(y)
  if np.ptp(rx) == 0 or np.ptp(ry) == 0:
    return float("nan")
  rx, ry = rx - rx.mean(), ry - ry.mean()
  return float((rx * ry).sum() / np.sqrt((rx**2).sum() * (ry**2).sum()))


def _reference_ci(stat, labels, n_boot, seed):
  """The cluster bootstrap by hand: expand every resample into its explicit list of models."""
  names = np.unique(labels)
  members = [np.flatnonzero(labels == c) for c in names]
  draws = np.random.default_rng(seed).integers(0, len(names), size=(n_boot, len(names)))
  vals = np.array([stat(np.concatenate([members[c] for c in row])) for row in draws])
  vals = vals[np.isfinite(vals)]
  lo, hi = np.percentile(vals, [2.5, 97.5])
  return lo, hi, vals.size


def _duplicated_models(copies=4, distinct=10, seed=0):
  rng = np.random.default_rng(seed)
  x = rng.normal(size=distinct)
  y = 0.6 * x + rng.normal(size=distinct)
  x[-1] = x[0]  # a tie, so mid-ranks matter
  labels = np.repeat(np.arange(distinct), copies).astype(str)
  return np.repeat(x, copies), np.repeat(y, copies), labels


def test_cluster_interval_matches_the_expanded_reference_and_is_wider_than_rows():
  x, y, labels = _duplicated_models()
  lo, hi, valid = cb.spearman_ci(x, y, labels, n_boot=400, seed=5)
  ref = _reference_ci(lambda i: _spearman_np(x[i], y[i]), labels, 400, 5)
  assert (lo, hi, valid) == pytest.approx(ref, abs=1e-12)
  # Treating the 40 copies as independent models gives a too-narrow interval.
  r_lo, r_hi, _ = stats.bootstrap_spearman(x, y, n_boot=400, seed=5)
  assert hi - lo > 1.5 * (r_hi - r_lo)


def test_singleton_clusters_are_the_row_bootstrap():
  rng = np.random.default_rng(1)
  x = rng.normal(size=15)
  y = x + rng.normal(size=15)
  got = cb.spearman_ci(x, y, np.arange(15), n_boot=300, seed=2)
  assert got == pytest.approx(stats.bootstrap_spearman(x, y, n_boot=300, seed=2), abs=1e-12)


def test_paired_difference_matches_the_reference():
  x, y, labels = _duplicated_models(copies=3, distinct=9, seed=4)
  x2 = np.round(y + np.random.default_rng(9).normal(size=9).repeat(3) * 0.1, 1)  # ties on purpose
  got = cb.paired_difference_ci(x, x2, y, labels, n_boot=300, seed=8)
  ref = _reference_ci(
    lambda i: _spearman_np(x[i], y[i]) - _spearman_np(x2[i], y[i]), labels, 300, 8
  )
  assert got == pytest.approx(ref, abs=1e-12)
  assert got[1] < 0  # x2 tracks y much more closely than x does


def test_weighted_spearman_leaves_out_constant_resamples():
  x = np.array([1.0, 2.0, 3.0, 4.0])
  w = np.array([[1, 1, 1, 1], [0, 3, 0, 0], [2, 0, 0, 1]])
  rho = cb.weighted_spearman(x, x, w)
  assert rho[0] == pytest.approx(1.0) and np.isnan(rho[1]) and rho[2] == pytest.approx(1.0)


def test_too_few_clusters_give_no_interval():
  x, y, _ = _duplicated_models(copies=5, distinct=2)
  assert cb.spearman_ci(x, y, np.repeat(["a", "b"], 5), n_boot=50)[2] == 0


def test_wrong_direction_is_marked_and_never_significant():
  rng = np.random.default_rng(0)
  x = rng.normal(size=30)
  y = -x + 0.3 * rng.normal(size=30)  # declared higher-is-better, ranks models backwards
  for n_boot, clusters in ((0, None), (300, None), (300, np.arange(30) // 3)):
    r = stats.correlate(x, y, n_boot=n_boot, clusters=clusters)
    assert r["spearman"] < -0.8
    assert r["wrong_direction"] and not r["significant"] and not r["significant_null"]
    cell = report._rho_cell(stats.flatten(r))
    assert "†" in cell and "*" not in cell
  # The same numbers for a lower-is-better score are a significant, right-direction result.
  r = stats.correlate(x, y, higher_is_better=False, n_boot=300, clusters=np.arange(30) // 3)
  assert r["significant"] and not r["wrong_direction"] and r["cluster_ci"][0] > 0
  assert r["n_clusters"] == 10 and r["cluster_valid"] == 300
  assert "*" in report._rho_cell(stats.flatten(r))


def test_cluster_interval_decides_significance_over_the_null_band():
  # 6 distinct models, each 8 times: the null band (n = 48) calls ρ = 0.66 significant, the 6
  # clusters do not resolve it.
  base_x = np.array([1.0, 2.0, 3.0, 4.0, 5.0, 6.0])
  base_y = np.array([3.0, 1.0, 2.0, 5.0, 6.0, 4.0])
  x, y = np.repeat(base_x, 8), np.repeat(base_y, 8)
  r = stats.correlate(x, y, n_boot=500, clusters=np.repeat(np.arange(6), 8))
  assert r["significant_null"] and r["spearman"] > r["null_band"][1]
  assert r["cluster_ci"][0] <= 0 and not r["significant"]

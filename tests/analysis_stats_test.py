"""Statistics of jtransfer.analysis against closed forms, hand formulas and scipy.stats."""

import itertools

import numpy as np
import pytest
from scipy import stats as sps

from jtransfer.analysis import correlate, null_band
from jtransfer.analysis import stats as st


def _ranks(x):
  """Average ranks (1-based) by brute force: 1 + #smaller + (#equal - 1) / 2."""
  x = np.asarray(x, float)
  return np.array([1 + np.sum(x < v) + (np.sum(x == v) - 1) / 2 for v in x])


def _pearson(x, y):
  x = np.asarray(x, float) - np.mean(x)
  y = np.asarray(y, float) - np.mean(y)
  return float(x @ y / np.sqrt((x @ x) * (y @ y)))


def _kendall_tau_b(x, y):
  conc = disc = tx = ty = 0
  for i, j in itertools.combinations(range(len(x)), 2):
    dx, dy = np.sign(x[i] - x[j]), np.sign(y[i] - y[j])
    if dx == 0 and dy == 0:
      continue
    if dx == 0:
      tx += 1
    elif dy == 0:
      ty += 1
    elif dx == dy:
      conc += 1
    else:
      disc += 1
  return (conc - disc) / np.sqrt((conc + disc + tx) * (conc + disc + ty))


@pytest.mark.parametrize("n, half", [(72, 0.232), (12, 0.574), (7, 0.753)])
def test_null_band_matches_thesis_values(n, half):
  lo, hi = null_band(n)
  assert hi == pytest.approx(half, abs=5e-4)
  assert lo == -hi
  assert hi == pytest.approx(np.tanh(1.96 / np.sqrt(n - 3)), rel=1e-4)


def test_bonett_wright_interval_by_hand():
  rho, n = 0.6, 20
  se = np.sqrt((1 + rho**2 / 2) / (n - 3))  # Bonett & Wright (2000).
  z = 0.5 * np.log((1 + rho) / (1 - rho))
  lo, hi = st.bonett_wright_ci(rho, n)
  assert lo == pytest.approx(np.tanh(z - 1.959964 * se), abs=1e-6)
  assert hi == pytest.approx(np.tanh(z + 1.959964 * se), abs=1e-6)
  # By hand: z = atanh .6 = .6931, SE = √(1.18/17) = .2635, tanh(.6931 ∓ .5164).
  assert (round(lo, 3), round(hi, 3)) == (0.175, 0.837)


def test_correlate_matches_independent_formulas_and_scipy():
  rng = np.random.default_rng(3)
  x = rng.normal(size=15)
  y = x + rng.normal(size=15)
  x[3] = x[7]  # a tie, to exercise average ranks and τ-b
  r = correlate(x, y, n_boot=0)
  assert r["n"] == 15
  assert r["spearman"] == pytest.approx(_pearson(_ranks(x), _ranks(y)), abs=1e-12)
  assert r["pearson"] == pytest.approx(_pearson(x, y), abs=1e-12)
  assert r["kendall"] == pytest.approx(_kendall_tau_b(x, y), abs=1e-12)
  # Weighted by the truth's ranks (the best models), not scipy's default two-way average.
  assert r["weighted_tau"] == pytest.approx(sps.weightedtau(y, x, rank=None).statistic, abs=1e-12)
  assert r["spearman_p"] == pytest.approx(sps.spearmanr(x, y).pvalue, rel=1e-9)
  lo, hi = r["spearman_ci"]
  assert lo < r["spearman"] < hi
  assert r["null_band"] == pytest.approx(null_band(15))
  # One-sided in the declared direction (n_boot=0: no cluster interval, the null band decides).
  assert r["significant"] == (r["spearman"] > null_band(15)[1]) and not r["wrong_direction"]
  assert r["flag"] == ""


def test_lower_is_better_scores_are_negated():
  x = np.array([5.0, 4.0, 3.0, 2.5, 1.0])  # e.g. intrinsic dimension: lower = better
  y = np.array([0.1, 0.2, 0.35, 0.3, 0.9])
  up = correlate(x, y, higher_is_better=True, n_boot=0)
  down = correlate(x, y, higher_is_better=False, n_boot=0)
  assert down["spearman"] == pytest.approx(-_pearson(_ranks(x), _ranks(y)))
  assert down["spearman"] == pytest.approx(0.9)  # one swapped pair: 1 - 6·2/(5·24)
  for k in ("spearman", "pearson", "kendall"):
    assert down[k] == pytest.approx(-up[k])
  assert down["weighted_tau"] == pytest.approx(sps.weightedtau(y, -x, rank=None).statistic)


def test_degenerate_inputs_give_nan_and_a_flag():
  r = correlate([1, 2, 3], [1, 2, 3], n_boot=10)
  assert r["flag"] == "n<4" and np.isnan(r["spearman"]) and np.isnan(r["null_band"][0])
  r = correlate([1, 1, 1, 1, 1], [1, 2, 3, 4, 5])
  assert r["flag"] == "constant score" and np.isnan(r["spearman"]) and not r["significant"]
  assert r["null_band"][1] == pytest.approx(np.tanh(1.959964 / np.sqrt(2)))
  r = correlate([1, 2, 3, 4, 5], [2, 2, 2, 2, 2])
  assert r["flag"] == "constant truth" and np.isnan(r["kendall"])


@pytest.mark.parametrize(
  "score, truth, match",
  [([1, 2, np.nan, 4], [1, 2, 3, 4], "score"), ([1, 2, 3, 4], [1, np.inf, 3, 4], "truth"),
   ([1, 2, 3], [1, 2], "equal length")],
)  # fmt: skip
def test_bad_input_raises(score, truth, match):
  with pytest.raises(ValueError, match=match):
    correlate(score, truth)


def test_resampled_ranks_equal_rankdata_with_ties():
  rng = np.random.default_rng(0)
  x = rng.integers(0, 4, size=9).astype(float)
  idx = rng.integers(0, 9, size=(40, 9))
  expect = np.stack([_ranks(x[row]) for row in idx])
  np.testing.assert_array_equal(st._resampled_ranks(x, idx), expect)


def test_bootstrap_interval_equals_a_plain_loop():
  rng = np.random.default_rng(1)
  x = rng.normal(size=12)
  y = x + rng.normal(size=12)
  lo, hi, valid = st.bootstrap_spearman(x, y, n_boot=200, seed=7)
  idx = np.random.default_rng(7).integers(0, 12, size=(200, 12))
  rhos = [sps.spearmanr(x[i], y[i]).statistic for i in idx if np.ptp(x[i]) and np.ptp(y[i])]
  assert valid == len(rhos)
  assert (lo, hi) == pytest.approx(tuple(np.percentile(rhos, [2.5, 97.5])), abs=1e-12)
  r = correlate(x, y, n_boot=200, seed=7)
  assert r["bootstrap_ci"] == pytest.approx((lo, hi))


def test_perfect_ranking_has_degenerate_intervals_at_one():
  x = np.arange(8.0)
  r = correlate(x, x**2, n_boot=50)
  assert r["spearman"] == pytest.approx(1.0)
  assert r["spearman_ci"] == pytest.approx((1.0, 1.0))
  assert r["bootstrap_ci"] == pytest.approx((1.0, 1.0))

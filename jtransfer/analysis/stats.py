"""Correlation of a transferability score with the ground truth, with four kinds of interval.

- `null_band(n)`: the thesis' "Fisher 95% interval", ±tanh(1.96/√(n−3)) around 0. It depends only
  on n: a ρ outside it is significantly different from 0. It is *not* an interval for ρ.
- `bonett_wright_ci(rho, n)`: a 95% interval around the observed Spearman ρ (Fisher z with the
  Bonett & Wright 2000 standard error √((1 + ρ²/2)/(n − 3))).
- bootstrap over models: percentile interval of Spearman ρ over resampled models.
- cluster bootstrap (`cluster_bootstrap`): the same over resampled clusters (runs or sources),
  the default interval: the checkpoints of one run are not independent models.

Significance is one-sided, in the score's declared direction (scores arrive oriented, so that is
ρ > 0): `significant` = the cluster interval lies above 0 (the thesis' null band, one-sided, when
no cluster interval was computed); a ρ significantly below 0 is `wrong_direction`, never
significant.

All coefficients come from `scipy.stats`; lower-is-better scores are negated first so that a
positive coefficient always means "the score ranks models the way fine-tuning does".
"""

import numpy as np
from scipy import stats

from jtransfer.analysis import cluster_bootstrap as cb

Z95 = 1.959963984540054  # Normal 97.5% quantile.
MIN_N = 4  # Fisher-z intervals need n > 3.


def weighted_tau(score: np.ndarray, truth: np.ndarray) -> float:
  """Weighted Kendall τ, hyperbolic weights on the truth's ranks (the best models count most):
  scipy's `weightedtau(truth, score, rank=None)`. Its default (rank=True) averages this with the
  score-ranked weighting, which weighs the models a score likes instead of the best ones. NaN when
  either side is constant."""
  score, truth = np.asarray(score, float), np.asarray(truth, float)
  if score.size < 2 or np.ptp(score) == 0 or np.ptp(truth) == 0:
    return float("nan")
  return float(stats.weightedtau(truth, score, rank=None).statistic)


def null_band(n: int) -> tuple[float, float]:
  """±tanh(z/√(n−3)): the band around 0 that |ρ| must leave to be significant at 5%."""
  if n < MIN_N:
    return (float("nan"), float("nan"))
  half = float(np.tanh(Z95 / np.sqrt(n - 3)))
  return (-half, half)


def bonett_wright_ci(rho: float, n: int) -> tuple[float, float]:
  """95% interval for Spearman ρ: tanh(atanh ρ ± z·√((1 + ρ²/2)/(n − 3)))."""
  if n < MIN_N or not np.isfinite(rho):
    return (float("nan"), float("nan"))
  se = np.sqrt((1.0 + rho**2 / 2.0) / (n - 3))
  with np.errstate(divide="ignore"):  # ρ = ±1 gives z = ±inf and the degenerate interval (ρ, ρ).
    z = np.arctanh(rho)
  return (float(np.tanh(z - Z95 * se)), float(np.tanh(z + Z95 * se)))


def _resampled_ranks(x: np.ndarray, idx: np.ndarray) -> np.ndarray:
  """Average ranks (ties share the mean rank, as `rankdata`) of x[idx] in every row of idx.

  Resamples repeat values, so ties are the rule; this counts each distinct value per row once
  instead of sorting every row.
  """
  values, dense = np.unique(x, return_inverse=True)
  b, n = idx.shape
  u = values.size
  codes = dense[idx]  # [B, n] dense rank of each drawn value
  flat = (np.arange(b)[:, None] * u + codes).ravel()
  counts = np.bincount(flat, minlength=b * u).reshape(b, u)
  below = np.cumsum(counts, axis=1) - counts  # values strictly smaller, per row
  avg = below + (counts + 1) / 2.0
  return np.take_along_axis(avg, codes, axis=1)


def bootstrap_spearman(x, y, *, n_boot: int, seed: int = 0) -> tuple[float, float, int]:
  """Percentile 95% interval of Spearman ρ over models resampled with replacement.

  Returns (lo, hi, valid): resamples with a constant side (ρ undefined) are left out and `valid`
  counts the rest.
  """
  x = np.asarray(x, dtype=float)
  y = np.asarray(y, dtype=float)
  n = x.size
  if n_boot <= 0 or n < MIN_N:
    return (float("nan"), float("nan"), 0)
  rng = np.random.default_rng(seed)
  idx = rng.integers(0, n, size=(n_boot, n))
  rx = _resampled_ranks(x, idx)
  ry = _resampled_ranks(y, idx)
  rx -= rx.mean(axis=1, keepdims=True)
  ry -= ry.mean(axis=1, keepdims=True)
  den = np.sqrt((rx**2).sum(axis=1) * (ry**2).sum(axis=1))
  ok = den > 0
  rho = (rx * ry).sum(axis=1)[ok] / den[ok]
  if rho.size == 0:
    return (float("nan"), float("nan"), 0)
  lo, hi = np.percentile(rho, [2.5, 97.5])
  return (float(lo), float(hi), int(rho.size))


def _nan_result(n: int, flag: str, higher_is_better: bool, n_clusters: int = 0) -> dict:
  nan = float("nan")
  return {
    "n": n,
    "spearman": nan,
    "spearman_p": nan,
    "spearman_ci": (nan, nan),
    "null_band": null_band(n),
    "bootstrap_ci": (nan, nan),
    "bootstrap_valid": 0,
    "cluster_ci": (nan, nan),
    "cluster_valid": 0,
    "n_clusters": n_clusters,
    "pearson": nan,
    "pearson_p": nan,
    "kendall": nan,
    "kendall_p": nan,
    "weighted_tau": nan,
    "significant": False,
    "significant_null": False,
    "wrong_direction": False,
    "higher_is_better": higher_is_better,
    "flag": flag,
  }


def direction_verdict(rho: float, band_hi: float, cluster_ci: tuple[float, float]):
  """(significant, significant_null, wrong_direction) of an oriented ρ, one-sided.

  The cluster interval decides when it exists; the thesis' null band otherwise (and always for
  `significant_null`, kept as the thesis' reference).
  """
  lo, hi = cluster_ci
  sig_null = bool(rho > band_hi)
  if np.isfinite(lo) and np.isfinite(hi):
    return bool(lo > 0), sig_null, bool(hi < 0)
  return sig_null, sig_null, bool(rho < -band_hi)


def correlate(
  score,
  truth,
  *,
  higher_is_better: bool = True,
  n_boot: int = 1000,
  seed: int = 0,
  clusters=None,
):
  """Correlation statistics of `score` with `truth` over models (1-D, same length, finite).

  Returns a dict: n, spearman (+ _p), spearman_ci (Bonett–Wright), null_band, bootstrap_ci
  (+ bootstrap_valid), cluster_ci (+ cluster_valid, n_clusters; resampling `clusters`, a label
  per model, else every model its own cluster), pearson (+ _p), kendall (τ-b, + _p),
  weighted_tau, significant / significant_null / wrong_direction (one-sided in the declared
  direction, see the module docs), higher_is_better, flag ("" when fine, else why values are
  NaN: "n<4", "constant score", "constant truth").
  """
  x = np.asarray(score, dtype=float)
  y = np.asarray(truth, dtype=float)
  if x.ndim != 1 or y.ndim != 1 or x.shape != y.shape:
    raise ValueError(f"score and truth must be 1-D of equal length, got {x.shape} and {y.shape}")
  if not np.all(np.isfinite(x)):
    raise ValueError("score contains NaN or Inf; drop those models before correlating")
  if not np.all(np.isfinite(y)):
    raise ValueError("truth contains NaN or Inf; drop those models before correlating")
  labels = np.arange(x.size) if clusters is None else np.asarray(clusters)
  if labels.shape != x.shape:
    raise ValueError(f"clusters must give one label per model, got {labels.shape} for {x.shape}")
  if not higher_is_better:
    x = -x
  n = int(x.size)
  if n < MIN_N:
    return _nan_result(n, "n<4", higher_is_better, np.unique(labels).size)
  if np.ptp(x) == 0:
    return _nan_result(n, "constant score", higher_is_better, np.unique(labels).size)
  if np.ptp(y) == 0:
    return _nan_result(n, "constant truth", higher_is_better, np.unique(labels).size)

  sp = stats.spearmanr(x, y)
  pe = stats.pearsonr(x, y)
  kt = stats.kendalltau(x, y)  # τ-b by default.
  rho = float(sp.statistic)
  band = null_band(n)
  boot_lo, boot_hi, valid = bootstrap_spearman(x, y, n_boot=n_boot, seed=seed)
  n_clusters = int(np.unique(labels).size)
  if n_clusters == n:  # One model per cluster: the row bootstrap, same draws.
    c_lo, c_hi, c_valid = boot_lo, boot_hi, valid
  else:
    c_lo, c_hi, c_valid = cb.spearman_ci(x, y, labels, n_boot=n_boot, seed=seed)
  sig, sig_null, wrong = direction_verdict(rho, band[1], (c_lo, c_hi))  # NaN CI: null band
  return {
    "n": n,
    "spearman": rho,
    "spearman_p": float(sp.pvalue),
    "spearman_ci": bonett_wright_ci(rho, n),
    "null_band": band,
    "bootstrap_ci": (boot_lo, boot_hi),
    "bootstrap_valid": valid,
    "cluster_ci": (c_lo, c_hi),
    "cluster_valid": c_valid,
    "n_clusters": n_clusters,
    "pearson": float(pe.statistic),
    "pearson_p": float(pe.pvalue),
    "kendall": float(kt.statistic),
    "kendall_p": float(kt.pvalue),
    "weighted_tau": weighted_tau(x, y),
    "significant": sig,
    "significant_null": sig_null,
    "wrong_direction": wrong,
    "higher_is_better": higher_is_better,
    "flag": "",
  }


def flatten(result: dict) -> dict:
  """`correlate`'s dict with the interval tuples split into _lo/_hi columns (for DataFrames)."""
  out = {}
  for key, value in result.items():
    if isinstance(value, tuple):
      out[f"{key}_lo"], out[f"{key}_hi"] = value
    else:
      out[key] = value
  return out

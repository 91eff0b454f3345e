"""Cluster bootstrap of Spearman ρ: resample whole clusters (runs or sources), not models.

The checkpoints of one pre-training run are nested (each continues the last), so they are not
independent draws; resampling single models treats them as if they were and gives intervals that
are too narrow. Here each resample draws C clusters with replacement out of the C clusters and
keeps every model of a drawn cluster, as many times as it was drawn; ρ is recomputed on that
multiset and the interval is the 2.5–97.5 percentile over resamples (those where ρ is undefined,
a constant side, are left out and counted).

Draws (the contract a reference implementation can repeat): clusters are ordered by
`np.unique(labels)`, and `np.random.default_rng(seed).integers(0, C, size=(n_boot, C))` gives
the drawn cluster indices. With one model per cluster this is exactly the row bootstrap of
`stats.bootstrap_spearman` (same draws, same ρ values).

A resample is a weight vector over the n models (w_i = times the cluster of model i was drawn);
its Spearman ρ is the weighted Pearson correlation of mid-ranks of the expanded multiset, which
needs no expansion: the mid-rank of value v is (weight of values < v) + (weight of v + 1) / 2.
"""

import numpy as np

DEFAULT_BOOT = 1000
# With C clusters a resample is one of C+1 choose C multisets (4 clusters: 35, most of them
# repeating one or two clusters): percentiles over so few distinct values are not an interval.
MIN_CLUSTERS = 5


def cluster_draws(labels, *, n_boot: int, seed: int = 0) -> np.ndarray:
  """[n_boot, n] integer weights: how often each model's cluster was drawn in each resample."""
  _, inverse = np.unique(np.asarray(labels), return_inverse=True)
  c = int(inverse.max()) + 1 if inverse.size else 0
  rng = np.random.default_rng(seed)
  drawn = rng.integers(0, c, size=(n_boot, c))
  counts = np.zeros((n_boot, c), dtype=np.int64)
  np.add.at(counts, (np.arange(n_boot)[:, None], drawn), 1)
  return counts[:, inverse]


def _weighted_midranks(x: np.ndarray, w: np.ndarray) -> np.ndarray:
  """[B, n] mid-ranks of x within the multiset where x_i appears w[b, i] times."""
  values, codes = np.unique(x, return_inverse=True)
  onehot = np.zeros((x.size, values.size))
  onehot[np.arange(x.size), codes] = 1.0
  per_value = w @ onehot  # [B, u] weight of each distinct value
  below = np.cumsum(per_value, axis=1) - per_value
  mid = below + (per_value + 1.0) / 2.0
  return mid[:, codes]


def weighted_spearman(x, y, w: np.ndarray) -> np.ndarray:
  """Spearman ρ of each resample (row of w); NaN where either side is constant."""
  x = np.asarray(x, dtype=float)
  y = np.asarray(y, dtype=float)
  w = np.asarray(w, dtype=float)
  rx, ry = _weighted_midranks(x, w), _weighted_midranks(y, w)
  total = w.sum(axis=1, keepdims=True)
  rx = rx - (w * rx).sum(axis=1, keepdims=True) / total
  ry = ry - (w * ry).sum(axis=1, keepdims=True) / total
  sxx, syy = (w * rx * rx).sum(axis=1), (w * ry * ry).sum(axis=1)
  sxy = (w * rx * ry).sum(axis=1)
  # Tiny positive residues of a constant side come from float cancellation: treat as 0.
  ok = (sxx > 1e-9 * total[:, 0] ** 3) & (syy > 1e-9 * total[:, 0] ** 3)
  out = np.full(w.shape[0], np.nan)
  out[ok] = sxy[ok] / np.sqrt(sxx[ok] * syy[ok])
  return out


def _check(x, y, labels):
  x = np.asarray(x, dtype=float)
  y = np.asarray(y, dtype=float)
  labels = np.asarray(labels)
  if not (x.ndim == y.ndim == labels.ndim == 1 and x.size == y.size == labels.size):
    raise ValueError(f"x, y, labels must be 1-D of one length: {x.shape} {y.shape} {labels.shape}")
  if not (np.all(np.isfinite(x)) and np.all(np.isfinite(y))):
    raise ValueError("cluster bootstrap: x or y contains NaN or Inf")
  return x, y, labels


def _interval(rho: np.ndarray) -> tuple[float, float, int]:
  rho = rho[np.isfinite(rho)]
  if rho.size == 0:
    return (float("nan"), float("nan"), 0)
  lo, hi = np.percentile(rho, [2.5, 97.5])
  return (float(lo), float(hi), int(rho.size))


def spearman_ci(x, y, labels, *, n_boot: int = DEFAULT_BOOT, seed: int = 0):
  """(lo, hi, valid): percentile 95% interval of Spearman ρ(x, y) resampling clusters `labels`.

  NaN (valid 0) with fewer than MIN_CLUSTERS clusters or n_boot <= 0.
  """
  x, y, labels = _check(x, y, labels)
  if n_boot <= 0 or np.unique(labels).size < MIN_CLUSTERS:
    return (float("nan"), float("nan"), 0)
  w = cluster_draws(labels, n_boot=n_boot, seed=seed)
  return _interval(weighted_spearman(x, y, w))


def paired_difference_ci(x1, x2, y, labels, *, n_boot: int = DEFAULT_BOOT, seed: int = 0):
  """(lo, hi, valid): 95% interval of ρ(x1, y) − ρ(x2, y), both on the SAME resampled models
  (a paired cluster bootstrap: the shared noise of the models cancels in the difference)."""
  x1, y, labels = _check(x1, y, labels)
  x2, _, _ = _check(x2, y, labels)
  if n_boot <= 0 or np.unique(labels).size < MIN_CLUSTERS:
    return (float("nan"), float("nan"), 0)
  w = cluster_draws(labels, n_boot=n_boot, seed=seed)
  return _interval(weighted_spearman(x1, y, w) - weighted_spearman(x2, y, w))

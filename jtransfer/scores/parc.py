"""PARC, pairwise annotation representation comparison (Bolya et al., NeurIPS 2021). ↑, in
[−100, 100].

Definition (dbolya/parc `methods.py` `PARC`, and the copy in TencentARC/SFDA `metrics.py`,
both read for this module):
1. PCA of the centred features to k = min(pca_dim, N, D) components (pca_dim = 32, the copy's
   default `ratio=2` → `ndims=32`), then each component standardised (StandardScaler: mean 0,
   variance 1 over the samples, ddof 0).
2. RDM_F = 1 − Pearson(f_i, f_j) between *samples* across the k standardised components;
   RDM_Y = 1 − Pearson(e_{y_i}, e_{y_j}) of the one-hot labels, which is 0 for a pair of the same
   class and C/(C − 1) for a pair of different classes.
3. score = 100 · Spearman(upper triangle of RDM_F, upper triangle of RDM_Y) over the
   N(N − 1)/2 pairs i < j, ties at average ranks (scipy's `spearmanr`).

How it is computed: the standardised PCA coordinates are √N times the left singular vectors
U_k of the centred features (their column means are 0 and their variances σ/N), so the kernel
reads U_k from the shared centred Gram eigendecomposition (no new decomposition; √N cancels in
a Pearson). As RDM_Y takes two values, the Spearman correlation is the Pearson correlation of
RDM_F's average ranks with the "different classes" indicator (a rank-biserial correlation):
one sort of the N(N − 1)/2 pairs (of integer keys with the values' order: XLA:CPU sorts those
far faster than floats) that carries each pair's flag along, ties found on the sorted keys, the
centred ranks formed as exact integers (2·(rank − mean rank) = first + last position − M of the
tie group) and summed over the flagged pairs where they lie. The pairs are enumerated from
iotas (`pairs`), so the program holds no N²-sized index constants.

Pitfalls of the public code, and what jtransfer does:
- The SFDA copy's subsampling is dead code: for N > 15000 `PARC_Score` draws a subset into
  `features` and `targets` (`targets = X[labeled_index]`: features, not labels) and then calls
  PARC on the full X, y anyway; the subset's `utils_cr.initLabeled` is not in that repository,
  so N > 15000 raises ImportError there. (Its `metrics.py` also refers to `sklearn.` and
  `scipy.stats.` without importing those module names, so `PARC_Score` raises NameError as
  published; the original dbolya/parc imports them.) jtransfer scores all N samples; there is
  no subsampling.
- Both references reduce with sklearn's randomized PCA (`iterated_power=1`, random_state 1919):
  one power iteration only approximates the top-k subspace where the spectrum decays slowly.
  jtransfer uses the exact top-k components.
- A row Pearson mixes components, so the score depends on each component's *sign*, which PCA
  leaves free. jtransfer fixes sklearn's u-based rule (`svd_flip`): the coordinate of largest
  magnitude of each component is positive. Within (nearly) equal eigenvalues at the k-th
  component the subspace itself is not defined (as for GBC).
- The references keep min(pca_dim, N) components even when the centred data's rank is lower
  (≤ N − 1): the extra component is round-off, which standardising blows up to unit-variance
  noise. jtransfer keeps only components above round-off (σ > max(N, D)·eps·σ_max) and takes
  the Pearson over those.
- The label RDM is two-valued only in exact arithmetic: the references form it as
  1 − np.corrcoef(one-hot labels), whose same-class entries come out as 0 or 2.2e-16 depending
  on the class when 1/C is not a binary fraction (C = 3, 5, 10, ...), and `spearmanr` then ranks
  those pairs apart instead of as ties: the published code's value depends on that round-off
  (≈ 4% on a C = 3 test case; exact for C = 2, 4). jtransfer uses the exact two-valued RDM.
- The ×100 of the references is kept (percent), so values compare with published tables.

Degenerate regime (documented; `regimes.undefined_reason` marks it, so the score job stores it
undefined): when N − 1 ≤ min(pca_dim, D) the kept components span every direction orthogonal
to 1 and the standardised coordinates are the whitened data, Σ_d q_id q_jd = N δ_ij − 1 for
any features; only the row means (which depend on the components' signs and on the basis the
decomposition picks) move the RDM, so the value measures nothing (and float32 does not
reproduce it). pca_dim ≥ 3: a Pearson across 2 components is ±1.

Invariant to a common shift and a global scale (it reads only U_k). Memory and work grow as N²
(the N(N − 1)/2 pairs; about 14 bytes per pair in float32): cost in BENCHMARKS.md. Integer
positions are int32 in float32, so N(N − 1)/2 < 2³¹ (N ≤ 65,536); larger probes are refused.
Needs at least 2 classes and a class with 2 samples (else every pair is "different" and
Spearman is undefined), and at least 2 components with non-constant coordinates per sample;
otherwise the score is not finite and the public functions raise.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp

from jtransfer.scores.compute import score_one
from jtransfer.scores.shared import HIGHEST, Shared

MIN_PER_CLASS = 1
PCA_DIM = 32


def standardized_components(shared: Shared, pca_dim: int) -> tuple[jax.Array, jax.Array]:
  """([N, k] U_k with sklearn's u-based signs and column means removed, [k] bool kept), for
  k = min(pca_dim, N, D); `kept` marks the components above round-off."""
  n, d = shared.n, shared.d
  k = min(pca_dim, n, d)
  sigma, u = shared.top_eigh(k)
  kept = sigma > max(n, d) * jnp.finfo(sigma.dtype).eps * sigma[-1]
  big = jnp.argmax(jnp.abs(u), axis=0)
  sign = jnp.where(u[big, jnp.arange(k)] < 0, -1, 1).astype(u.dtype)
  u = u * sign
  return u - jnp.mean(u, axis=0), kept


def _sort_keys(values: jax.Array) -> jax.Array:
  """Integers ordered as `values` (equal values, equal keys): the float's bits, negatives
  flipped. XLA:CPU sorts one integer array many times faster than floats or an argsort."""
  int_type = jnp.int64 if values.dtype.itemsize == 8 else jnp.int32
  bits = jax.lax.bitcast_convert_type(values + 0, int_type)  # + 0: −0.0 becomes +0.0
  return jnp.where(bits < 0, bits ^ jnp.iinfo(int_type).max, bits)


def _sorted_centred_ranks(values: jax.Array, flags: jax.Array) -> tuple[jax.Array, jax.Array]:
  """(2·(average rank − mean rank) [M] as exact integers, the flags [M]), both in the values'
  sorted order: one integer sort carrying the flags along (tied values share one average rank,
  so which of them carries which flag does not matter), tie groups found on the sorted keys."""
  m = values.shape[0]
  v, f = jax.lax.sort((_sort_keys(values), flags.astype(jnp.int8)), num_keys=1)
  pos = jnp.arange(m)
  new = jnp.concatenate([jnp.ones((1,), bool), v[1:] != v[:-1]])  # a tie group starts here
  last = jnp.concatenate([v[1:] != v[:-1], jnp.ones((1,), bool)])  # a tie group ends here
  first = jax.lax.cummax(jnp.where(new, pos, 0))
  end = jax.lax.cummin(jnp.where(last, pos, m - 1), reverse=True)
  # 1-based average rank (first + end)/2 + 1, mean rank (M + 1)/2: twice their difference
  return first + end + 1 - m, f > 0


def _integer_sum(ints: jax.Array, dtype) -> jax.Array:
  """Σ of integers [M] in `dtype`, exact up to its final rounding: integer partial sums of
  chunks small enough not to overflow, then a float sum of those."""
  m = ints.shape[0]
  if ints.dtype.itemsize == 8:
    return jnp.sum(ints).astype(dtype)
  bound = max(1, m)  # |centred rank| ≤ M
  chunk = max(1, min(64, (2**31 - 1) // bound))
  pad = -m % chunk
  ints = jnp.concatenate([ints, jnp.zeros((pad,), ints.dtype)]) if pad else ints
  return jnp.sum(jnp.sum(ints.reshape(-1, chunk), axis=1).astype(dtype))


def rank_biserial(values: jax.Array, flags: jax.Array) -> jax.Array:
  """Spearman correlation between `values` [M] and a two-valued variable `flags` [M] bool.

  With a the centred ranks (Σ a = 0) and f the flags, Σ a (f − f̄) = Σ_{f = 1} a: an exact
  integer sum; Σ (f − f̄)² = M₁ M₀ / M.
  """
  m = values.shape[0]
  ranks, flags = _sorted_centred_ranks(values, flags)
  a = ranks.astype(values.dtype)
  numerator = _integer_sum(jnp.where(flags, ranks, 0), values.dtype)
  m1 = jnp.sum(flags).astype(values.dtype)
  spread = m1 * (m - m1) / m
  return numerator / jnp.sqrt(jnp.sum(a * a) * spread)


def pairs(n: int) -> tuple[jax.Array, jax.Array]:
  """Every unordered pair i < j of N samples once, as two [N // 2, N − 1 + N % 2] index arrays
  made from iotas (no N²-sized constants in the program): row r holds the pairs of row r of the
  upper triangle and those of row N − 1 − r (N even) or N − 2 − r (N odd), whose lengths add
  up to the width. The order differs from the triangle's; the Spearman does not depend on it."""
  half, width = n // 2, n - 1 + n % 2
  r = jnp.arange(half)[:, None]
  c = jnp.arange(width)[None, :]
  head = n - 1 - r  # pairs (r, j > r)
  partner = n - 1 - r - n % 2
  i = jnp.where(c < head, r, partner)
  j = jnp.where(c < head, r + 1 + c, partner + 1 + c - head)
  return i, j


def parc_kernel(shared: Shared, *, pca_dim: int = PCA_DIM) -> jax.Array:
  """PARC (pure, traceable, vmappable)."""
  n = shared.n
  count = n * (n - 1) // 2
  if count >= 2**31 and not jax.config.jax_enable_x64:
    raise ValueError(
      f"PARC of N = {n} samples has {count} pairs, past int32 positions (N ≤ 65,536): "
      "score a class-balanced subsample, or leave parc out"
    )
  q, kept = standardized_components(shared, pca_dim)
  # Pearson between samples across the kept components
  q = jnp.where(kept, q, 0)
  q = jnp.where(kept, q - jnp.sum(q, axis=1, keepdims=True) / jnp.sum(kept), 0)
  q = q / jnp.sqrt(jnp.sum(q * q, axis=1, keepdims=True))
  corr = jnp.matmul(q, q.T, precision=HIGHEST)
  i, j = pairs(shared.n)
  labels = shared.labels
  rdm = (1 - corr[i, j]).reshape(-1)
  value = 100 * rank_biserial(rdm, (labels[i] != labels[j]).reshape(-1))
  # Fewer than 2 kept components (D = 1, or one direction dominating the rest below round-off)
  # or a sample constant across them: the Pearson is 0/0. A sort would rank those NaNs as
  # distinct values and return a finite number that measures nothing; make it NaN instead.
  return jnp.where(jnp.all(jnp.isfinite(rdm)), value, jnp.nan)


def parc(features, labels, *, num_classes: int, pca_dim: int = PCA_DIM) -> jax.Array:
  """PARC of `features` [N, D] for `labels` [N] (×100, as published)."""
  return score_one("parc", features, labels, num_classes=num_classes, pca_dim=pca_dim)

"""Intermediates shared by many scores, each computed at most once per traced call.

`compute()` builds one `Shared` inside its jitted function and hands it to every requested score
kernel; `functools.cached_property` makes each expensive piece (the Gram matrix, the two
eigendecompositions, class statistics) a single node of the traced graph however many scores
read it. Individual score functions build their own `Shared`, so `compute()` equals calling them
one by one.

Conventions (all kernels rely on them):
- `features` [N, D] floating, `labels` [N] int32 in [0, C), validated before tracing.
- Everything is in the dtype of `features` (float64 under `jax_enable_x64` for references).
- Matmuls use `precision="highest"`.
- float32 that holds on real features: the features are centred once (the mean in their own
  dtype) and divided by a power of two (`normalized`) before any Gram form, so shift- and
  scale-invariant scores see the same numbers whatever the offset and units. LogME (no bias:
  not shift invariant) never forms the uncentred Gram: it adds the mean back as a rank-two
  update of the centred Gram's eigendecomposition (see logme.py).
- N×N forms are used throughout (probe sets are small: N ≤ a few thousand) so no D×D matrix is
  built when N < D; where N > D a kernel may use D×D forms via `cov_eigh`.
"""

from __future__ import annotations

import functools

import jax
import jax.numpy as jnp

HIGHEST = jax.lax.Precision.HIGHEST

# Above this many samples the nearest-neighbour search never holds an N×N matrix: it streams
# row blocks of F Fᵀ (unless a kernel already built the full Gram, e.g. for an eigh).
FULL_GRAM_MAX_N = 4096
# Elements of one streamed block of Gram rows / distances ([B, N]).
BLOCK_ELEMENTS = 1 << 24
# Extra Gram-ranked candidates re-checked with exact distances, so rounding in
# ‖a‖² + ‖b‖² − 2a·b (cancellation for close points) cannot change which neighbours win.
NEIGHBOUR_MARGIN = 8


def _dot(a, b):
  return jnp.matmul(a, b, precision=HIGHEST)


def _pow2_above(x: jax.Array) -> jax.Array:
  """2^k with 2^(k−1) ≤ x < 2^k for x > 0 (exact: from the float's exponent); 1 for x = 0."""
  _, exp = jnp.frexp(x)
  return jnp.where(x > 0, jnp.ldexp(jnp.ones_like(x), exp), jnp.ones_like(x))


class Shared:
  """Lazily computed, shared intermediates for one (features, labels) pair."""

  def __init__(self, features: jax.Array, labels: jax.Array | None, num_classes: int | None):
    self.features = features
    self.labels = labels
    self.num_classes = num_classes

  # -- shapes ---------------------------------------------------------------------------------
  @property
  def n(self) -> int:
    return self.features.shape[0]

  @property
  def d(self) -> int:
    return self.features.shape[1]

  @property
  def dtype(self):
    return self.features.dtype

  # -- centred, scale-normalised features ----------------------------------------------------
  @functools.cached_property
  def _centering(self) -> tuple[jax.Array, jax.Array]:
    """(μ [D], F − μ [N, D]) by two passes in the features' dtype: the first mean is off by
    ≈ eps·|offset|, which would inflate every sum of squares about it; F − μ₁ is exact-ish
    (nearby numbers), so its own mean corrects μ₁ to the spread's precision."""
    first = self.features.mean(axis=0)
    resid = self.features - first
    fix = resid.mean(axis=0)
    return first + fix, resid - fix

  @property
  def mean(self) -> jax.Array:
    """[D] global mean, in the features' dtype (two-pass)."""
    return self._centering[0]

  @functools.cached_property
  def scale(self) -> jax.Array:
    """The power of two just above max |F − μ| (1 if all samples are equal).

    Dividing by a power of two is exact, so scale-invariant scores are bit-identical under
    power-of-two rescaling, and no Gram form over- or underflows whatever the features' units.
    """
    return _pow2_above(jnp.max(jnp.abs(self._centering[1])))

  @functools.cached_property
  def normalized(self) -> jax.Array:
    """[N, D] Z = (F − μ) / scale: centred once, before any Gram form.

    In float32 ‖a‖² + ‖b‖² − 2a·b and FᵀF lose everything to a large common offset (post-ReLU
    channels, raw pixels, large embeddings); every shift-invariant score reads Z instead of F.
    """
    return self._centering[1] / self.scale

  # -- class statistics (of Z) ----------------------------------------------------------------
  @functools.cached_property
  def onehot(self) -> jax.Array:
    """[N, C] one-hot labels in the features' dtype."""
    return jax.nn.one_hot(self.labels, self.num_classes, dtype=self.dtype)

  @functools.cached_property
  def counts(self) -> jax.Array:
    """[C] number of samples per class."""
    return self.onehot.sum(axis=0)

  @functools.cached_property
  def class_means(self) -> jax.Array:
    """[C, D] class means of Z (0 for an empty class)."""
    return _dot(self.onehot.T, self.normalized) / jnp.maximum(self.counts, 1)[:, None]

  # -- Gram forms -----------------------------------------------------------------------------
  @functools.cached_property
  def centered_gram(self) -> jax.Array:
    """[N, N] Z Zᵀ (centred, scale-normalised): the one N×D×N matmul of the fused pass."""
    return _dot(self.normalized, self.normalized.T)

  @functools.cached_property
  def centered_gram_eigh(self) -> tuple[jax.Array, jax.Array]:
    """Eigendecomposition of Z Zᵀ (σ ascending, clipped ≥ 0; U). PCA, H-score, TransRate.

    σ are in the normalised units: multiply by `scale`² for those of F − μ. LogME reads it too.
    """
    w, u = jnp.linalg.eigh(self.centered_gram)
    return jnp.maximum(w, 0), u

  # -- within-class residuals (SS, NC) -------------------------------------------------------
  @functools.cached_property
  def residuals(self) -> jax.Array:
    """[N, D] z_i − μ_{y_i} (of Z), formed directly (no cancellation, O(N·D))."""
    return self.normalized - self.class_means[self.labels]

  @functools.cached_property
  def residual_norms(self) -> jax.Array:
    """[N] ‖f_i − μ_{y_i}‖."""
    return jnp.sqrt(jnp.sum(self.residuals**2, axis=1))

  @functools.cached_property
  def present(self) -> jax.Array:
    """[C] bool, classes with at least one sample."""
    return self.counts > 0

  @functools.cached_property
  def class_mean_distances(self) -> jax.Array:
    """[C, C] ‖μ_c − μ_c'‖ from direct differences (one class row at a time: C·D memory)."""
    means = self.class_means  # of Z: centred, so float32 differences stay accurate
    return jax.lax.map(lambda m: jnp.sqrt(jnp.sum((means - m) ** 2, axis=1)), means)

  # -- nearest neighbours (TWO-NN, kNN) ------------------------------------------------------
  def neighbours(self, k: int) -> tuple[jax.Array, jax.Array]:
    """The k nearest other samples of every sample: (distances [N, k], indices [N, k]).

    Candidates are ranked by the Gram form ‖f_j‖² − 2 f_i·f_j (self excluded), then the best
    k + NEIGHBOUR_MARGIN are re-measured as ‖f_i − f_j‖ from the feature differences: exact
    duplicates get exactly 0 and the returned distances carry no Gram cancellation error. Sorted
    by (distance, index), so ties resolve to the lower index. Calls with k ≤ 8 share one search.
    """
    if not 1 <= k <= self.n - 1:
      raise ValueError(f"need 1 ≤ k ≤ N − 1 = {self.n - 1} neighbours, got k={k}")
    num = min(self.n - 1, max(k + NEIGHBOUR_MARGIN, 2 * NEIGHBOUR_MARGIN))
    cache = self.__dict__.setdefault("_neighbours", {})
    if num not in cache:
      cache[num] = self._search(num)
    dist, idx = cache[num]
    return dist[:, :k], idx[:, :k]

  def _search(self, num: int) -> tuple[jax.Array, jax.Array]:
    n, feats = self.n, self.normalized  # distances in units of `scale`: shift/scale blind
    sq = jnp.sum(feats**2, axis=1)
    use_gram = "centered_gram" in self.__dict__ or n <= FULL_GRAM_MAX_N
    gram = self.centered_gram if use_gram else None
    size = max(1, min(n, BLOCK_ELEMENTS // n))
    blocks = -(-n // size)

    def candidates(rows):  # [size] row indices, padded past n with repeats of the last row
      valid = jnp.minimum(rows, n - 1)
      g = gram[valid] if use_gram else _dot(feats[valid], feats.T)  # [size, N]
      key = jnp.where(rows[:, None] == jnp.arange(n)[None, :], jnp.inf, sq[None, :] - 2 * g)
      return jax.lax.top_k(-key, num)[1]  # ‖f_i‖² is a row constant: left out of the key

    rows = jnp.arange(blocks * size).reshape(blocks, size)
    cand = candidates(rows[0]) if blocks == 1 else jax.lax.map(candidates, rows)
    cand = cand.reshape(-1, num)[:n]

    def exact(args):  # one row per step: XLA's CPU gather is far slower on batched [B, K, D]
      f, c = args
      dist = jnp.sqrt(jnp.sum((feats.at[c].get(mode="promise_in_bounds") - f) ** 2, axis=-1))
      order = jnp.lexsort((c, dist))
      return dist[order], c[order]

    return jax.lax.map(exact, (feats, cand))

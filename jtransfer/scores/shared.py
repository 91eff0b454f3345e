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
- Two routes (`route(n, d)`, chosen from the shapes): "gram", N×N forms (no D×D matrix when
  N < D), and for many samples and fewer features "covariance", D×D forms (no N×N matrix: the
  spectrum from one D×D eigh). `centered_gram_eigh` has r = N eigenpairs on the first route and
  r = D on the second (the N − D others are exactly 0 there); kernels read r from its shape.
  A third, "randomized", for many samples AND many features (neither side small): a randomized
  range finder gives only the top RANDOMIZED_RANK eigenpairs (`top_eigh`); it is taken only
  when every requested score reads no more than that (`served_on_randomized`), and
  `centered_gram_eigh` refuses on it (scores needing the full spectrum never get a truncated
  one).
"""

from __future__ import annotations

import functools

import jax
import jax.numpy as jnp

HIGHEST = jax.lax.Precision.HIGHEST

# The covariance route (D×D forms) from this many samples on, when D ≤ N / COVARIANCE_RATIO:
# below, N×N forms are as cheap and keep the scores' values of the Gram route.
COVARIANCE_MIN_N = 2048
COVARIANCE_RATIO = 2
ROUTES = ("gram", "covariance", "randomized")

# The randomized route: from this many samples on, when the covariance route does not apply and
# every requested score is served by the top RANDOMIZED_RANK eigenpairs (a Gaussian sketch of
# RANDOMIZED_RANK + RANDOMIZED_OVERSAMPLE columns, RANDOMIZED_POWER power iterations with
# re-orthonormalisation, Rayleigh–Ritz; fixed seed, so the values are deterministic).
RANDOMIZED_MIN_N = 4096
RANDOMIZED_RANK = 64
RANDOMIZED_OVERSAMPLE = 64
RANDOMIZED_POWER = 8

# Above this many samples the nearest-neighbour search never holds an N×N matrix: it streams
# row blocks of F Fᵀ (unless a kernel already built the full Gram, e.g. for an eigh).
FULL_GRAM_MAX_N = 4096
# Elements of one streamed block of Gram rows / distances ([B, N]).
BLOCK_ELEMENTS = 1 << 24
# Extra Gram-ranked candidates re-checked with exact distances, so rounding in
# ‖a‖² + ‖b‖² − 2a·b (cancellation for close points) cannot change which neighbours win.
NEIGHBOUR_MARGIN = 8
# Gathered feature elements ([B, K, D]) per step of the neighbours' exact re-measurement.
EXACT_BLOCK_ELEMENTS = 1 << 21
# Elements of the row blocks of the per-row passes (`map_row_blocks`): a block's temporaries
# stay in cache (256 KiB of float32).
ROW_BLOCK_ELEMENTS = 1 << 16


def _dot(a, b):
  return jnp.matmul(a, b, precision=HIGHEST)


def _pow2_above(x: jax.Array) -> jax.Array:
  """2^k with 2^(k−1) ≤ x < 2^k for x > 0 (exact: from the float's exponent); 1 for x = 0."""
  _, exp = jnp.frexp(x)
  return jnp.where(x > 0, jnp.ldexp(jnp.ones_like(x), exp), jnp.ones_like(x))


def route(n: int, d: int, names=None, options=None) -> str:
  """The route a probe of N samples × D features takes for the scores `names` (None: every
  default score): "covariance" (one D×D eigh, no N×N matrix) when N ≥ COVARIANCE_MIN_N and
  D ≤ N / COVARIANCE_RATIO; else "randomized" (the top RANDOMIZED_RANK eigenpairs of a
  randomized range finder, no N×N matrix) when N ≥ RANDOMIZED_MIN_N and every requested score
  is served by it (`served_on_randomized`); else "gram" (N×N forms). `options`: {name: {option:
  value}} as `compute` takes them (a `pca_dim` above RANDOMIZED_RANK is not served).

  "gram" and "covariance" are exact and differ by round-off; "randomized" is approximate for
  the PCA-based scores (GBC, PARC, NCTI; tolerances in BENCHMARKS.md and the tests) and exact
  for every other score it serves. On the covariance and randomized routes the neighbour search
  (TWO-NN, kNN) streams row blocks of Z Zᵀ (exact, N²·D work, never N×N memory).
  """
  if n >= COVARIANCE_MIN_N and d * COVARIANCE_RATIO <= n:
    return "covariance"
  if n >= RANDOMIZED_MIN_N and names is not None and served_on_randomized(names, options):
    return "randomized"
  return "gram"


def served_on_randomized(names, options=None) -> bool:
  """Whether every score in `names` is computed by the randomized route: its spec says it reads
  at most the top eigenpairs (`ScoreSpec.randomized`), with `pca_dim` ≤ RANDOMIZED_RANK."""
  from jtransfer.scores import registry  # registry imports no kernel module: no cycle

  options = dict(options or {})
  for name in names:
    spec = registry.get(name)
    if not spec.needs_features:
      continue
    opts = dict(spec.options, **dict(options.get(name) or {}))
    if not spec.randomized or opts.get("pca_dim", 0) > RANDOMIZED_RANK:
      return False
    if any(opts.get(k) == v for k, v in spec.randomized_refuses):
      return False
  return True


class Shared:
  """Lazily computed, shared intermediates for one (features, labels) pair."""

  def __init__(
    self,
    features: jax.Array,
    labels: jax.Array | None,
    num_classes: int | None,
    route_name: str | None = None,
  ):
    self.features = features
    self.labels = labels
    self.num_classes = num_classes
    n, d = features.shape
    self.route = route(n, d) if route_name is None else route_name
    if self.route not in ROUTES:
      raise ValueError(f"unknown route {self.route!r}; valid: {ROUTES}")

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
    """(μ₁, δ) [D] with μ = μ₁ + δ, by two passes in the features' dtype: the first mean μ₁ is
    off by ≈ eps·|offset|, which would inflate every sum of squares about it; F − μ₁ is
    exact-ish (nearby numbers), so its own mean δ corrects μ₁ to the spread's precision."""
    first = self.features.mean(axis=0)
    return first, (self.features - first).mean(axis=0)

  @property
  def mean(self) -> jax.Array:
    """[D] global mean, in the features' dtype (two-pass)."""
    first, fix = self._centering
    return first + fix

  @functools.cached_property
  def scale(self) -> jax.Array:
    """The power of two just above max |F − μ| (1 if all samples are equal).

    Dividing by a power of two is exact, so scale-invariant scores are bit-identical under
    power-of-two rescaling, and no Gram form over- or underflows whatever the features' units.
    Read off the column extremes: rounding is monotone, so max_i ((f_ij − μ₁) − δ) is
    ((max_i f_ij − μ₁) − δ) exactly, and no [N, D] array of centred values is formed for it.
    """
    first, fix = self._centering
    high = (jnp.max(self.features, axis=0) - first) - fix
    low = (jnp.min(self.features, axis=0) - first) - fix
    return _pow2_above(jnp.maximum(jnp.max(jnp.abs(high)), jnp.max(jnp.abs(low))))

  @functools.cached_property
  def normalized(self) -> jax.Array:
    """[N, D] Z = (F − μ) / scale: centred once, before any Gram form.

    In float32 ‖a‖² + ‖b‖² − 2a·b and FᵀF lose everything to a large common offset (post-ReLU
    channels, raw pixels, large embeddings); every shift-invariant score reads Z instead of F.
    """
    first, fix = self._centering
    return ((self.features - first) - fix) / self.scale

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
  def centered_cov(self) -> jax.Array:
    """[D, D] Zᵀ Z: the covariance route's one N×D×D matmul."""
    return _dot(self.normalized.T, self.normalized)

  @functools.cached_property
  def centered_gram_eigh(self) -> tuple[jax.Array, jax.Array]:
    """The nonzero part of Z Zᵀ's eigendecomposition (σ [r] ascending, clipped ≥ 0; U [N, r]).
    H-scores, TransRate, LogME, PACTran, SFDA, N-LEEP read it whole; GBC, PARC, NCTI read its
    top (`top_eigh`).

    Gram route: eigh of the N×N Z Zᵀ, r = N. Covariance route: eigh of the D×D Zᵀ Z = V Σ Vᵀ,
    r = D, U = Z V / √σ (the left singular vectors; columns of round-off σ ≤ D·eps·σ_max set
    to 0, which every kernel masks). σ are in the normalised units: × `scale`² for F − μ.
    The randomized route refuses: it has only the top of the spectrum.
    """
    if self.route == "randomized":
      raise ValueError(
        "this score needs the full spectrum of the centred Gram, which the randomized route "
        "does not compute; use the gram or covariance route (scores.route picks them)"
      )
    if self.route == "covariance":
      w, v = jnp.linalg.eigh(self.centered_cov)
      w = jnp.maximum(w, 0)
      ok = w > self.d * jnp.finfo(w.dtype).eps * w[-1]
      u = _dot(self.normalized, v) / jnp.sqrt(jnp.where(ok, w, 1))
      return jnp.where(ok, w, 0), jnp.where(ok, u, 0)
    w, u = jnp.linalg.eigh(self.centered_gram)
    return jnp.maximum(w, 0), u

  def top_eigh(self, k: int) -> tuple[jax.Array, jax.Array]:
    """The top k eigenpairs of Z Zᵀ (σ [k] ascending, U [N, k]): the last k of
    `centered_gram_eigh` on the exact routes, the randomized range finder's on "randomized"."""
    if self.route != "randomized":
      sigma, u = self.centered_gram_eigh
      return sigma[-k:], u[:, -k:]
    if k > RANDOMIZED_RANK:
      raise ValueError(f"the randomized route has {RANDOMIZED_RANK} eigenpairs, {k} asked for")
    sigma, u = self._randomized_eigh
    return sigma[-k:], u[:, -k:]

  @functools.cached_property
  def _randomized_eigh(self) -> tuple[jax.Array, jax.Array]:
    """Top min(RANDOMIZED_RANK, N, D) eigenpairs of Z Zᵀ without forming it: Q = orth(Z Ω) for
    a fixed Gaussian Ω [D, RANDOMIZED_RANK + RANDOMIZED_OVERSAMPLE], RANDOMIZED_POWER rounds
    Q ← orth(Z (Zᵀ Q)), then the eigh of Qᵀ Z Zᵀ Q (Rayleigh–Ritz). O(N·D·l) per round."""
    z = self.normalized
    n, d = z.shape
    width = min(RANDOMIZED_RANK + RANDOMIZED_OVERSAMPLE, n, d)
    rank = min(RANDOMIZED_RANK, width)
    omega = jax.random.normal(jax.random.key(0), (d, width), z.dtype)
    q, _ = jnp.linalg.qr(_dot(z, omega))
    for _ in range(RANDOMIZED_POWER):
      p, _ = jnp.linalg.qr(_dot(z.T, q))
      q, _ = jnp.linalg.qr(_dot(z, p))
    b = _dot(z.T, q)  # [D, l]: (Qᵀ Z)ᵀ
    w, v = jnp.linalg.eigh(_dot(b.T, b))  # Qᵀ Z Zᵀ Q, ascending
    return jnp.maximum(w[-rank:], 0), _dot(q, v[:, -rank:])

  # -- within-class residuals (SS, NC) -------------------------------------------------------
  @functools.cached_property
  def residuals(self) -> jax.Array:
    """[N, D] z_i − μ_{y_i} (of Z), formed directly (no cancellation, O(N·D))."""
    return self.normalized - self.class_means[self.labels]

  @functools.cached_property
  def residual_sq_norms(self) -> jax.Array:
    """[N] ‖z_i − μ_{y_i}‖² from the differences, a block of rows at a time (no [N, D] array
    of residuals: each one is a full pass over memory on the CPU)."""
    return class_residual_sq_norms(self.normalized, self.class_means, self.labels)

  @functools.cached_property
  def residual_norms(self) -> jax.Array:
    """[N] ‖z_i − μ_{y_i}‖."""
    return jnp.sqrt(self.residual_sq_norms)

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
    use_gram = "centered_gram" in self.__dict__ or (self.route == "gram" and n <= FULL_GRAM_MAX_N)
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
    # The barrier keeps XLA from fusing the ranking into the re-measurement loop, which measured
    # far slower (BENCHMARKS.md, "Scores").
    feats, cand = jax.lax.optimization_barrier((feats, cand))
    dist = _exact_distances(feats, cand)
    # sorted by (distance, index): ties resolve to the lower index
    return jax.lax.sort((dist, cand), dimension=1, num_keys=2)


def map_row_blocks(fn, n: int, per_row: int, budget: int | None = None):
  """`fn` over blocks of row indices [B] (B·per_row ≈ `budget` elements, the last block padded
  with repeats of row N − 1), its outputs' leading [B] axes joined and cut to N rows: the
  temporaries of one block stay in cache instead of going through memory as [N, D] arrays."""
  budget = ROW_BLOCK_ELEMENTS if budget is None else budget
  size = max(1, min(n, budget // max(1, per_row)))
  blocks = -(-n // size)
  pad = blocks * size - n
  rows = jnp.concatenate([jnp.arange(n), jnp.full((pad,), n - 1)]) if pad else jnp.arange(n)
  out = jax.lax.map(fn, rows.reshape(blocks, size))
  return jax.tree.map(lambda o: o.reshape(-1, *o.shape[2:])[:n], out)


def class_residual_sq_norms(x: jax.Array, means: jax.Array, labels: jax.Array) -> jax.Array:
  """[N] ‖x_i − means_{labels_i}‖² from the differences, a block of rows at a time."""
  rows = lambda r: jnp.sum((x[r] - means[labels[r]]) ** 2, axis=1)
  return map_row_blocks(rows, x.shape[0], x.shape[1])


def _exact_distances(feats: jax.Array, cand: jax.Array) -> jax.Array:
  """[N, K] ‖f_i − f_{cand_ik}‖ from feature differences, in row blocks of `EXACT_BLOCK_ELEMENTS`
  gathered elements: one [B, K, D] gather-and-reduce per step (a step per row pays XLA's loop
  overhead N times; the whole [N, K, D] at once is a large temporary)."""
  n, d = feats.shape
  num = cand.shape[1]

  def block(r):  # [B] rows (the last block padded with row N − 1, its candidates too)
    f = feats.at[r].get(mode="promise_in_bounds")
    g = feats.at[cand[r]].get(mode="promise_in_bounds")  # [B, K, D]
    return jnp.sqrt(jnp.sum((g - f[:, None, :]) ** 2, axis=-1))

  return map_row_blocks(block, n, num * d, EXACT_BLOCK_ELEMENTS)

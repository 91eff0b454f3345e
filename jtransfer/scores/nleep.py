"""N-LEEP (Li et al., "Ranking neural checkpoints", CVPR 2021). ↑, ≤ 0.

LEEP with a Gaussian mixture on the features in place of the source model's classifier: fit a
GMM with K components to the (PCA-reduced) features, take its posterior π_ik = p(k | f_i) as
the "source predictions", and score LEEP(π, y) = (1/N) Σ_i log Σ_k π_ik P(y_i | k) with
P(y | k) = Σ_{i: y_i = y} π_ik / Σ_i π_ik (`source_probs.leep_kernel`, the same code as LEEP).

References read for this module: google-research `stable_transfer/transferability/nleep.py`
(sklearn `GaussianMixture(n_components, random_state=123)` on the raw features, then its
LEEP, with the log) and the copy in TencentARC/SFDA `metrics.py` (`NLEEP`: `PCA(n_components=0.8)`
first, `GaussianMixture(5·C)` with no seed, and the mean of Σ_k π_ik P(y_i | k) *without* the log).

jtransfer's definition, step by step (every count fixed, so the kernel is static and batched):
1. PCA of the centred features (coordinates U √σ in the features' units, from the shared
   centred Gram eigendecomposition), keeping sklearn's `PCA(n_components=variance)` number of
   components: the smallest k whose explained-variance fraction exceeds `variance` (0.8). The
   coordinates are padded to the static width min(N − 1, D); padded components are exactly 0
   and left out of every sum, so they change nothing.
2. K = `components_per_class` × C components (5 × C as in the paper; the SFDA copy used 1 for
   two datasets); N ≥ K is required.
3. Initialisation as sklearn's `init_params="kmeans"`, with the randomness explicit: K uniform
   draws u = `jax.random.uniform(jax.random.key(seed), (K,), float32)` (seed default 0) pick
   k-means++ centres (the first at index ⌊u_0 N⌋, then each by inverting the CDF of the squared
   distance to the nearest chosen centre at u_j; sklearn's "greedy" extra trials are not done),
   then `KMEANS_ITERS` = 30 Lloyd iterations (an empty cluster keeps its centre) and the final
   assignment gives one-hot responsibilities.
4. EM for a *diagonal*-covariance GMM, exactly sklearn's updates (n_k = Σ_i r_ik + 10·eps,
   weights n_k/N, means, variances Σ_i r_ik (x_i − μ_k)²/n_k + reg_covar with reg_covar = 1e-6):
   the M-step on the k-means responsibilities, then `EM_ITERS` = 100 (sklearn's `max_iter`)
   E/M rounds with no tolerance stop, then a final E-step gives π. Log densities are formed from
   the differences x − μ_k (no ‖x‖² − 2xμ + ‖μ‖² cancellation, which float32 would not survive
   with variances near reg_covar) one component at a time (N·k memory), and normalised with
   logsumexp.

Pitfalls of the public code, and what jtransfer does:
- The seed: the SFDA copy fits its GMM unseeded (`random_state=None`), so its N-LEEP changes
  from run to run; stable_transfer fixes 123. jtransfer makes the seed an option (`seed`,
  default 0) and uses it only through the K draws above; the tests show the spread over seeds
  on a built case is small next to the difference between clearly different feature sets.
- Covariance type: both references fit sklearn's default *full* covariances. jtransfer fits
  diagonal ones (in the PCA basis, where the features are decorrelated as a whole): with the
  retained dimension data-dependent, a static kernel pads to min(N − 1, D), and full
  covariances would cost K·width³ per EM iteration there; with N/K ≈ 10 samples per component
  (500-sample probes) a full covariance in tens of dimensions is singular and held up only by
  reg_covar, i.e. hard assignments; and its Cholesky in float32 fails once the features' scale
  puts its eigenvalues 1e7 apart. So values differ from the references' (documented, not a
  bug of either).
- stable_transfer fits the GMM to the raw D-dimensional features (no PCA, against the paper):
  D×D covariances per component, singular for N < D. jtransfer follows the paper and the SFDA
  copy (PCA to 80% of the variance).
- The SFDA copy returns the mean of Σ_k π_ik P(y_i | k) without the log; jtransfer returns the
  paper's (and stable_transfer's) log form, consistent with `leep`.
- sklearn stops EM once the mean log-likelihood gains < 1e-3; the fixed 100 rounds go on
  towards the same fixed point (static, vmappable; the value differs from an early-stopped fit
  by what those last rounds move).
- Not scale invariant: reg_covar = 1e-6 is absolute (as in sklearn): features of tiny scale
  make every variance 1e-6 and the mixture uninformative. Invariant to a common shift.

As any EM, the fit can land in different local optima for inputs that differ by round-off
where the data sit between components; on the tests' built cases and tests/scores_probes.py's
probes (offsets to 1e4× the spread, scales 1e-8..1e8) float32 matches float64 to ≤ 1.3e-6
absolute. Cost (jitted, this loaded 2-core CPU): ≈ 0.8 s per model at N = 500, D = 1600,
C = 10 (K = 50, width 499), nearly all of it the 100 EM rounds.
"""

from __future__ import annotations

import math

import jax
import jax.numpy as jnp

from jtransfer.scores.compute import score_one
from jtransfer.scores.shared import HIGHEST, Shared
from jtransfer.scores.source_probs import leep_kernel

MIN_PER_CLASS = 1
KMEANS_ITERS = 30
EM_ITERS = 100  # sklearn GaussianMixture's max_iter (its tol = 1e-3 early stop is not used)
REG_COVAR = 1e-6  # sklearn's default, added to every variance
COMPONENTS_PER_CLASS = 5
VARIANCE = 0.8


def _dot(a, b):
  return jnp.matmul(a, b, precision=HIGHEST)


def pca_retained(shared: Shared, variance: float) -> tuple[jax.Array, jax.Array]:
  """([N, w] PCA coordinates in the features' units, largest first, [w] bool kept) with
  w = min(N − 1, D): kept are sklearn's PCA(n_components=variance) components, the rest 0."""
  n, d = shared.n, shared.d
  width = max(1, min(n - 1, d))
  sigma, u = shared.centered_gram_eigh
  total = jnp.sum(sigma)
  sigma, u = sigma[::-1][:width], u[:, ::-1][:, :width]
  before = (jnp.cumsum(sigma) - sigma) / total  # explained fraction of the components before
  kept = before <= variance  # k = 1 + #{j: cumsum_j ≤ variance} (sklearn's searchsorted right)
  coords = u * (jnp.sqrt(sigma) * shared.scale)
  return jnp.where(kept, coords, 0), kept


def _sq_dist(x, centres):
  """[N, K] ‖x_i − c_k‖² from differences, one centre at a time."""
  return jax.lax.map(lambda c: jnp.sum((x - c) ** 2, axis=1), centres).T


def kmeans_plus_plus(x, draws):
  """k-means++ centres [K, w]: the first at ⌊u_0 N⌋, then each where the CDF of the squared
  distance to the nearest chosen centre first exceeds u_j (uniform if all those are 0)."""
  n = x.shape[0]
  k = draws.shape[0]
  first = jnp.minimum(jnp.floor(draws[0] * n).astype(jnp.int32), n - 1)
  centres = jnp.zeros((k, x.shape[1]), x.dtype).at[0].set(x[first])
  nearest = jnp.sum((x - x[first]) ** 2, axis=1)

  def pick(j, state):
    centres, nearest = state
    cdf = jnp.cumsum(nearest)
    total = cdf[-1]
    idx = jnp.sum(cdf <= draws[j] * total).astype(jnp.int32)
    uniform = jnp.floor(draws[j] * n).astype(jnp.int32)
    idx = jnp.minimum(jnp.where(total > 0, idx, uniform), n - 1)
    c = x[idx]
    return centres.at[j].set(c), jnp.minimum(nearest, jnp.sum((x - c) ** 2, axis=1))

  return jax.lax.fori_loop(1, k, pick, (centres, nearest))[0]


def kmeans_labels(x, centres):
  """`KMEANS_ITERS` Lloyd iterations (an empty cluster keeps its centre), then the final
  assignment [N] (ties to the lower index)."""
  k = centres.shape[0]

  def step(_, centres):
    onehot = jax.nn.one_hot(jnp.argmin(_sq_dist(x, centres), axis=1), k, dtype=x.dtype)
    counts = jnp.sum(onehot, axis=0)[:, None]
    means = _dot(onehot.T, x) / jnp.maximum(counts, 1)
    return jnp.where(counts > 0, means, centres)

  centres = jax.lax.fori_loop(0, KMEANS_ITERS, step, centres)
  return jnp.argmin(_sq_dist(x, centres), axis=1)


def _m_step(x, kept, resp):
  """sklearn's diagonal M-step: (log weights [K], means [K, w], variances [K, w])."""
  n = x.shape[0]
  nk = jnp.sum(resp, axis=0) + 10 * jnp.finfo(x.dtype).eps
  means = _dot(resp.T, x) / nk[:, None]
  # two-pass variance per component: Σ_i r_ik (x_i − μ_k)² / n_k
  var = jax.lax.map(lambda a: _dot(a[0], (x - a[1]) ** 2), (resp.T, means)) / nk[:, None]
  var = jnp.where(kept, var + REG_COVAR, 1)
  return jnp.log(nk / n), means, var


def _log_resp(x, kept, params):
  """[N, K] log p(k | x_i) under diagonal Gaussians (padded components left out)."""
  log_w, means, var = params
  log_var = jnp.where(kept, jnp.log(var), 0)

  def component(a):
    mu, v, lv = a
    z = jnp.where(kept, (x - mu) ** 2 / v, 0)
    return -0.5 * (jnp.sum(z, axis=1) + jnp.sum(lv))

  dims = jnp.sum(kept)
  log_prob = jax.lax.map(component, (means, var, log_var)).T  # [N, K]
  log_prob = log_prob - 0.5 * math.log(2 * math.pi) * dims.astype(x.dtype) + log_w
  return log_prob - jax.nn.logsumexp(log_prob, axis=1, keepdims=True)


def gmm_posterior(x, kept, num_components: int, seed: int) -> jax.Array:
  """[N, K] the diagonal GMM's posterior after k-means++ / Lloyd init and `EM_ITERS` rounds."""
  draws = jax.random.uniform(jax.random.key(seed), (num_components,), jnp.float32)
  labels = kmeans_labels(x, kmeans_plus_plus(x, draws.astype(x.dtype)))
  params = _m_step(x, kept, jax.nn.one_hot(labels, num_components, dtype=x.dtype))

  def em(_, params):
    return _m_step(x, kept, jnp.exp(_log_resp(x, kept, params)))

  params = jax.lax.fori_loop(0, EM_ITERS, em, params)
  return jnp.exp(_log_resp(x, kept, params))


def nleep_kernel(
  shared: Shared,
  *,
  components_per_class: int = COMPONENTS_PER_CLASS,
  variance: float = VARIANCE,
  seed: int = 0,
) -> jax.Array:
  """N-LEEP (pure, traceable, vmappable)."""
  x, kept = pca_retained(shared, variance)
  posterior = gmm_posterior(x, kept, components_per_class * shared.num_classes, seed)
  value = leep_kernel(posterior, shared.labels, shared.num_classes)
  # all samples equal: no variance for the PCA, undefined (the public functions raise)
  return jnp.where(jnp.sum(shared.centered_gram_eigh[0]) > 0, value, jnp.nan)


def nleep(
  features,
  labels,
  *,
  num_classes: int,
  components_per_class: int = COMPONENTS_PER_CLASS,
  variance: float = VARIANCE,
  seed: int = 0,
) -> jax.Array:
  """N-LEEP of `features` [N, D] for `labels` [N]: LEEP of a `components_per_class` × C
  component diagonal GMM fitted (seed `seed`) to the PCA coordinates keeping `variance`."""
  return score_one(
    "nleep", features, labels, num_classes=num_classes,
    components_per_class=components_per_class, variance=variance, seed=seed,
  )  # fmt: skip

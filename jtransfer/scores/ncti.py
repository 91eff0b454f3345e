"""NCTI, the neural-collapse transferability indicator (Wang et al., ICCV 2023): three per-model
terms, each registered as its own score, and the pool-relative combination the paper publishes.

Definition (BUserName/NCTI `metrics.py` `NCTI_Score` and `evaluate_metric_group1_cpu.py`, read
for this module): PCA of the centred features to k = 64 components; sklearn's
`LinearDiscriminantAnalysis(solver="svd")` fitted to those k coordinates (class priors
π_c = n_c/N, the pooled within-class covariance with 1/(N − C), directions whose within-class
singular value is ≤ tol = 1e-4 after per-coordinate standardisation dropped, then the between-class
directions, at most C − 1); with a_i the LDA projection of sample i and p(c | i) the LDA posterior
(softmax of −½‖a_i − b_c‖² + log π_c, b_c the projected class means):
- `ncti_seli` ↑ = ‖A − mean(A)‖_*, the nuclear norm of the centred [N, ≤ C − 1] projection
  (the paper's simplex-encoded-label-interpolation term; the code's `all_lowfeat_nuc`);
- `ncti_ncc` ↑ = (1/N) Σ_i p(y_i | i), the mean posterior of the true class (the
  nearest-class-centre term; the code's `sfda_score`, no ConfMix);
- `ncti_vc` ↓ = log Σ_c ‖P_c‖_*, P_c the [n_c, C] posteriors of class c's samples (the
  within-class-variability-collapse term: collapsed classes have rank-one P_c, small norm);
- the published NCTI (pool-relative) = norm(ncc) + norm(seli) − norm(vc), each term min–max
  normalised over the candidate models: `ncti_pool`.

How it is computed: the PCA coordinates are U_k √σ_k from the shared centred Gram
eigendecomposition (components at round-off level, σ ≤ max(N, D)·eps·σ_max, set to 0); the LDA
works on those k columns (an [N, k] SVD of the standardised within-class residuals, a [C, k]
SVD of the weighted class means) and every nuclear norm is an SVD of the matrix itself (no
Gram form: small singular values keep their accuracy in float32). The three terms are computed
once per pass (cached on the `Shared`) whichever of them are asked for. All three are invariant
to a common shift and a global scale.

Pitfalls of the public code, and what jtransfer does:
- Pool-relative: the published score min–max normalises each term over the models being
  ranked (`(t − min)/(max − min)` over `models_hub`), so a model's NCTI changes with the other
  candidates and is not a property of its features. jtransfer stores the three raw terms as
  scores and combines them with `ncti_pool` over a given pool; the analysis report's pool is
  the models ranked for one target and probe at one layer (every stored source, seed and step:
  `jtransfer.analysis.pooled`). A term equal for every model of the pool divides 0 by 0 in the
  reference (NaN for every model); jtransfer gives it 0 (it cannot rank them).
- The shrinkage switch: the reference takes t = max(exp(−Σ of the top 32 PCA variances), 1e-10)
  and fits the unshrunk 'svd' LDA only when t is exactly the floor, i.e. when those variances
  (ddof 1, in the features' units) sum to ≥ 10 ln 10 ≈ 23.03; below that it fits
  `solver="eigen", shrinkage=t`, a different model: ddof 0 instead of N − C (a jump of
  √(N/(N − C)) in SELI at the threshold), a shrunk basis, and as the features shrink (t → 1,
  S_W and S_B both multiples of I) a SELI that is the nuclear norm along whichever C − 1 of the
  degenerate generalised eigenvectors LAPACK returns first: a function of the features' units,
  not of the features. jtransfer always fits the 'svd' LDA: equal to the reference wherever the
  top-32 variances sum to ≥ 23.03 (the layers of real networks: post-ReLU variances are ≫ 1),
  scale invariant everywhere.
- sklearn's PCA(64) picks its randomized solver (unseeded, a few power iterations) at the
  shapes of real probes; jtransfer uses the exact top-64 components (the LDA depends only on
  their span). It raises for N < 64 or D < 64; jtransfer takes k = min(64, N, D). The reference
  keeps the 64th component when the centred data's rank is lower (N ≤ 64): round-off, which the
  LDA's per-coordinate standardisation blows up to unit variance; jtransfer leaves such
  components out (as PARC does). The LDA's absolute 1e-4 on the standardised within-class
  singular values is kept, raised to max(N, k)·eps·s_max where round-off is larger (float32),
  and its "std == 0 → 1" test on the within-class spread of a coordinate is taken at round-off
  (≤ max(N, k)·eps × the coordinate's own spread): a coordinate that only separates classes
  otherwise has round-off residuals that standardising makes unit-variance noise.

Needs N > C and nonzero within-class scatter; otherwise the terms are not finite and the
public functions raise. Cost at N = 500, D = 1600, C = 10 (jitted, float32, this loaded 2-core
CPU): the three terms alone ≈ 22 ms per model with their own Gram and eigh, a few ms beyond the
shared eigendecomposition in the fused pass (k = 64 columns; BENCHMARKS.md).
"""

from __future__ import annotations

import math
from collections.abc import Mapping

import jax
import jax.numpy as jnp
import numpy as np

from jtransfer.scores.compute import score_one
from jtransfer.scores.pool import combine
from jtransfer.scores.shared import HIGHEST, Shared

MIN_PER_CLASS = 1
PCA_DIM = 64
LDA_TOL = 1e-4  # sklearn LinearDiscriminantAnalysis(tol=1e-4), the solver="svd" rank cut
TERMS = ("ncti_seli", "ncti_ncc", "ncti_vc")
POOL_SIGNS = {"ncti_seli": 1.0, "ncti_ncc": 1.0, "ncti_vc": -1.0}  # the published combination


def _dot(a, b):
  return jnp.matmul(a, b, precision=HIGHEST)


def pca_coordinates(shared: Shared, pca_dim: int) -> jax.Array:
  """[N, k] PCA coordinates U_k √σ_k (normalised units; largest last) for k = min(pca_dim, N, D),
  components at round-off level set to 0."""
  n, d = shared.n, shared.d
  k = min(pca_dim, n, d)
  sigma, u = shared.top_eigh(k)
  kept = sigma > max(n, d) * jnp.finfo(sigma.dtype).eps * sigma[-1]
  return u * jnp.where(kept, jnp.sqrt(jnp.where(kept, sigma, 0)), 0)


def lda_svd(x: jax.Array, shared: Shared) -> tuple[jax.Array, jax.Array, jax.Array]:
  """sklearn's solver="svd" LDA fitted to x [N, k]: (projection A [N, m], projected class means
  B [C, m], log priors [C]); m = min(C, k) columns, those beyond the LDA's rank exactly 0."""
  n, k = x.shape
  c = shared.num_classes
  counts = shared.counts
  priors = counts / n
  means = _dot(shared.onehot.T, x) / counts[:, None]
  resid = x - means[shared.labels]
  std = jnp.sqrt(jnp.mean(resid * resid, axis=0))
  # sklearn sets std = 1 where it is exactly 0; a within-class spread at round-off level next
  # to the coordinate's own spread is that 0 (standardising would blow round-off up to unit
  # variance): left out the same way
  eps = jnp.finfo(x.dtype).eps
  zero = std <= max(n, k) * eps * jnp.sqrt(jnp.mean(x * x, axis=0))
  resid = jnp.where(zero, 0, resid)
  std = jnp.where(zero, 1, std)
  # within-class scaling: Σ_W^(-1/2) on the directions whose standardised singular value > tol
  _, s, vt = jnp.linalg.svd(resid / std / math.sqrt(n - c), full_matrices=False)
  keep = s > jnp.maximum(LDA_TOL, max(n, k) * eps * s[0])
  scalings = jnp.where(keep, (vt / std).T / jnp.where(keep, s, 1), 0)  # [k, k]
  xbar = priors @ means
  # between-class directions: SVD of the weighted, whitened class means
  weighted = jnp.sqrt(n * priors / max(c - 1, 1))[:, None] * _dot(means - xbar, scalings)
  _, sb, vbt = jnp.linalg.svd(weighted, full_matrices=False)  # [min(C, k)]
  keep_b = (sb > LDA_TOL * sb[0]) & (jnp.arange(sb.shape[0]) < min(c - 1, k))
  proj = jnp.where(keep_b, _dot(scalings, vbt.T), 0)  # [k, m]
  a = _dot(x - xbar, proj)
  b = _dot(means - xbar, proj)
  # no within-class scatter above tol: the LDA is undefined (the public functions raise)
  a = jnp.where(jnp.any(keep), a, jnp.nan)
  return a, b, jnp.log(priors)


def lda_posterior(a, b, log_priors) -> jax.Array:
  """[N, C] softmax_c(−½‖a_i − b_c‖² + log π_c), from differences."""
  dist = jnp.sum((a[:, None, :] - b[None, :, :]) ** 2, axis=-1)
  return jax.nn.softmax(-0.5 * dist + log_priors, axis=1)


def _nuclear(m: jax.Array) -> jax.Array:
  # A tall [N, k] matrix goes through its k×k R factor first (same singular values): XLA:CPU's
  # SVD, vmapped over the classes, allocates N×N per class (41 GB at N = 32,000, C = 10).
  if m.shape[-2] > m.shape[-1]:
    m = jnp.linalg.qr(m, mode="r")
  return jnp.sum(jnp.linalg.svd(m, compute_uv=False))


def terms(shared: Shared, pca_dim: int = PCA_DIM) -> dict[str, jax.Array]:
  """{ncti_seli, ncti_ncc, ncti_vc} of one feature set, computed once per `Shared`."""
  cache = shared.__dict__.setdefault("_ncti", {})
  if pca_dim not in cache:
    a, b, log_priors = lda_svd(pca_coordinates(shared, pca_dim), shared)
    probs = lda_posterior(a, b, log_priors)
    labels = shared.labels
    seli = _nuclear(a - jnp.mean(a, axis=0))
    ncc = jnp.mean(jnp.take_along_axis(probs, labels[:, None], axis=1))
    member = shared.onehot.T[:, :, None]  # [C, N, 1]: rows of other classes are 0 (same norm)
    vc = jnp.log(jnp.sum(jax.vmap(_nuclear)(member * probs[None])))
    cache[pca_dim] = {"ncti_seli": seli, "ncti_ncc": ncc, "ncti_vc": vc}
  return cache[pca_dim]


def ncti_seli_kernel(shared: Shared, *, pca_dim: int = PCA_DIM) -> jax.Array:
  """NCTI's SELI term (pure, traceable, vmappable)."""
  return terms(shared, pca_dim)["ncti_seli"]


def ncti_ncc_kernel(shared: Shared, *, pca_dim: int = PCA_DIM) -> jax.Array:
  """NCTI's NCC term (pure, traceable, vmappable)."""
  return terms(shared, pca_dim)["ncti_ncc"]


def ncti_vc_kernel(shared: Shared, *, pca_dim: int = PCA_DIM) -> jax.Array:
  """NCTI's VC term (pure, traceable, vmappable)."""
  return terms(shared, pca_dim)["ncti_vc"]


def ncti_seli(features, labels, *, num_classes: int, pca_dim: int = PCA_DIM) -> jax.Array:
  """NCTI's SELI term of `features` [N, D] for `labels` [N]: the nuclear norm of the centred
  LDA projection of the top-`pca_dim` PCA coordinates (↑)."""
  return score_one("ncti_seli", features, labels, num_classes=num_classes, pca_dim=pca_dim)


def ncti_ncc(features, labels, *, num_classes: int, pca_dim: int = PCA_DIM) -> jax.Array:
  """NCTI's NCC term: the mean LDA posterior of the true class (↑)."""
  return score_one("ncti_ncc", features, labels, num_classes=num_classes, pca_dim=pca_dim)


def ncti_vc(features, labels, *, num_classes: int, pca_dim: int = PCA_DIM) -> jax.Array:
  """NCTI's VC term: log Σ_c of the nuclear norms of each class's LDA posteriors (↓)."""
  return score_one("ncti_vc", features, labels, num_classes=num_classes, pca_dim=pca_dim)


def ncti_pool(terms_by_model: Mapping[str, object]) -> np.ndarray:
  """The published NCTI of the M models of one pool: minmax(ncc) + minmax(seli) − minmax(vc),
  from {"ncti_seli": [M], "ncti_ncc": [M], "ncti_vc": [M]} (↑, in [−1, 2])."""
  return combine(terms_by_model, POOL_SIGNS)

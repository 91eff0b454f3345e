"""H-score (Bao et al. 2019) and the shrinkage H-score (Ibrahim et al.). ↑

H-score = trace(pinv(Cov f) · Cov g), g_i = μ_{y_i}, both covariances with ddof 1. With the
centred features Z = F − μ = U S Vᵀ and the class-averaging projection P (P_ij = 1/n_c when i, j
are both in class c), Cov g = ZᵀPZ/(N−1), so

  H = Σ_{k ∈ range(Z)} u_kᵀ P u_k = Σ_k Σ_c (Σ_{i∈c} u_ki)² / n_c,

over the left singular vectors of Z with non-zero singular value: one O(N²·C) pass over the
shared `centered_gram_eigh`, no D×D matrix. The rank is the static min(D, N − 1) further cut at
σ_k ≤ max(N, D)·eps·σ_max (pinv's cut-off for numerically zero directions).

Degenerate case (documented): when N − 1 ≤ D the centred features span all N − 1 directions
orthogonal to 1, and H = trace(P) − 1 = C − 1 exactly, whatever the features (C = classes with
samples). The kernel returns that closed form without any decomposition; a D×D pinv would only
add round-off noise there. Use the shrinkage H-score in that regime.

Shrinkage H-score: Ledoit–Wolf on the centred features exactly as sklearn's estimator (1/N
normalisation): S = ZᵀZ/N, m = tr(S)/D,
  δ = ‖S − m I‖²_F / D,  b = (Σ_i ‖z_i‖⁴ / N − ‖S‖²_F) / (D·N),  a = min(b, δ)/δ (0 if b = 0;
  0 for D = 1, as sklearn: there δ is round-off),
Σ = (1−a) S + a m I, score = trace(pinv(Σ) · (1−a) Cov g). Σ is diagonal in V with
λ_k = (1−a) σ_k/N + a m (and a m on range(Z)'s complement, where Cov g vanishes), so
  score = (1−a)/(N−1) Σ_k σ_k (u_kᵀ P u_k) / λ_k.
‖S‖²_F and Σ_i ‖z_i‖⁴ come from the N×N centred Gram (no D×D matrix), or on the covariance
route (`shared.route`) from the D×D ZᵀZ (no N×N matrix).

Both are invariant to a common shift and a global scale a > 0 (they read the eigendecomposition
of the centred, power-of-two-normalised Gram, `Shared.centered_gram_eigh`). float32 accuracy
and cost: BENCHMARKS.md.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp

from jtransfer.scores.compute import score_one
from jtransfer.scores.shared import HIGHEST, Shared

MIN_PER_CLASS = 1


def class_projection_diag(shared: Shared) -> jax.Array:
  """[N] u_kᵀ P u_k for every eigenvector u_k of the centred Gram (P: class averaging).

  Could move into `Shared` (the H-score and its shrinkage variant both read it).
  """
  _, u = shared.centered_gram_eigh
  sums = jnp.matmul(shared.onehot.T, u, precision=HIGHEST)  # [C, N]: Σ_{i∈c} u_ki
  return jnp.sum(sums**2 / jnp.maximum(shared.counts, 1)[:, None], axis=0)


def _static_range(shared: Shared) -> jax.Array:
  """[r] bool, the top min(D, N − 1) eigenpairs (centring removes the direction of 1)."""
  r = shared.centered_gram_eigh[0].shape[0]
  return jnp.arange(r) >= r - min(shared.d, shared.n - 1)


def _range_mask(shared: Shared) -> jax.Array:
  """[r] bool, eigenpairs of the centred Gram that span range(Z) (pinv's numerical rank)."""
  sigma, _ = shared.centered_gram_eigh
  rtol = max(shared.n, shared.d) * jnp.finfo(sigma.dtype).eps
  return _static_range(shared) & (sigma > rtol * sigma[-1])


def h_score_kernel(shared: Shared) -> jax.Array:
  """H-score (pure, traceable, vmappable); exactly C − 1 when N − 1 ≤ D."""
  if shared.n - 1 <= shared.d:
    return (jnp.sum(shared.counts > 0) - 1).astype(shared.dtype)
  q = class_projection_diag(shared)
  return jnp.sum(jnp.where(_range_mask(shared), q, 0))


def ledoit_wolf_shrinkage(shared: Shared) -> tuple[jax.Array, jax.Array]:
  """sklearn's Ledoit–Wolf shrinkage a and target scale m = tr(S)/D from N×N quantities."""
  n, d = shared.n, shared.d
  sigma, _ = shared.centered_gram_eigh
  r = sigma.shape[0]
  if shared.route == "covariance":  # ‖Z Zᵀ‖²_F = ‖Zᵀ Z‖²_F
    sq = jnp.sum(shared.normalized**2, axis=1)  # ‖z_i‖²
    s_fro2 = jnp.sum(shared.centered_cov**2) / n**2
  else:
    zz = shared.centered_gram
    sq = jnp.diagonal(zz)
    s_fro2 = jnp.sum(zz**2) / n**2
  m = jnp.sum(sq) / (n * d)
  if d == 1:
    # sklearn's rule: one feature is its own target (δ = 0 exactly), shrinkage 0. Computed, δ is
    # round-off and min(b, δ)/δ comes out as 1, which zeroes the score.
    return jnp.zeros((), sigma.dtype), m
  k = min(n, d)
  top = jnp.arange(r) >= r - k
  # ‖S − mI‖²_F over all D eigenvalues of S: the k from the Gram, D − k zeros (no cancellation).
  delta = (jnp.sum(jnp.where(top, (sigma / n - m) ** 2, 0)) + (d - k) * m**2) / d
  beta = (jnp.sum(sq**2) / n - s_fro2) / (d * n)
  beta = jnp.minimum(beta, delta)
  a = jnp.where(beta == 0, 0, beta / jnp.where(delta == 0, 1, delta))
  return a, m


def h_score_shrinkage_kernel(shared: Shared) -> jax.Array:
  """Shrinkage (Ledoit–Wolf) H-score (pure, traceable, vmappable), in N×N form."""
  n = shared.n
  sigma, _ = shared.centered_gram_eigh
  a, m = ledoit_wolf_shrinkage(shared)
  lam = (1 - a) * sigma / n + a * m
  # With a > 0, Σ is invertible and every direction counts (small σ weigh σ/(a m)); only a = 0
  # (no shrinkage) needs pinv's numerical-rank cut.
  keep = jnp.where(a > 0, _static_range(shared), _range_mask(shared)) & (lam > 0)
  q = class_projection_diag(shared)
  terms = jnp.where(keep, sigma * q / jnp.where(keep, lam, 1), 0)
  return (1 - a) / (n - 1) * jnp.sum(terms)


def h_score(features, labels, *, num_classes: int) -> jax.Array:
  """H-score of `features` [N, D] for `labels` [N]; C − 1 when N − 1 ≤ D (uninformative)."""
  return score_one("h_score", features, labels, num_classes=num_classes)


def h_score_shrinkage(features, labels, *, num_classes: int) -> jax.Array:
  """Ledoit–Wolf shrinkage H-score of `features` [N, D] for `labels` [N]."""
  return score_one("h_score_shrinkage", features, labels, num_classes=num_classes)

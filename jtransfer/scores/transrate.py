"""TransRate (Huang et al. 2022): coding-rate gain of the features over the classes. ↑

Z = F − μ (centred once, globally); R(A) = ½ logdet(I + AᵀA / (n_A ε)) with n_A the rows of A;
score = R(Z) − (1/C) Σ_c R(Z_c), Z_c the rows of class c of Z, C the classes with samples.

N×N forms on the Gram route (Sylvester: logdet(I_D + AᵀA/s) = logdet(I_n + AAᵀ/s)), no D×D matrix:
- R(Z) = ½ Σ_k log(1 + σ_k/(N ε)) over the eigenvalues of the shared centred Gram (its static
  top min(D, N − 1): the remaining eigenvalues are exactly 0 and would only add round-off).
- Σ_c R(Z_c) in one go: the block-diagonal matrix B = I + [y_i = y_j] K_ij / (n_{y_i} ε) (K the
  centred Gram) has logdet(B) = Σ_c logdet(I + Z_c Z_cᵀ/(n_c ε)) = 2 Σ_c R(Z_c). One N×N
  Cholesky (N³/3 flops, several times cheaper than one eigh) handles any class sizes with static
  shapes, so the kernel vmaps over models whose class sizes differ.
- On the covariance route (many samples, `Shared.route`) the D×D side of Sylvester's identity
  instead: C Choleskys of I_D + Z_cᵀZ_c/(n_c ε), the class scatters formed with masks (static
  shapes, C·N·D² flops), no N×N matrix.

Invariant to: a common shift (Z is centred once, in the features' dtype, before the Gram). Not
to rescaling F (ε is absolute), as in the paper: float32 agrees with float64 on the rescaled
features while σ/(Nε) stays within float32's range of resolved eigenvalues (see the tests).

float32 accuracy and cost: BENCHMARKS.md.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp

from jtransfer.scores.compute import score_one
from jtransfer.scores.shared import Shared, _dot

MIN_PER_CLASS = 1


def _logdet_unit_plus(a: jax.Array) -> jax.Array:
  """logdet(I + A) for symmetric positive semi-definite A [..., m, m] by Cholesky.

  log L_ii² = log1p(A_ii − Σ_{k<i} L_ik²): the log of the rounded L_ii ≈ 1 would lose
  everything below eps when A is small (small features or large ε).
  """
  chol = jnp.linalg.cholesky(a + jnp.eye(a.shape[-1], dtype=a.dtype))
  lower = jnp.tril(chol, -1)
  return jnp.sum(jnp.log1p(jnp.diagonal(a, axis1=-2, axis2=-1) - jnp.sum(lower * lower, axis=-1)),
                 axis=-1)  # fmt: skip


def within_class_logdet(shared: Shared, eps: float) -> jax.Array:
  """Σ_c logdet(I + Z_c Z_cᵀ / (n_c ε)): one Cholesky of the block-diagonal N×N form, or on
  the covariance route C Choleskys of the D×D class scatters."""
  labels = shared.labels
  if shared.route == "covariance":
    z = shared.normalized
    # [C]: s²/(n_c ε) (0 for an empty class, whose scatter is 0 anyway)
    weight = shared.scale**2 / (jnp.maximum(shared.counts, 1) * eps)
    scatter = jax.lax.map(lambda m: _dot((z * m[:, None]).T, z), shared.onehot.T)  # [C, D, D]
    return jnp.sum(_logdet_unit_plus(scatter * weight[:, None, None]))
  same = labels[:, None] == labels[None, :]
  # [N]: s²/(n_{y_i} ε), s the normalisation of the centred Gram (`Shared.scale`)
  scale = shared.scale**2 / (shared.counts[labels] * eps)
  return _logdet_unit_plus(jnp.where(same, shared.centered_gram * scale[:, None], 0))


def transrate_kernel(shared: Shared, *, eps: float = 1e-4) -> jax.Array:
  """TransRate (pure, traceable, vmappable)."""
  n, d = shared.n, shared.d
  sigma, _ = shared.centered_gram_eigh
  r, rank = sigma.shape[0], min(d, n - 1)
  sigma = jnp.where(jnp.arange(r) >= r - rank, sigma, 0)
  r_all = 0.5 * jnp.sum(jnp.log1p(sigma * (shared.scale**2 / (n * eps))))
  num_present = jnp.sum(shared.counts > 0)
  return r_all - 0.5 * within_class_logdet(shared, eps) / num_present


def transrate(features, labels, *, num_classes: int, eps: float = 1e-4) -> jax.Array:
  """TransRate of `features` [N, D] for `labels` [N] with distortion `eps`."""
  return score_one("transrate", features, labels, num_classes=num_classes, eps=eps)

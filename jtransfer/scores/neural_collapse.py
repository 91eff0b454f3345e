"""Neural-collapse scores (Thakur et al., the NC paper). ↓

`nc_score`, as the authors' released code computes it:
    mean over all N samples of ‖f_i − μ_{y_i}‖
    / mean over ordered class pairs c ≠ c' of ‖μ_c − μ_c'‖.
`nc_score_eq2`, the paper's equation (2):
    Σ_c mean_{i∈c} ‖f_i − μ_c‖ / Σ_{c<c'} ‖μ_c − μ_c'‖,
which equals 2 / (C − 1) times `nc_score` on balanced data. Both use explicit residuals and
direct class-mean differences (no Gram cancellation).

Invariant to: a common shift and a global scale a > 0 (both are ratios of distances, formed
from the centred, normalised features).
"""

from __future__ import annotations

import jax
import jax.numpy as jnp

from jtransfer.scores.compute import score_one
from jtransfer.scores.shared import Shared, _dot

MIN_PER_CLASS = 2


def _pair_mask(shared: Shared) -> jax.Array:
  present = shared.present
  return present[:, None] & present[None, :] & ~jnp.eye(shared.num_classes, dtype=bool)


def nc_score_kernel(shared: Shared) -> jax.Array:
  within = jnp.mean(shared.residual_norms)
  mask = _pair_mask(shared)
  between = jnp.sum(jnp.where(mask, shared.class_mean_distances, 0)) / jnp.sum(mask)
  return within / between


def nc_score_eq2_kernel(shared: Shared) -> jax.Array:
  per_class = _dot(shared.onehot.T, shared.residual_norms) / jnp.maximum(shared.counts, 1)
  mask = _pair_mask(shared)
  # ordered pairs count each unordered pair twice
  between = 0.5 * jnp.sum(jnp.where(mask, shared.class_mean_distances, 0))
  return jnp.sum(per_class) / between


def nc_score(features, labels, *, num_classes: int) -> jax.Array:
  """NC score as in the authors' code (lower = more collapsed = better transfer)."""
  return score_one("nc_score", features, labels, num_classes=num_classes)


def nc_score_eq2(features, labels, *, num_classes: int) -> jax.Array:
  """NC score as the paper's equation (2)."""
  return score_one("nc_score_eq2", features, labels, num_classes=num_classes)

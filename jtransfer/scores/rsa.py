"""Representational similarity analysis score (thesis section 2.2.3). ↑

RDM_ij = 1 − Pearson(f_i, f_j), the correlation between two *samples* across the D feature
coordinates. Score = mean RDM over pairs i ≠ j of different classes − mean RDM over pairs i ≠ j
of the same class, with label masks so classes of any size (≥ 2) work, in any order.

With rows standardised (z_i = centred f_i / its norm), 1 − r_ij = ½‖z_i − z_j‖², so pair sums
reduce to class scatter: Σ_{i,j∈c} ‖z_i − z_j‖² = 2 n_c Σ_{i∈c} ‖z_i − z̄_c‖² and over all pairs
2N Σ_i ‖z_i − z̄‖². That is O(N·D), needs no N×N matrix, and is exact algebra. Rows with zero
variance make Pearson undefined and are rejected (ValueError), not dropped.
(The thesis code's abs(), fixed 50-sample blocks and unsorted rows are not reproduced.)

float32: real features share a large common pattern (channel means), so every r_ij is close to 1
and 1 − r_ij is lost in Σ r_ij. The kernel instead splits each row-centred sample into the
common pattern a (the row-centred feature mean) and its own small part b_i, and forms
z_i − a/‖a‖ = a·(1/‖a + b_i‖ − 1/‖a‖) + b_i/‖a + b_i‖ with the first factor written without
cancellation; the scatter of these small vectors is the scatter of the z_i.

Invariant to: adding one number to every entry, and a global scale a > 0 (not to a per-feature
shift: that changes the correlation between samples; float32 then agrees with float64 on the
shifted features).
"""

from __future__ import annotations

import jax
import jax.numpy as jnp

from jtransfer.scores.compute import score_one
from jtransfer.scores.shared import Shared, _dot, class_residual_sq_norms, map_row_blocks

MIN_PER_CLASS = 2


def _deviations(shared: Shared) -> jax.Array:
  """[N, D] z_i − a/‖a‖: the standardised rows minus the standardised common pattern, a block of
  rows at a time (each [N, D] temporary of a whole-array form is a pass over memory)."""
  a = shared.mean / shared.scale
  a = a - a.mean()  # the common pattern, row-centred
  na2 = jnp.sum(a * a)
  na = jnp.sqrt(na2)
  unit = jnp.where(na > 0, a / jnp.where(na > 0, na, 1), 0)
  features, scale = shared.features, shared.scale

  def rows(r):
    x = features[r] / scale  # power of two: exact; keeps squares in range
    centred = x - x.mean(axis=1, keepdims=True)
    b = centred - a  # each row-centred sample minus the pattern
    b = b - b.mean(axis=1, keepdims=True)  # round-off only: keep every row exactly centred
    ab = _dot(b, a)
    bb = jnp.sum(b * b, axis=1)
    # ‖a + b_i‖ directly: na2 + 2ab + bb cancels when a sample is tiny next to the pattern.
    norm = jnp.sqrt(jnp.sum(centred * centred, axis=1))
    # z_i − â two ways; each row takes the one with the smaller round-off bound (units of eps).
    # Near the pattern, the split form with 1/‖a + b_i‖ − 1/‖a‖ written without cancellation as
    # −(2 a·b_i + ‖b_i‖²) / (‖a + b_i‖ ‖a‖ (‖a + b_i‖ + ‖a‖)): bound |‖a‖/n_i − 1| + ‖b_i‖/n_i,
    # n_i = ‖a + b_i‖. Where a sample is tiny next to the pattern or far from it, the direct
    # difference (bound ~1).
    dw = jnp.where(na > 0, -(2 * ab + bb) / (norm * na * (norm + na)), 1 / norm)
    near = a[None, :] * dw[:, None] + b / norm[:, None]
    far = centred / norm[:, None] - unit[None, :]
    near_bound = jnp.abs(na / norm - 1) + jnp.sqrt(bb) / norm
    return jnp.where((near_bound < 1)[:, None], near, far)

  return map_row_blocks(rows, shared.n, shared.d)


def rsa_kernel(shared: Shared) -> jax.Array:
  v = _deviations(shared)
  n, counts = shared.n, shared.counts
  means = _dot(shared.onehot.T, v) / jnp.maximum(counts, 1)[:, None]  # [C, D]
  within = class_residual_sq_norms(v, means, shared.labels)  # ‖z_i − z̄_{y_i}‖²
  # Σ_i ‖z_i − z̄‖² directly: the within + between split measured 1 ulp apart between a model
  # scored alone and in a vmapped chunk, and the score job's results must not depend on chunks
  total = jnp.sum((v - v.mean(axis=0)) ** 2)
  same = jnp.sum(counts * _dot(shared.onehot.T, within))  # ½ Σ_{same class} ‖z_i − z_j‖²
  same_pairs = jnp.sum(counts * (counts - 1))
  diff_pairs = n * n - jnp.sum(counts**2)
  # RDM = 1 − r = ½‖z_i − z_j‖²: mean(RDM | different) − mean(RDM | same)
  return (n * total - same) / diff_pairs - same / same_pairs


def rsa(features, labels, *, num_classes: int) -> jax.Array:
  """RSA score of `features` [N, D] (D ≥ 2, no constant rows) with `labels` [N]."""
  return score_one("rsa", features, labels, num_classes=num_classes)

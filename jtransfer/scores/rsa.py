"""Representational similarity analysis score (thesis section 2.2.3). ↑

RDM_ij = 1 − Pearson(f_i, f_j), the correlation between two *samples* across the D feature
coordinates. Score = mean RDM over pairs i ≠ j of different classes − mean RDM over pairs i ≠ j
of the same class, with label masks so classes of any size (≥ 2) work, in any order.

With rows standardised (z_i = centred f_i / its norm) Pearson is z_i · z_j, so pair sums reduce
to class sums: Σ_{same class, i≠j} r_ij = Σ_c ‖Σ_{i∈c} z_i‖² − N and Σ_{all i≠j} r_ij =
‖Σ_i z_i‖² − N. That is O(N·D), needs no N×N matrix, and is exact algebra. Rows with zero
variance make Pearson undefined and are rejected (ValueError), not dropped.
(The thesis code's abs(), fixed 50-sample blocks and unsorted rows are not reproduced.)
"""

from __future__ import annotations

import functools

import jax
import jax.numpy as jnp

from jtransfer.scores import validation
from jtransfer.scores.shared import Shared, _dot

MIN_PER_CLASS = 2


def rsa_kernel(shared: Shared) -> jax.Array:
  sums = _dot(shared.onehot.T, shared.standardized_rows)  # [C, D] class sums of z_i
  n = shared.n
  same = jnp.sum(sums**2) - n
  total = jnp.sum(jnp.sum(sums, axis=0) ** 2) - n
  counts = shared.counts
  same_pairs = jnp.sum(counts * (counts - 1))
  diff_pairs = n * n - jnp.sum(counts**2)
  # mean(1 − r | different) − mean(1 − r | same) = mean(r | same) − mean(r | different)
  return same / same_pairs - (total - same) / diff_pairs


@functools.partial(jax.jit, static_argnames=("num_classes",))
def _rsa(features, labels, num_classes):
  return rsa_kernel(Shared(features, labels, num_classes))


def rsa(features, labels, *, num_classes: int) -> jax.Array:
  """RSA score of `features` [N, D] (D ≥ 2, no constant rows) with `labels` [N]."""
  feats, labs = validation.check_features_and_labels(
    features, labels, num_classes, MIN_PER_CLASS, "rsa"
  )
  validation.check_nonconstant_rows(feats, "rsa")
  return _rsa(jnp.asarray(feats), jnp.asarray(labs), num_classes=int(num_classes))

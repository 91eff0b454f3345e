"""Sum-of-squares ratio SSW / TSS (thesis section 2.2.2, with squared norms as its code does). ↓

SSW = Σ_c Σ_{i∈c} ‖f_i − μ_c‖², TSS = Σ_i ‖f_i − μ‖²; defined as 0 when TSS = 0 (all samples
equal). Both sums are formed from explicit residuals of the centred, power-of-two-normalised
features (`Shared.normalized`), not from Gram identities, so float32 keeps its precision under a
large common offset or any units.

Invariant to: a common shift (one vector added to every sample) and a global scale a > 0.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp

from jtransfer.scores.compute import score_one
from jtransfer.scores.shared import Shared

MIN_PER_CLASS = 2


def sum_of_squares_kernel(shared: Shared) -> jax.Array:
  ssw = jnp.sum(shared.residual_sq_norms)
  tss = jnp.sum(shared.normalized**2)
  return jnp.where(tss > 0, ssw / jnp.where(tss > 0, tss, 1), 0)


def sum_of_squares(features, labels, *, num_classes: int) -> jax.Array:
  """Within-class over total sum of squares of `features` [N, D] with `labels` [N]."""
  return score_one("sum_of_squares", features, labels, num_classes=num_classes)

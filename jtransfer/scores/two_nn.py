"""TWO-NN intrinsic dimension (Facco et al. 2017) with Ansuini et al.'s (2019) cleaning. ↓

1. r1, r2: distances to each point's first and second nearest other point.
2. Points with r1 = 0 (exact duplicates: *both* copies) or r1 = r2 (ties) are dropped; they stay
   available as neighbours of the others. Duplicates get distance exactly 0 because neighbour
   distances are re-measured from feature differences (`Shared.neighbours`).
3. μ = r2 / r1 sorted ascending over the N' points left, F_i = i / N'.
4. Least-squares slope through the origin of y = −log(1 − F) on x = log μ, over the first
   floor(fraction · N') points, never including the last two (where 1 − F = 0).

Invariant to: a common shift and a global scale a > 0 (neighbours are searched on the centred,
power-of-two-normalised features, `Shared.normalized`; distances enter only as ratios).

Memory: neighbours come from row blocks of F Fᵀ, so N = 20,000 never holds an N×N matrix.
"""

from __future__ import annotations

import fractions

import jax
import jax.numpy as jnp

from jtransfer.scores.compute import score_one
from jtransfer.scores.shared import Shared


def two_nn_kernel(shared: Shared, *, fraction: float = 0.9) -> jax.Array:
  """TWO-NN ID from `shared.neighbours(2)`; NaN when fewer than 3 points survive cleaning."""
  dist, _ = shared.neighbours(2)
  r1, r2 = dist[:, 0], dist[:, 1]
  keep = (r1 > 0) & (r1 != r2)
  n_kept = keep.sum()
  mu = jnp.sort(jnp.where(keep, r2 / jnp.where(keep, r1, 1), jnp.inf))
  # floor(fraction · N') in exact integer arithmetic (floor(0.9 · N') in float64 is (9 N') // 10;
  # float32 would round 0.9 · 1000 down to 899).
  frac = fractions.Fraction(str(fraction))
  n_fit = jnp.minimum((n_kept * frac.numerator) // frac.denominator, n_kept - 2)
  rank = jnp.arange(1, shared.n + 1)
  use = rank <= n_fit
  x = jnp.where(use, jnp.log(jnp.where(use, mu, 1)), 0)
  cdf = jnp.where(use, rank / jnp.maximum(n_kept, 1), 0).astype(shared.dtype)
  y = -jnp.log1p(-cdf)
  slope = jnp.sum(x * y) / jnp.sum(x * x)
  return jnp.where(n_fit >= 1, slope, jnp.nan)


def two_nn(features, *, fraction: float = 0.9) -> jax.Array:
  """Intrinsic dimension of `features` [N, D] (N ≥ 3); lower is read as better transfer."""
  return score_one("two_nn", features, fraction=fraction)

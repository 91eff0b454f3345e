"""GBC, Gaussian Bhattacharyya coefficient (Pándy et al. 2022). ↑, in [−C(C−1), 0].

1. PCA of the centred features to k = min(pca_dim, N, D) components (sklearn's largest
   allowed). The coordinates are U_k √σ_k from the shared eigendecomposition of the centred Gram
   (Z V_k = U_k S_k), so no D×D matrix. pca_dim = 64 as published; when N or D is smaller all
   directions are kept (a rotation of the data onto its principal axes; the published code,
   via sklearn's PCA(64), would fail there). Components beyond the centred data's rank
   (≤ min(N − 1, D)) have coordinates ≈ 0 and, as with sklearn, are kept: in "diagonal" mode they
   add nothing, in "spherical" mode they enter the mean variance as the floor.
2. Per class: mean and per-dimension variance (ddof 0), floored at 1e-4. "spherical" replaces the
   variance by its mean over the k dimensions (after flooring, as the published code).
3. Bhattacharyya distance between classes c, c' with v̄ = (v_c + v_c')/2:
   D_B = ⅛ Σ_j (μ_c − μ_c')_j² / v̄_j + ½ [Σ log v̄ − ½ Σ log v_c − ½ Σ log v_c'];
   in spherical mode the log part is the single scalar term (no factor k), as the reference.
4. score = −Σ over ordered pairs c ≠ c' (classes with samples) of exp(−D_B).

Invariant to: a common shift (PCA of centred features). Not to scale: the variance floor 1e-4
is absolute (float32 agrees with float64 on the rescaled features).

The PCA subspace is only defined up to rotations within eigenvalues that are (nearly) equal at
the k-th component; like any implementation, the diagonal score then depends on round-off.

float32 vs float64 relative error (diagonal / spherical): 3.3e-7 / 1.1e-8 for N = 500,
D = 1600 ReLU features of MNIST, C = 10; 1.8e-7 / 2.7e-7 for 500 MNIST pixel images;
3.3e-6 / 5.6e-7 for N = 1000 > D = 128. Cost beyond the shared eigendecomposition: < 1 ms.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp

from jtransfer.scores.compute import score_one
from jtransfer.scores.shared import HIGHEST, Shared

GAUSSIANS = ("diagonal", "spherical")
MIN_PER_CLASS = 2
VARIANCE_FLOOR = 1e-4


def pca_coordinates(shared: Shared, pca_dim: int) -> jax.Array:
  """[N, k] centred PCA coordinates, k = min(pca_dim, N, D). Could move into `Shared`."""
  k = min(pca_dim, shared.n, shared.d)
  sigma, u = shared.top_eigh(k)
  # × scale back to the features' units (the variance floor is absolute)
  return u * (jnp.sqrt(sigma) * shared.scale)


def gbc_kernel(shared: Shared, *, gaussian: str = "diagonal", pca_dim: int = 64) -> jax.Array:
  """GBC (pure, traceable, vmappable)."""
  if gaussian not in GAUSSIANS:
    raise ValueError(f"unknown GBC gaussian {gaussian!r}; valid: {GAUSSIANS}")
  x = pca_coordinates(shared, pca_dim)
  counts = jnp.maximum(shared.counts, 1)[:, None]
  means = jnp.matmul(shared.onehot.T, x, precision=HIGHEST) / counts  # [C, k]
  resid = x - means[shared.labels]  # two-pass variance: no E[x²] − E[x]² cancellation
  var = jnp.matmul(shared.onehot.T, resid**2, precision=HIGHEST) / counts
  var = jnp.maximum(var, VARIANCE_FLOOR)
  if gaussian == "spherical":
    var = jnp.mean(var, axis=1, keepdims=True)  # [C, 1]
  log_var = jnp.sum(jnp.log(var), axis=1)  # [C]
  avg = (var[:, None, :] + var[None, :, :]) / 2  # [C, C, k or 1]
  diff2 = (means[:, None, :] - means[None, :, :]) ** 2
  dist = jnp.sum(diff2 / avg, axis=-1) / 8 + 0.5 * (
    jnp.sum(jnp.log(avg), axis=-1) - 0.5 * log_var[:, None] - 0.5 * log_var[None, :]
  )
  present = shared.counts > 0
  pair = present[:, None] & present[None, :] & ~jnp.eye(shared.num_classes, dtype=bool)
  return -jnp.sum(jnp.where(pair, jnp.exp(-dist), 0))


def gbc(
  features, labels, *, num_classes: int, gaussian: str = "diagonal", pca_dim: int = 64
) -> jax.Array:
  """GBC of `features` [N, D] for `labels` [N] (`gaussian` "diagonal" or "spherical")."""
  return score_one(
    "gbc", features, labels, num_classes=num_classes, gaussian=gaussian, pca_dim=pca_dim
  )

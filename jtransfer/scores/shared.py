"""Intermediates shared by many scores, each computed at most once per traced call.

`compute()` builds one `Shared` inside its jitted function and hands it to every requested score
kernel; `functools.cached_property` makes each expensive piece (the Gram matrix, the two
eigendecompositions, class statistics) a single node of the traced graph however many scores
read it. Individual score functions build their own `Shared`, so `compute()` equals calling them
one by one.

Conventions (all kernels rely on them):
- `features` [N, D] floating, `labels` [N] int32 in [0, C), validated before tracing.
- Everything is in the dtype of `features` (float64 under `jax_enable_x64` for references).
- Matmuls use `precision="highest"`.
- N×N forms are used throughout (probe sets are small: N ≤ a few thousand) so no D×D matrix is
  built when N < D; where N > D a kernel may use D×D forms via `cov_eigh`.
"""

from __future__ import annotations

import functools

import jax
import jax.numpy as jnp

HIGHEST = jax.lax.Precision.HIGHEST


def _dot(a, b):
  return jnp.matmul(a, b, precision=HIGHEST)


class Shared:
  """Lazily computed, shared intermediates for one (features, labels) pair."""

  def __init__(self, features: jax.Array, labels: jax.Array | None, num_classes: int | None):
    self.features = features
    self.labels = labels
    self.num_classes = num_classes

  # -- shapes ---------------------------------------------------------------------------------
  @property
  def n(self) -> int:
    return self.features.shape[0]

  @property
  def d(self) -> int:
    return self.features.shape[1]

  @property
  def dtype(self):
    return self.features.dtype

  # -- class statistics -----------------------------------------------------------------------
  @functools.cached_property
  def onehot(self) -> jax.Array:
    """[N, C] one-hot labels in the features' dtype."""
    return jax.nn.one_hot(self.labels, self.num_classes, dtype=self.dtype)

  @functools.cached_property
  def counts(self) -> jax.Array:
    """[C] number of samples per class."""
    return self.onehot.sum(axis=0)

  @functools.cached_property
  def class_means(self) -> jax.Array:
    """[C, D] class means (0 for an empty class)."""
    return _dot(self.onehot.T, self.features) / jnp.maximum(self.counts, 1)[:, None]

  @functools.cached_property
  def mean(self) -> jax.Array:
    """[D] global mean."""
    return self.features.mean(axis=0)

  # -- Gram forms -----------------------------------------------------------------------------
  @functools.cached_property
  def gram(self) -> jax.Array:
    """[N, N] F Fᵀ (uncentred)."""
    return _dot(self.features, self.features.T)

  @functools.cached_property
  def sq_norms(self) -> jax.Array:
    """[N] ‖f_i‖², read off the Gram diagonal."""
    return jnp.diagonal(self.gram)

  @functools.cached_property
  def row_sums(self) -> jax.Array:
    """[N] Σ_k f_ik (for per-sample centring, e.g. RSA's Pearson between samples)."""
    return self.features.sum(axis=1)

  @functools.cached_property
  def centered_gram(self) -> jax.Array:
    """[N, N] Z Zᵀ with Z = F − μ (global mean), derived from the Gram: H G H."""
    g = self.gram
    row = g.mean(axis=0)
    return g - row[:, None] - row[None, :] + g.mean()

  @functools.cached_property
  def gram_eigh(self) -> tuple[jax.Array, jax.Array]:
    """Eigendecomposition of F Fᵀ: (σ [N] ascending, clipped ≥ 0; U [N, N]).

    σ are the squared singular values of F, U its left singular vectors (LogME's basis).
    """
    w, u = jnp.linalg.eigh(self.gram)
    return jnp.maximum(w, 0), u

  @functools.cached_property
  def centered_gram_eigh(self) -> tuple[jax.Array, jax.Array]:
    """Eigendecomposition of Z Zᵀ (σ ascending, clipped ≥ 0; U). PCA, H-score, TransRate."""
    w, u = jnp.linalg.eigh(self.centered_gram)
    return jnp.maximum(w, 0), u

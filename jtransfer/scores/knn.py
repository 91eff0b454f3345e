"""Leave-one-out k-nearest-neighbour accuracy on the probe (a baseline; Sorkhei et al.). ↑

Each sample is classified by a majority vote of its k nearest *other* samples (Euclidean).
Default k = 5. Deterministic tie-breaks: neighbours at equal distance are taken in index order;
among classes with equal votes the one whose nearest voter is closest wins (equivalently, the
class of the first neighbour among the tied classes).

Invariant to: a common shift and a global scale a > 0 (neighbours of the centred, normalised
features, `Shared.normalized`).
"""

from __future__ import annotations

import jax
import jax.numpy as jnp

from jtransfer.scores.compute import score_one
from jtransfer.scores.shared import Shared

DEFAULT_K = 5


def knn_accuracy_kernel(shared: Shared, *, k: int = DEFAULT_K) -> jax.Array:
  _, idx = shared.neighbours(k)
  votes = jax.nn.one_hot(shared.labels[idx], shared.num_classes, dtype=jnp.int32)  # [N, k, C]
  counts = votes.sum(axis=1)
  rank = jnp.arange(k)[None, :, None]
  first = jnp.min(jnp.where(votes > 0, rank, k), axis=1)  # rank of each class' nearest voter
  pred = jnp.argmax(counts * (k + 1) - first, axis=1)
  return jnp.mean((pred == shared.labels).astype(shared.dtype))


def knn_accuracy(features, labels, *, num_classes: int, k: int = DEFAULT_K) -> jax.Array:
  """Leave-one-out kNN accuracy of `features` [N, D] (N > k) with `labels` [N]."""
  return score_one("knn_accuracy", features, labels, num_classes=num_classes, k=k)

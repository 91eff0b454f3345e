"""A class-stratified validation split held out of a target's train split (fine-tune job).

  train_idx, val_idx = split(labels, fraction=0.15, seed=0)

Per class, the round(fraction * n_c) samples with the smallest stable keys (`data.subsets`: the
raw PCG64 stream, identical on every machine and NumPy version) go to validation, at least one
per class with two or more samples and never the class's last sample. The same labels, fraction
and seed always give the same split, whatever the fine-tune seed: every model is selected on the
same held-out examples (the NC paper: 15% of the target for validation).
"""

from __future__ import annotations

import numpy as np

from jtransfer.data import subsets


def split(labels, *, fraction: float, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
  """(train indices, validation indices), both sorted, disjoint, covering every sample."""
  labels = np.asarray(labels)
  if labels.ndim != 1 or labels.size == 0:
    raise ValueError(f"labels must be a non-empty 1-D array, got shape {labels.shape}")
  if isinstance(fraction, bool) or not 0.0 < float(fraction) < 1.0:
    raise ValueError(f"validation fraction must be in (0, 1), got {fraction!r}")
  classes, counts = np.unique(labels, return_counts=True)
  # Per class: round(f * n), at least 1 when the class has 2+ samples, never all of them.
  take = np.minimum(np.maximum(np.rint(fraction * counts), counts >= 2), counts - 1).astype(int)
  rank = subsets.rank_within_class(labels, subsets.sample_keys(labels.size, seed))
  quota = dict(zip(classes.tolist(), take.tolist(), strict=True))
  is_val = np.array([r < quota[c] for r, c in zip(rank.tolist(), labels.tolist(), strict=True)])
  if not is_val.any():
    raise ValueError(f"a validation fraction of {fraction} leaves no validation sample")
  return np.flatnonzero(~is_val), np.flatnonzero(is_val)

"""Balanced, deterministic probe sets: `n` samples per class from one split.

The samples of class c are the `n` of that class with the smallest `subsets.sample_keys(N, seed)`
(raw PCG64 stream: identical on every call, machine and NumPy version). The probe is ordered
class-major (all of class 0, then class 1, ...), ascending dataset index within a class, so
label-sorted block structure (the thesis' RSA plots) needs no re-sorting. Probes are nested:
the probe with n=50 is contained in the probe with n=100 for the same seed.
"""

from __future__ import annotations

import numpy as np

from jtransfer.data import registry, subsets


def probe_indices(
  labels: np.ndarray, per_class: int, *, num_classes: int, seed: int = 0
) -> np.ndarray:
  """Indices of a balanced probe (see module docstring); error if a class has < `per_class`."""
  labels = np.asarray(labels)
  if labels.ndim != 1 or not np.issubdtype(labels.dtype, np.integer):
    raise ValueError(f"labels must be a 1-D integer array, got {labels.dtype}{labels.shape}")
  if int(per_class) != per_class or per_class < 1:
    raise ValueError(f"per_class must be a positive integer, got {per_class}")
  registry.check_labels(labels, num_classes, "probe_indices")
  counts = np.bincount(labels, minlength=num_classes)
  short = np.flatnonzero(counts < per_class)
  if short.size:
    raise ValueError(
      f"classes {short.tolist()} have fewer than {per_class} samples "
      f"(counts {counts[short].tolist()}); lower per_class"
    )
  rank = subsets.rank_within_class(labels, subsets.sample_keys(labels.size, seed))
  chosen = np.flatnonzero(rank < per_class)
  return chosen[np.lexsort((chosen, labels[chosen]))]


def probe_set(
  name: str, split: str, per_class: int, *, seed: int = 0, data_dir: str | None = None
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
  """`(inputs, labels, indices)`: `per_class` samples of every class of `name`'s `split`.

  `indices` index the split as `load(name, split)` returns it. Inputs are un-normalised (apply
  `normalize(name, inputs)` as for training data). Datasets with a random-access source (tfds)
  are read through it, so only the probe's inputs are materialised.
  """
  spec = registry.get(name)
  if spec.source is not None:
    registry.check_split(spec, split)
    src = spec.source(split, registry.resolve_data_dir(data_dir))
    idx = probe_indices(src.labels(), per_class, num_classes=spec.num_classes, seed=seed)
    inputs, labels = src.take(idx)
    registry.check_arrays(spec, inputs, labels)
    return inputs, labels, idx
  inputs, labels = registry.load(name, split, data_dir=data_dir)
  idx = probe_indices(labels, per_class, num_classes=spec.num_classes, seed=seed)
  return inputs[idx], labels[idx], idx

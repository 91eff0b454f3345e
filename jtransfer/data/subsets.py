"""Data-scale and ontology knobs: keep a subset of classes, cap samples per class, keep a fraction.

Randomness comes from `sample_keys(n, seed)`: one uint64 per sample position drawn from the *raw*
stream of `numpy.random.PCG64(seed)`. NumPy guarantees bit generators' raw streams stay the same
across versions and platforms (unlike `Generator` methods), so the same arguments select the
same samples on every machine. Selecting "the k samples of a class with the smallest keys" also
makes selections nested: a cap of 50 per class is a subset of a cap of 100 for the same seed.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence

import numpy as np

from jtransfer.data import registry


def sample_keys(n: int, seed: int) -> np.ndarray:
  """n stable pseudo-random uint64 keys for positions 0..n-1."""
  if int(seed) < 0:
    raise ValueError(f"seed must be non-negative, got {seed}")
  return np.random.PCG64(int(seed)).random_raw(int(n))


def rank_within_class(labels: np.ndarray, keys: np.ndarray) -> np.ndarray:
  """For each sample, its rank (0, 1, ...) among the samples of its class, by ascending key."""
  order = np.lexsort((np.arange(labels.size), keys, labels))  # index breaks (improbable) key ties
  sorted_labels = labels[order]
  first = np.searchsorted(sorted_labels, sorted_labels, side="left")
  rank = np.empty(labels.size, dtype=np.int64)
  rank[order] = np.arange(labels.size) - first
  return rank


def _check_labels(labels: np.ndarray) -> np.ndarray:
  labels = np.asarray(labels)
  if labels.ndim != 1 or not np.issubdtype(labels.dtype, np.integer):
    raise ValueError(f"labels must be a 1-D integer array, got {labels.dtype}{labels.shape}")
  if labels.size and labels.min() < 0:
    raise ValueError("labels must be non-negative")
  return labels


def subset_indices(
  labels: np.ndarray,
  *,
  classes: Sequence[int] | None = None,
  per_class: int | None = None,
  fraction: float | None = None,
  seed: int = 0,
) -> tuple[np.ndarray, np.ndarray]:
  """Indices (ascending, i.e. original order) of the kept samples and their new labels.

  - `classes`: keep only these classes; new label i = classes[i] (the given order).
  - `per_class`: keep min(n_c, per_class) samples of each kept class.
  - `fraction`: keep int(fraction * n_c) samples of each kept class (stratified, floor); a class
    left with 0 samples is an error.
  Both caps may be given; the smaller count wins. Which samples are kept depends only on
  (len(labels), seed) and the labels: see `sample_keys`.
  """
  labels = _check_labels(labels)
  num = int(labels.max()) + 1 if labels.size else 0
  if classes is not None:
    classes = [int(c) for c in classes]
    if not classes:
      raise ValueError("classes must name at least one class")
    if len(set(classes)) != len(classes):
      raise ValueError(f"classes has duplicates: {classes}")
    bad = [c for c in classes if c < 0 or c >= max(num, 1) or not np.any(labels == c)]
    if bad:
      raise ValueError(
        f"classes {bad} have no samples (labels present: {np.unique(labels).tolist()})"
      )
    remap = np.full(max(num, 1), -1, dtype=np.int64)
    remap[classes] = np.arange(len(classes))
    new_labels = remap[labels]
  else:
    new_labels = labels.astype(np.int64)
  keep = new_labels >= 0

  if per_class is not None or fraction is not None:
    counts = np.bincount(new_labels[keep], minlength=int(new_labels.max(initial=-1)) + 1)
    limit = counts.copy()
    if per_class is not None:
      if int(per_class) != per_class or per_class < 1:
        raise ValueError(f"per_class must be a positive integer, got {per_class}")
      limit = np.minimum(limit, int(per_class))
    if fraction is not None:
      if not 0.0 < float(fraction) <= 1.0:
        raise ValueError(f"fraction must be in (0, 1], got {fraction}")
      limit = np.minimum(limit, np.floor(counts * float(fraction)).astype(np.int64))
      empty = np.flatnonzero((counts > 0) & (limit == 0))
      if empty.size:
        raise ValueError(f"fraction={fraction} keeps no samples of classes {empty.tolist()}")
    rank = rank_within_class(np.where(keep, new_labels, -1), sample_keys(labels.size, seed))
    keep &= rank < limit[np.maximum(new_labels, 0)]

  indices = np.flatnonzero(keep)
  return indices, new_labels[indices].astype(np.int32)


def subset(
  inputs: np.ndarray,
  labels: np.ndarray,
  *,
  classes: Sequence[int] | None = None,
  per_class: int | None = None,
  fraction: float | None = None,
  seed: int = 0,
) -> tuple[np.ndarray, np.ndarray]:
  """`(inputs, labels)` restricted by `subset_indices` (labels re-indexed when `classes` is set)."""
  if len(inputs) != len(labels):
    raise ValueError(f"{len(inputs)} inputs but {len(labels)} labels")
  indices, new_labels = subset_indices(
    labels, classes=classes, per_class=per_class, fraction=fraction, seed=seed
  )
  return inputs[indices], new_labels


def task_spec(name: str, *, classes: Sequence[int] | None = None) -> registry.DatasetSpec:
  """The spec of `name` restricted to `classes` (num_classes and class_names re-indexed)."""
  spec = registry.get(name)
  if classes is None:
    return spec
  classes = [int(c) for c in classes]
  bad = [c for c in classes if not 0 <= c < spec.num_classes]
  if bad or len(set(classes)) != len(classes):
    raise ValueError(
      f"classes {classes} must be distinct class indices of {name!r} (0..{spec.num_classes - 1})"
    )
  return dataclasses.replace(
    spec,
    name=f"{name}[classes={','.join(map(str, classes))}]",
    num_classes=len(classes),
    class_names=tuple(spec.class_names[c] for c in classes),
  )


def load_task(
  name: str,
  split: str,
  *,
  classes: Sequence[int] | None = None,
  per_class: int | None = None,
  fraction: float | None = None,
  seed: int = 0,
  data_dir: str | None = None,
) -> tuple[np.ndarray, np.ndarray]:
  """`load(name, split)` followed by `subset(...)`; see `task_spec` for the matching spec."""
  if classes is not None:
    task_spec(name, classes=classes)  # validates classes against the dataset's classes
  inputs, labels = registry.load(name, split, data_dir=data_dir)
  return subset(inputs, labels, classes=classes, per_class=per_class, fraction=fraction, seed=seed)


def eval_subset_index(total: int, examples: int | None, seed: int | None) -> np.ndarray:
  """Rows of the fixed subset a training job evaluates on: the first `examples` of `total`
  (seed None), or `examples` rows drawn with `seed`, in ascending order. The in-memory and the
  streamed jobs both take it from here, so both measure the same rows."""
  n = total if examples is None else min(examples, total)
  if seed is None:
    return np.arange(n)
  rng = np.random.Generator(np.random.PCG64(np.random.SeedSequence([seed])))
  return np.sort(rng.permutation(total)[:n])

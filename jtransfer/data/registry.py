"""Registry of named datasets.

A dataset is registered under its tfds-style name with a `DatasetSpec` that knows how to load
each split as NumPy arrays. Unknown names fail at once, listing the valid ones.

Array convention of `load` (every loader must follow it; `load` checks it):
- images: float32, NHWC, values in [0, 1] *before* normalisation (`normalization.normalize`
  applies the dataset's declared mean/std); uint8 sources are divided by 255.
- audio: float32 [N, samples] (the audio loaders document their own scaling).
- labels: int32, 1-D, in [0, num_classes).
Loaders return fresh, writable arrays (their caches hold private copies).
"""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

DATA_DIR_ENV = "JTRANSFER_DATA_DIR"

# loader(split, data_dir) -> (inputs, labels) as NumPy arrays.
Loader = Callable[[str, str | None], tuple[np.ndarray, np.ndarray]]
# source(split, data_dir) -> random-access source: len(src), src[i] -> (input, label).
SourceFn = Callable[[str, str | None], Any]


@dataclasses.dataclass(frozen=True)
class DatasetSpec:
  name: str
  num_classes: int
  class_names: tuple[str, ...]
  input_shape: tuple[int, ...]  # one example, channels last for images, (samples,) for audio
  splits: tuple[str, ...]
  loader: Loader
  domain: str = "image"  # "image" | "audio"
  description: str = ""
  # Declared normalisation (per channel, applied as (x - mean) / std); empty = identity.
  mean: tuple[float, ...] = ()
  std: tuple[float, ...] = ()
  # (split, why) pairs for splits the dataset has in principle but this copy lacks.
  unavailable_splits: tuple[tuple[str, str], ...] = ()
  # Optional random-access source for datasets too big to materialise (tfds).
  source: SourceFn | None = None
  sample_rate: int | None = None  # audio: Hz of the waveforms (the models' front end reads it)

  def __post_init__(self):
    if len(self.class_names) != self.num_classes:
      raise ValueError(
        f"dataset {self.name!r}: {len(self.class_names)} class names for {self.num_classes} classes"
      )
    if len(self.mean) != len(self.std):
      raise ValueError(f"dataset {self.name!r}: mean and std must have the same length")
    if any(s <= 0 for s in self.std):
      raise ValueError(f"dataset {self.name!r}: std must be positive")
    if self.domain == "audio" and not (self.sample_rate and self.sample_rate > 0):
      raise ValueError(f"audio dataset {self.name!r} must declare its sample_rate")


_REGISTRY: dict[str, DatasetSpec] = {}
# Specs built on first use (e.g. tfds ones whose class names come from tfds metadata).
_LAZY: dict[str, Callable[[], DatasetSpec]] = {}


def register(spec: DatasetSpec) -> DatasetSpec:
  if spec.name in _REGISTRY or spec.name in _LAZY:
    raise ValueError(f"dataset {spec.name!r} is registered twice")
  _REGISTRY[spec.name] = spec
  return spec


def register_lazy(name: str, factory: Callable[[], DatasetSpec]) -> None:
  """Registers `name` whose spec `factory()` builds on the first `get(name)`."""
  if name in _REGISTRY or name in _LAZY:
    raise ValueError(f"dataset {name!r} is registered twice")
  _LAZY[name] = factory


def names() -> tuple[str, ...]:
  return tuple(sorted(set(_REGISTRY) | set(_LAZY)))


def get(name: str) -> DatasetSpec:
  if name in _REGISTRY:
    return _REGISTRY[name]
  if name in _LAZY:
    spec = _LAZY[name]()
    if spec.name != name:
      raise ValueError(f"lazy dataset factory for {name!r} built a spec named {spec.name!r}")
    _REGISTRY[name] = spec
    del _LAZY[name]
    return spec
  raise ValueError(f"unknown dataset {name!r}; valid names: {', '.join(names())}")


def resolve_data_dir(data_dir: str | os.PathLike | None) -> str | None:
  """The explicit argument wins, else $JTRANSFER_DATA_DIR, else None (tfds default)."""
  if data_dir is not None:
    return os.fspath(data_dir)
  return os.environ.get(DATA_DIR_ENV) or None


def check_split(spec: DatasetSpec, split: str) -> None:
  missing = dict(spec.unavailable_splits)
  if split in missing:
    raise ValueError(
      f"dataset {spec.name!r}: split {split!r} is not available: {missing[split]}; "
      f"available splits: {spec.splits}"
    )
  if split not in spec.splits:
    raise ValueError(f"dataset {spec.name!r} has no split {split!r}; valid splits: {spec.splits}")


def load(name: str, split: str, *, data_dir: str | None = None) -> tuple[np.ndarray, np.ndarray]:
  """Returns `(inputs, labels)` NumPy arrays of one split of a named dataset.

  See the module docstring for the exact array convention.
  """
  spec = get(name)
  check_split(spec, split)
  inputs, labels = spec.loader(split, resolve_data_dir(data_dir))
  check_arrays(spec, inputs, labels)
  return inputs, labels


def check_arrays(spec: DatasetSpec, inputs: np.ndarray, labels: np.ndarray) -> None:
  """Checks a loader's output against the convention and the spec (cheap, O(N))."""
  if inputs.dtype != np.float32:
    raise ValueError(f"{spec.name}: loader returned inputs of dtype {inputs.dtype}, not float32")
  if labels.dtype != np.int32:
    raise ValueError(f"{spec.name}: loader returned labels of dtype {labels.dtype}, not int32")
  if inputs.shape[1:] != tuple(spec.input_shape):
    raise ValueError(
      f"{spec.name}: loader returned inputs of shape {inputs.shape}, "
      f"expected [N, {', '.join(map(str, spec.input_shape))}]"
    )
  if labels.shape != (inputs.shape[0],):
    raise ValueError(f"{spec.name}: {labels.shape} labels for {inputs.shape[0]} inputs")
  check_labels(labels, spec.num_classes, spec.name)


def check_labels(labels: np.ndarray, num_classes: int, name: str) -> None:
  if labels.ndim != 1 or (labels.size and (labels.min() < 0 or labels.max() >= num_classes)):
    raise ValueError(f"{name}: labels must be a 1-D array in [0, {num_classes})")


__all__: Sequence[str] = (
  "DatasetSpec",
  "register",
  "register_lazy",
  "names",
  "get",
  "load",
  "resolve_data_dir",
  "check_labels",
  "check_split",
)

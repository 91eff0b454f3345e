"""Registry of named datasets.

A dataset is registered under its tfds-style name with a `DatasetSpec` that knows how to load
each split as NumPy arrays. Unknown names fail at once, listing the valid ones.
"""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Callable, Sequence

import numpy as np

DATA_DIR_ENV = "JTRANSFER_DATA_DIR"

# loader(split, data_dir) -> (inputs, labels) as NumPy arrays.
Loader = Callable[[str, str | None], tuple[np.ndarray, np.ndarray]]


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


_REGISTRY: dict[str, DatasetSpec] = {}


def register(spec: DatasetSpec) -> DatasetSpec:
  if spec.name in _REGISTRY:
    raise ValueError(f"dataset {spec.name!r} is registered twice")
  _REGISTRY[spec.name] = spec
  return spec


def names() -> tuple[str, ...]:
  return tuple(sorted(_REGISTRY))


def get(name: str) -> DatasetSpec:
  try:
    return _REGISTRY[name]
  except KeyError:
    raise ValueError(f"unknown dataset {name!r}; valid names: {', '.join(names())}") from None


def resolve_data_dir(data_dir: str | os.PathLike | None) -> str | None:
  """The explicit argument wins, else $JTRANSFER_DATA_DIR, else None (tfds default)."""
  if data_dir is not None:
    return os.fspath(data_dir)
  return os.environ.get(DATA_DIR_ENV) or None


def load(name: str, split: str, *, data_dir: str | None = None) -> tuple[np.ndarray, np.ndarray]:
  """Returns `(inputs, labels)` NumPy arrays of one split of a named dataset."""
  spec = get(name)
  if split not in spec.splits:
    raise ValueError(f"dataset {name!r} has no split {split!r}; valid splits: {spec.splits}")
  return spec.loader(split, resolve_data_dir(data_dir))


def check_labels(labels: np.ndarray, num_classes: int, name: str) -> None:
  if labels.ndim != 1 or (labels.size and (labels.min() < 0 or labels.max() >= num_classes)):
    raise ValueError(f"{name}: labels must be a 1-D array in [0, {num_classes})")


__all__: Sequence[str] = ("DatasetSpec", "register", "names", "get", "load", "resolve_data_dir")

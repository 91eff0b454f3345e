"""Per-dataset normalisation, declared in each `DatasetSpec` (mean/std per channel).

The thesis code applies torchvision's `Normalize(mean, std)` after `ToTensor()` (pixels in
[0, 1]): `(x - mean) / std` per channel. Its declared values are used here:

- mnist, mnist_split_0_4, mnist_split_5_9: mean 0.1307, std 0.3081
- fashion_mnist: mean 0.2860, std 0.3530
- cifar10, oxford_iiit_pet, cars196: ImageNet mean (0.485, 0.456, 0.406), std (0.229, 0.224, 0.225)
- malaria: mean 0.5, std 0.5 per channel (thesis listing A.2)
- mnist_noise_struct, mnist_noise: none (the thesis loads them with `ToTensor()` only)

Datasets the thesis does not use declare their own (see `images.py`).
"""

from __future__ import annotations

import numpy as np

from jtransfer.data.registry import DatasetSpec, get


def mean_std(name: str) -> tuple[np.ndarray, np.ndarray] | None:
  """The declared (mean, std) float32 arrays of `name`, or None when it is not normalised."""
  spec = get(name)
  if not spec.mean:
    return None
  return np.asarray(spec.mean, np.float32), np.asarray(spec.std, np.float32)


def _check(spec: DatasetSpec, inputs: np.ndarray) -> None:
  if spec.mean and inputs.shape[-1] != len(spec.mean) and len(spec.mean) != 1:
    raise ValueError(
      f"{spec.name}: inputs have {inputs.shape[-1]} channels, the declared normalisation has "
      f"{len(spec.mean)}"
    )


def normalize(name: str, inputs: np.ndarray) -> np.ndarray:
  """`(inputs - mean) / std` per channel (last axis) with `name`'s declared values, float32.

  Returns a new array (the input is not modified); identity (a float32 copy) when the dataset
  declares no normalisation.
  """
  spec = get(name)
  _check(spec, inputs)
  x = np.array(inputs, dtype=np.float32, copy=True)
  if spec.mean:
    x -= np.asarray(spec.mean, np.float32)
    x /= np.asarray(spec.std, np.float32)
  return x


def denormalize(name: str, inputs: np.ndarray) -> np.ndarray:
  """The inverse of `normalize` (for plotting)."""
  spec = get(name)
  _check(spec, inputs)
  x = np.array(inputs, dtype=np.float32, copy=True)
  if spec.mean:
    x *= np.asarray(spec.std, np.float32)
    x += np.asarray(spec.mean, np.float32)
  return x

"""Source tasks for the deciding CNN study: MNIST-family variants at 28x28x1, train and test.

The thesis has six sources; a rank correlation over sources needs many more clusters. These are
built from the data on hand, each a different kind of distance from the targets (MNIST,
Fashion-MNIST):

- domains: `kmnist_split` (Kuzushiji, the 10,000-image copy split 8,000 / 2,000),
  `usps_28` (USPS resized 16 -> 28, split 1,609 / 398), `cifar10_gray28` (CIFAR-10's partial copy,
  grey (ITU-R 601 luma) and resized 32 -> 28);
- class subsets: `fashion_split_0_4`, `fashion_split_5_9`, `mnist_binary_0_1`;
- sample scale: `mnist_n50` (50 training images per class);
- corruption: `mnist_label_noise_50` (half the training labels replaced by uniform draws; the
  test labels stay clean), `mnist_gauss_noise` (N(0, 0.5) pixel noise, clipped to [0, 1], train
  and test), `mnist_inverted` (1 - x).

Splits of the single-split copies and every random draw use `subsets.sample_keys` / seeded PCG64
streams, so they are the same on every machine. Each keeps its parent's declared normalisation,
except `cifar10_gray28`, `mnist_gauss_noise` and `mnist_inverted`, whose constants were measured
on their train splits (the pixel statistics moved).
"""

from __future__ import annotations

import numpy as np
from PIL import Image

from jtransfer.data import images
from jtransfer.data.registry import DatasetSpec, load, register
from jtransfer.data.subsets import rank_within_class, sample_keys, subset_indices

SEED = 1
_SPLITS = ("train", "test")
# cifar10_gray28's train split (4,000 images): mean and std of the grey values.
CIFAR_GRAY_MEAN_STD = ((0.4804,), (0.2319,))
# The corrupted MNIST variants' train splits, measured the same way.
GAUSS_NOISE_MEAN_STD = ((0.2750,), (0.3411,))
INVERTED_MEAN_STD = ((0.8693,), (0.3081,))


def split_single(x: np.ndarray, y: np.ndarray, split: str, test_per_class_fraction: float):
  """A class-stratified train/test split of a copy that has one split: in each class the
  samples with the smallest keys (a `test_per_class_fraction` of the class) are the test set."""
  rank = rank_within_class(y, sample_keys(y.size, SEED))
  counts = np.bincount(y)
  is_test = rank < np.floor(counts[y] * test_per_class_fraction)
  keep = is_test if split == "test" else ~is_test
  return x[keep], y[keep]


def resize(x: np.ndarray, size: int) -> np.ndarray:
  """[N, H, W, 1] float32 in [0, 1] -> [N, size, size, 1], bilinear with antialiasing (PIL)."""
  out = np.empty((x.shape[0], size, size, 1), np.float32)
  for i, img in enumerate(x[..., 0]):
    pil = Image.fromarray(img.astype(np.float32), mode="F")
    out[i, ..., 0] = np.asarray(pil.resize((size, size), Image.Resampling.BILINEAR))
  return np.clip(out, 0.0, 1.0)


def _kmnist(split, data_dir):
  x, y = load("kmnist", "test", data_dir=data_dir)
  return split_single(x, y, split, 0.2)


def _usps(split, data_dir):
  x, y = load("usps", "test", data_dir=data_dir)
  x, y = split_single(x, y, split, 0.2)
  return resize(x, 28), y


def _cifar_gray(split, data_dir):
  x, y = load("cifar10", split, data_dir=data_dir)
  grey = x @ np.asarray([0.299, 0.587, 0.114], np.float32)
  return resize(grey[..., None], 28), y


def _classes(parent: str, classes: tuple[int, ...]):
  def loader(split, data_dir):
    x, y = load(parent, split, data_dir=data_dir)
    idx, new = subset_indices(y, classes=classes)
    return x[idx], new

  return loader


def _mnist_n50(split, data_dir):
  x, y = load("mnist", split, data_dir=data_dir)
  if split == "test":
    return x, y
  idx, new = subset_indices(y, per_class=50, seed=SEED)
  return x[idx], new


def _label_noise(split, data_dir):
  x, y = load("mnist", split, data_dir=data_dir)
  if split == "test":
    return x, y
  rng = np.random.Generator(np.random.PCG64(SEED))
  flip = rng.random(y.size) < 0.5
  noisy = np.where(flip, rng.integers(0, 10, y.size), y).astype(np.int32)
  return x, noisy


def _gauss_noise(split, data_dir):
  x, y = load("mnist", split, data_dir=data_dir)
  rng = np.random.Generator(np.random.PCG64([SEED, _SPLITS.index(split)]))
  noisy = x + rng.normal(0.0, 0.5, x.shape).astype(np.float32)
  return np.clip(noisy, 0.0, 1.0), y


def _inverted(split, data_dir):
  x, y = load("mnist", split, data_dir=data_dir)
  return 1.0 - x, y


def _spec(name, loader, description, *, classes=images.MNIST_CLASSES, mean_std=None):
  mean, std = mean_std or images.MNIST_MEAN_STD
  return DatasetSpec(
    name=name,
    num_classes=len(classes),
    class_names=tuple(classes),
    input_shape=(28, 28, 1),
    splits=_SPLITS,
    loader=loader,
    description=description,
    mean=mean,
    std=std,
  )


for _s in (
  _spec(
    "kmnist_split",
    _kmnist,
    "KMNIST's 10,000-image copy split 8,000 train / 2,000 test (stratified, seed 1).",
    classes=images.KMNIST_CLASSES,
    mean_std=images.KMNIST_MEAN_STD,
  ),
  _spec(
    "usps_28",
    _usps,
    "USPS (2,007 images) resized to 28x28, split 1,609 / 398 (stratified, seed 1).",
    mean_std=images.USPS_MEAN_STD,
  ),
  _spec(
    "cifar10_gray28",
    _cifar_gray,
    "CIFAR-10 partial copy (4,000 / 1,000) in grey, resized to 28x28.",
    classes=images.CIFAR10_CLASSES,
    mean_std=CIFAR_GRAY_MEAN_STD,
  ),
  _spec(
    "fashion_split_0_4",
    _classes("fashion_mnist", (0, 1, 2, 3, 4)),
    "Fashion-MNIST classes 0-4.",
    classes=images.FASHION_MNIST_CLASSES[:5],
    mean_std=images.FASHION_MNIST_MEAN_STD,
  ),
  _spec(
    "fashion_split_5_9",
    _classes("fashion_mnist", (5, 6, 7, 8, 9)),
    "Fashion-MNIST classes 5-9 as labels 0-4.",
    classes=images.FASHION_MNIST_CLASSES[5:],
    mean_std=images.FASHION_MNIST_MEAN_STD,
  ),
  _spec(
    "mnist_binary_0_1",
    _classes("mnist", (0, 1)),
    "MNIST digits 0 and 1 only (2 classes).",
    classes=("0", "1"),
  ),
  _spec("mnist_n50", _mnist_n50, "MNIST with 50 training images per class (test: all)."),
  _spec(
    "mnist_label_noise_50",
    _label_noise,
    "MNIST, half the training labels replaced by uniform draws (seed 1); clean test labels.",
  ),
  _spec(
    "mnist_gauss_noise",
    _gauss_noise,
    "MNIST plus N(0, 0.5) pixel noise, clipped to [0, 1] (seed 1), train and test.",
    mean_std=GAUSS_NOISE_MEAN_STD,
  ),
  _spec(
    "mnist_inverted",
    _inverted,
    "MNIST with inverted intensities (1 - x).",
    mean_std=INVERTED_MEAN_STD,
  ),
):
  register(_s)

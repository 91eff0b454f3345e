"""The offline image datasets in the data dir (layout of ../shared/datasets), registered by name.

| name          | splits (N)                   | files                                         |
|---------------|------------------------------|-----------------------------------------------|
| mnist         | train 60,000 / test 10,000   | mnist/{train,t10k}-*-ubyte.gz                 |
| fashion_mnist | train 60,000 / test 10,000   | fashion-mnist/{train,t10k}-*-ubyte.gz         |
| kmnist        | test 10,000 (train missing)  | kmnist/kmnist-test-{imgs,labels}.npz          |
| cifar10       | train 4,000 / test 1,000     | cifar10-partial/*.bin.gz (a *partial* copy:   |
|               |                              | first 4,000 of data_batch_1, first 1,000 test)|
| usps          | test 2,007 (train missing)   | usps/usps.t.bz2                               |

All return float32 NHWC images in [0, 1] (uint8 / 255; USPS (v + 1) / 2 from [-1, 1], kept
unquantised, where torchvision truncates to uint8) and int32 labels.

Normalisation (`normalization.normalize`): MNIST (0.1307, 0.3081) and Fashion-MNIST
(0.2860, 0.3530) as the thesis code (torchvision `Normalize`); CIFAR-10 with the ImageNet mean/std
as the thesis code. KMNIST and USPS are not in the thesis: their mean/std are the pixel statistics
of the splits available here (KMNIST test, USPS test), computed once and declared below.
"""

from __future__ import annotations

import os

import numpy as np

from jtransfer import errors
from jtransfer.data import readers
from jtransfer.data.registry import DatasetSpec, register

MNIST_MEAN_STD = ((0.1307,), (0.3081,))
FASHION_MNIST_MEAN_STD = ((0.2860,), (0.3530,))
IMAGENET_MEAN_STD = ((0.485, 0.456, 0.406), (0.229, 0.224, 0.225))
# Pixel mean/std of the available splits (see module docstring), rounded to 4 digits.
KMNIST_MEAN_STD = ((0.1846,), (0.3416,))
USPS_MEAN_STD = ((0.2614,), (0.3087,))

MNIST_CLASSES = tuple(str(d) for d in range(10))
FASHION_MNIST_CLASSES = (
  "T-shirt/top",
  "Trouser",
  "Pullover",
  "Dress",
  "Coat",
  "Sandal",
  "Shirt",
  "Sneaker",
  "Bag",
  "Ankle boot",
)
KMNIST_CLASSES = ("お", "き", "す", "つ", "な", "は", "ま", "や", "れ", "を")
CIFAR10_CLASSES = (
  "airplane",
  "automobile",
  "bird",
  "cat",
  "deer",
  "dog",
  "frog",
  "horse",
  "ship",
  "truck",
)

_MNIST_LIKE_COUNTS = {"train": 60_000, "test": 10_000}
_IDX_PREFIX = {"train": "train", "test": "t10k"}
CIFAR_PARTIAL_COUNTS = {"train": 4_000, "test": 1_000}
_CIFAR_FILES = {"train": "data_batch_1_first4000.bin.gz", "test": "test_batch_first1000.bin.gz"}
USPS_TEST_COUNT = 2_007


def _need_dir(data_dir: str | None, name: str) -> str:
  if data_dir is None:
    raise errors.UserError(
      f"dataset {name!r} is read from the offline data dir: pass data_dir=... or set "
      "$JTRANSFER_DATA_DIR (e.g. to ../shared/datasets)"
    )
  return data_dir


def to_unit_float(images_u8: np.ndarray) -> np.ndarray:
  """uint8 [N, H, W] or [N, H, W, C] -> float32 NHWC in [0, 1] (exact division by 255)."""
  x = images_u8.astype(np.float32)
  x /= 255.0
  return x if x.ndim == 4 else x[..., None]


def _idx_loader(folder: str, name: str):
  def load(split: str, data_dir: str | None):
    root = os.path.join(_need_dir(data_dir, name), folder)
    n, prefix = _MNIST_LIKE_COUNTS[split], _IDX_PREFIX[split]
    images = readers.read_idx(
      os.path.join(root, f"{prefix}-images-idx3-ubyte.gz"), shape=(n, 28, 28)
    )
    labels = readers.read_idx(os.path.join(root, f"{prefix}-labels-idx1-ubyte.gz"), shape=(n,))
    return to_unit_float(images), labels.astype(np.int32)

  return load


def _kmnist_loader(split: str, data_dir: str | None):
  root = os.path.join(_need_dir(data_dir, "kmnist"), "kmnist")
  images = readers.read_npz_array(
    os.path.join(root, "kmnist-test-imgs.npz"), shape=(10_000, 28, 28)
  )
  labels = readers.read_npz_array(os.path.join(root, "kmnist-test-labels.npz"), shape=(10_000,))
  return to_unit_float(images), labels.astype(np.int32)


def _cifar_loader(split: str, data_dir: str | None):
  path = os.path.join(_need_dir(data_dir, "cifar10"), "cifar10-partial", _CIFAR_FILES[split])
  images, labels = readers.read_cifar_bin(path, num_records=CIFAR_PARTIAL_COUNTS[split])
  return to_unit_float(images), labels.astype(np.int32)


def _usps_loader(split: str, data_dir: str | None):
  path = os.path.join(_need_dir(data_dir, "usps"), "usps", "usps.t.bz2")
  values, raw_labels = readers.read_libsvm_bz2(path, num_samples=USPS_TEST_COUNT, num_features=256)
  if raw_labels.min() < 1 or raw_labels.max() > 10:
    raise ValueError(
      f"{path}: USPS labels must run 1..10, got {raw_labels.min()}..{raw_labels.max()}"
    )
  if values.min() < -1.0 - 1e-6 or values.max() > 1.0 + 1e-6:
    raise ValueError(f"{path}: USPS values must lie in [-1, 1]")
  images = np.clip((values + 1.0) * 0.5, 0.0, 1.0).astype(np.float32, copy=False)
  return images.reshape(-1, 16, 16, 1), (raw_labels - 1).astype(np.int32)


register(
  DatasetSpec(
    name="mnist",
    num_classes=10,
    class_names=MNIST_CLASSES,
    input_shape=(28, 28, 1),
    splits=("train", "test"),
    loader=_idx_loader("mnist", "mnist"),
    description="MNIST handwritten digits, 60,000 train / 10,000 test (offline IDX files).",
    mean=MNIST_MEAN_STD[0],
    std=MNIST_MEAN_STD[1],
  )
)
register(
  DatasetSpec(
    name="fashion_mnist",
    num_classes=10,
    class_names=FASHION_MNIST_CLASSES,
    input_shape=(28, 28, 1),
    splits=("train", "test"),
    loader=_idx_loader("fashion-mnist", "fashion_mnist"),
    description="Fashion-MNIST, 60,000 train / 10,000 test (offline IDX files).",
    mean=FASHION_MNIST_MEAN_STD[0],
    std=FASHION_MNIST_MEAN_STD[1],
  )
)
register(
  DatasetSpec(
    name="kmnist",
    num_classes=10,
    class_names=KMNIST_CLASSES,
    input_shape=(28, 28, 1),
    splits=("test",),
    loader=_kmnist_loader,
    description="Kuzushiji-MNIST, test split only (10,000 images); the train images are missing.",
    mean=KMNIST_MEAN_STD[0],
    std=KMNIST_MEAN_STD[1],
    unavailable_splits=(
      (
        "train",
        "the 60,000 KMNIST train images (kmnist-train-imgs.npz) are missing from the data dir",
      ),
    ),
  )
)
register(
  DatasetSpec(
    name="cifar10",
    num_classes=10,
    class_names=CIFAR10_CLASSES,
    input_shape=(32, 32, 3),
    splits=("train", "test"),
    loader=_cifar_loader,
    description=(
      "CIFAR-10, PARTIAL offline copy: train = first 4,000 of data_batch_1, test = first 1,000 "
      "of test_batch (not class balanced). The full set is 'tfds:cifar10'."
    ),
    mean=IMAGENET_MEAN_STD[0],
    std=IMAGENET_MEAN_STD[1],
  )
)
register(
  DatasetSpec(
    name="usps",
    num_classes=10,
    class_names=MNIST_CLASSES,
    input_shape=(16, 16, 1),
    splits=("test",),
    loader=_usps_loader,
    description="USPS digits (LIBSVM version), test split only: 2,007 images of 16x16.",
    mean=USPS_MEAN_STD[0],
    std=USPS_MEAN_STD[1],
    unavailable_splits=(("train", "the USPS train file usps.bz2 (7,291 samples) is missing"),),
  )
)

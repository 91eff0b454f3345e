"""The thesis' derived MNIST source tasks (thesis section 2.1.3, listing A.1).

- `mnist_split_0_4`: the MNIST samples of digits 0-4, labels unchanged (0..4). 30,596 train /
  5,139 test (the thesis rounds this to "30,000 / 5,000").
- `mnist_split_5_9`: the MNIST samples of digits 5-9, labels re-indexed to 0..4 (digit - 5).
  29,404 train / 4,861 test.
- `mnist_noise_struct`: every image is uniform noise U[0, 1) over 28x28, except that for each
  label a fixed set of int(784 * 0.1) = 78 pixel positions holds fixed, label-specific values
  (themselves drawn U[0, 1)); labels are MNIST's, sample for sample. The positions and values of a
  label are shared by train and test (as in the thesis script), so the structure is learnable
  and transfers to the test split.
- `mnist_noise`: pure U[0, 1) noise with MNIST's labels (nothing learnable; the lower bound).

Randomness follows the thesis script (`np.random.seed(seed)` then, in this order: train noise
[60000, 784], test noise [10000, 784], and per label 0..9 `choice(784, 78, replace=False)` then
`uniform(0, 1, 78)`), using NumPy's legacy `RandomState`, whose stream NumPy keeps fixed across
versions. The registered datasets use seed 1, the thesis' `set_seed(1)`; other seeds via
`noise_struct_split(...)` / `noise_split(...)`. The noise tasks need only MNIST's label files.
Values are float32 in [0, 1] (the thesis keeps float64) and are not normalised (the thesis loads
them with `ToTensor()` only).
"""

from __future__ import annotations

import functools
import os

import numpy as np

from jtransfer.data import images, readers
from jtransfer.data.registry import DatasetSpec, load, register

NUM_PIXELS = 28 * 28
STRUCT_RATIO = 0.1
THESIS_SEED = 1
_COUNTS = {"train": 60_000, "test": 10_000}
_ROWS_PER_CHUNK = 5_000


def _mnist_labels(split: str, data_dir: str | None) -> np.ndarray:
  root = os.path.join(images._need_dir(data_dir, "mnist"), "mnist")
  prefix = "train" if split == "train" else "t10k"
  labels = readers.read_idx(
    os.path.join(root, f"{prefix}-labels-idx1-ubyte.gz"), shape=(_COUNTS[split],)
  )
  return labels.astype(np.int32)


def _skip(rs: np.random.RandomState, count: int) -> None:
  for start in range(0, count, _ROWS_PER_CHUNK * NUM_PIXELS):
    rs.random_sample(min(_ROWS_PER_CHUNK * NUM_PIXELS, count - start))


def _noise_rows(rs: np.random.RandomState, rows: int) -> np.ndarray:
  """rows x 784 uniform draws as float32, drawn in chunks (same stream as one big draw)."""
  out = np.empty((rows, NUM_PIXELS), dtype=np.float32)
  for start in range(0, rows, _ROWS_PER_CHUNK):
    stop = min(rows, start + _ROWS_PER_CHUNK)
    # random_sample is uniform(0, 1) exactly (0 + 1 * u), without the affine step.
    out[start:stop] = rs.random_sample((stop - start, NUM_PIXELS))
  return out


def _split_noise(split: str, seed: int) -> np.ndarray:
  rs = np.random.RandomState(seed)
  if split == "test":
    _skip(rs, _COUNTS["train"] * NUM_PIXELS)
  return _noise_rows(rs, _COUNTS[split])


@functools.lru_cache(maxsize=8)
def struct_pattern(seed: int = THESIS_SEED, ratio: float = STRUCT_RATIO):
  """(positions [10, k], values [10, k] float32) of the fixed pixels per label; k = 784 * ratio."""
  if not 0.0 < ratio < 1.0:
    raise ValueError(f"ratio must be in (0, 1), got {ratio}")
  k = int(NUM_PIXELS * ratio)
  rs = np.random.RandomState(seed)
  _skip(rs, (_COUNTS["train"] + _COUNTS["test"]) * NUM_PIXELS)
  positions = np.empty((10, k), dtype=np.int64)
  values = np.empty((10, k), dtype=np.float32)
  for label in range(10):
    positions[label] = rs.choice(NUM_PIXELS, k, replace=False)
    values[label] = rs.uniform(0.0, 1.0, k)
  positions.flags.writeable = False
  values.flags.writeable = False
  return positions, values


def noise_split(split: str, *, seed: int = THESIS_SEED, data_dir: str | None = None):
  """`mnist_noise` for any seed: (float32 [N, 28, 28, 1] uniform noise, MNIST's int32 labels)."""
  labels = _mnist_labels(split, data_dir)
  return _split_noise(split, seed).reshape(-1, 28, 28, 1), labels


def noise_struct_split(
  split: str, *, seed: int = THESIS_SEED, ratio: float = STRUCT_RATIO, data_dir: str | None = None
):
  """`mnist_noise_struct` for any seed / ratio (see module docstring)."""
  labels = _mnist_labels(split, data_dir)
  x = _split_noise(split, seed)
  positions, values = struct_pattern(seed, ratio)
  # Vectorised form of the thesis' per-label loop: row i gets its label's pattern.
  x[np.arange(x.shape[0])[:, None], positions[labels]] = values[labels]
  return x.reshape(-1, 28, 28, 1), labels


def _split_loader(digits: tuple[int, ...]):
  def loader(split: str, data_dir: str | None):
    x, y = load("mnist", split, data_dir=data_dir)
    keep = np.isin(y, digits)
    return x[keep], (y[keep] - digits[0]).astype(np.int32)

  return loader


_MNIST_KW = dict(
  input_shape=(28, 28, 1),
  splits=("train", "test"),
  mean=images.MNIST_MEAN_STD[0],
  std=images.MNIST_MEAN_STD[1],
)
register(
  DatasetSpec(
    name="mnist_split_0_4",
    num_classes=5,
    class_names=("0", "1", "2", "3", "4"),
    loader=_split_loader((0, 1, 2, 3, 4)),
    description="MNIST digits 0-4 (thesis 'MNIST split 1'); 30,596 train / 5,139 test.",
    **_MNIST_KW,
  )
)
register(
  DatasetSpec(
    name="mnist_split_5_9",
    num_classes=5,
    class_names=("5", "6", "7", "8", "9"),
    loader=_split_loader((5, 6, 7, 8, 9)),
    description="MNIST digits 5-9 as labels 0-4 (thesis 'MNIST split 2'); 29,404 / 4,861.",
    **_MNIST_KW,
  )
)
register(
  DatasetSpec(
    name="mnist_noise_struct",
    num_classes=10,
    class_names=images.MNIST_CLASSES,
    input_shape=(28, 28, 1),
    splits=("train", "test"),
    loader=lambda split, data_dir: noise_struct_split(split, data_dir=data_dir),
    description="Uniform noise, 78 pixels fixed per label (thesis seed 1); MNIST's labels.",
  )
)
register(
  DatasetSpec(
    name="mnist_noise",
    num_classes=10,
    class_names=images.MNIST_CLASSES,
    input_shape=(28, 28, 1),
    splits=("train", "test"),
    loader=lambda split, data_dir: noise_split(split, data_dir=data_dir),
    description="Pure uniform noise with MNIST's labels (thesis seed 1).",
  )
)

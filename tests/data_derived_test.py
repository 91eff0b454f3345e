"""The thesis' derived MNIST tasks have exactly the documented properties."""

import numpy as np
import pytest
import scipy.stats

from jtransfer import data
from jtransfer.data import derived

K = int(784 * 0.1)  # 78 fixed pixels per label


@pytest.mark.parametrize("split", ["train", "test"])
def test_mnist_splits(data_dir, split):
  x, y = data.load("mnist", split, data_dir=data_dir)
  for name, digits in [("mnist_split_0_4", range(0, 5)), ("mnist_split_5_9", range(5, 10))]:
    xs, ys = data.load(name, split, data_dir=data_dir)
    keep = np.array([label in digits for label in y])
    assert data.get(name).num_classes == 5
    assert set(np.unique(ys)) == {0, 1, 2, 3, 4}
    np.testing.assert_array_equal(ys + digits[0], y[keep])  # only these digits, in MNIST order
    np.testing.assert_array_equal(xs, x[keep])
    np.testing.assert_array_equal(np.bincount(ys), np.bincount(y)[digits[0] : digits[0] + 5])


def _fixed_positions(x, y, label):
  """Pixel positions constant over every sample of `label`, and their values."""
  rows = x.reshape(-1, 784)[y == label]
  constant = np.all(rows == rows[0], axis=0)
  return np.flatnonzero(constant), rows[0, constant]


def _check_uniform(values):
  assert values.min() >= 0.0 and values.max() <= 1.0
  n = values.size  # 6 standard errors: mean sd sqrt(1/12n), variance sd sqrt(1/180n)
  assert abs(values.mean() - 0.5) < 6 * np.sqrt(1 / 12 / n)
  assert abs(values.var() - 1 / 12) < 6 * np.sqrt(1 / 180 / n)
  sample = values[:: max(1, values.size // 200_000)]
  assert scipy.stats.kstest(sample, "uniform").pvalue > 1e-4


def test_noise_struct_test_split(data_dir):
  x, y = data.load("mnist_noise_struct", "test", data_dir=data_dir)
  _, y_mnist = data.load("mnist", "test", data_dir=data_dir)
  np.testing.assert_array_equal(y, y_mnist)
  assert x.shape == (10000, 28, 28, 1) and x.dtype == np.float32
  positions, values = derived.struct_pattern(derived.THESIS_SEED)
  assert positions.shape == values.shape == (10, K)
  free = []
  for label in range(10):
    pos, val = _fixed_positions(x, y, label)
    assert pos.size == K  # exactly 10% of the pixels are constant for this label ...
    order = np.argsort(positions[label])
    np.testing.assert_array_equal(pos, positions[label][order])
    np.testing.assert_array_equal(val, values[label][order])
    mask = np.ones(784, bool)
    mask[pos] = False
    free.append(x.reshape(-1, 784)[y == label][:, mask].ravel())
  _check_uniform(np.concatenate(free))  # ... and all others are U[0, 1) noise
  _check_uniform(values.ravel())  # the label-specific values are uniform draws too
  # Patterns differ between labels (positions drawn independently per label).
  assert len({tuple(sorted(p)) for p in positions}) == 10


def test_noise_struct_pattern_is_shared_by_train_and_test(data_dir):
  x, y = data.load("mnist_noise_struct", "train", data_dir=data_dir)
  np.testing.assert_array_equal(y, data.load("mnist", "train", data_dir=data_dir)[1])
  positions, values = derived.struct_pattern(derived.THESIS_SEED)
  for label in (0, 9):
    pos, val = _fixed_positions(x, y, label)
    np.testing.assert_array_equal(pos, np.sort(positions[label]))
    np.testing.assert_array_equal(val, values[label][np.argsort(positions[label])])


def test_noise_struct_other_seed(data_dir):
  x1, _ = derived.noise_struct_split("test", seed=1, data_dir=data_dir)
  x2, y2 = derived.noise_struct_split("test", seed=2, data_dir=data_dir)
  assert not np.array_equal(x1, x2)
  for label in range(10):
    pos, _ = _fixed_positions(x2, y2, label)
    np.testing.assert_array_equal(pos, np.sort(derived.struct_pattern(2)[0][label]))


def test_mnist_noise(data_dir):
  x, y = data.load("mnist_noise", "test", data_dir=data_dir)
  np.testing.assert_array_equal(y, data.load("mnist", "test", data_dir=data_dir)[1])
  assert x.shape == (10000, 28, 28, 1)
  for label in range(10):
    assert _fixed_positions(x, y, label)[0].size == 0  # no structure at all
  _check_uniform(x.ravel())
  np.testing.assert_array_equal(x, data.load("mnist_noise", "test", data_dir=data_dir)[0])


def test_noise_struct_reproduces_the_thesis_script(data_dir):
  """Thesis listing A.1 with np.random.seed(1) (its set_seed(1)), float64, then cast."""
  _, y_test = data.load("mnist", "test", data_dir=data_dir)
  rs = np.random.RandomState(1)
  train = rs.uniform(0, 1, (60000, 784))
  test = rs.uniform(0, 1, (10000, 784))
  del train
  for label in range(0, 10):
    idx = rs.choice(784, int(784 * 0.1), replace=False)
    label_values = rs.uniform(0, 1, int(784 * 0.1))
    for i in np.flatnonzero(y_test == label):
      test[i][idx] = label_values
  x, _ = data.load("mnist_noise_struct", "test", data_dir=data_dir)
  np.testing.assert_array_equal(x.reshape(-1, 784), test.astype(np.float32))

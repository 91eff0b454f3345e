"""Probe sets and the subset knobs: balanced, exact, deterministic, seed-dependent."""

import numpy as np
import pytest

from jtransfer import data


def _labels(counts, seed=0):
  """Shuffled labels with the given class counts."""
  y = np.repeat(np.arange(len(counts)), counts)
  return np.random.default_rng(seed).permutation(y).astype(np.int32)


def _reference_pick(labels, class_counts, seed):
  """Independent loop: per class, the `count` positions with the smallest raw PCG64 keys."""
  keys = np.random.PCG64(seed).random_raw(labels.size)
  picked = []
  for c, count in class_counts.items():
    idx = np.flatnonzero(labels == c)
    by_key = sorted(idx.tolist(), key=lambda i: (int(keys[i]), i))
    picked.append(sorted(by_key[:count]))
  return picked


# ---- probe ---------------------------------------------------------------------------------------


def test_probe_indices_balanced_ordered_and_match_reference():
  y = _labels([30, 12, 25, 40])
  idx = data.probe_indices(y, 10, num_classes=4, seed=3)
  assert idx.size == 40
  np.testing.assert_array_equal(y[idx], np.repeat(np.arange(4), 10))  # class-major order
  expected = _reference_pick(y, {c: 10 for c in range(4)}, seed=3)
  np.testing.assert_array_equal(idx, np.concatenate(expected))


def test_probe_is_stable_nested_and_seed_dependent():
  y = _labels([50] * 5)
  a = data.probe_indices(y, 10, num_classes=5, seed=0)
  np.testing.assert_array_equal(a, data.probe_indices(y, 10, num_classes=5, seed=0))
  assert not np.array_equal(a, data.probe_indices(y, 10, num_classes=5, seed=1))
  bigger = data.probe_indices(y, 20, num_classes=5, seed=0)
  assert set(a) <= set(bigger)


def test_probe_errors():
  y = _labels([5, 3, 5])
  with pytest.raises(ValueError, match=r"classes \[1\] have fewer than 4 samples \(counts \[3\]\)"):
    data.probe_indices(y, 4, num_classes=3)
  with pytest.raises(ValueError, match=r"classes \[3\] have fewer"):
    data.probe_indices(y, 1, num_classes=4)  # a class with no samples at all
  with pytest.raises(ValueError, match="positive integer"):
    data.probe_indices(y, 0, num_classes=3)
  with pytest.raises(ValueError, match="labels must be"):
    data.probe_indices(y, 1, num_classes=2)


def test_probe_set_on_real_mnist(data_dir):
  x, y, idx = data.probe_set("mnist", "test", 50, data_dir=data_dir)
  assert x.shape == (500, 28, 28, 1)
  np.testing.assert_array_equal(np.bincount(y), [50] * 10)
  full_x, full_y = data.load("mnist", "test", data_dir=data_dir)
  np.testing.assert_array_equal(x, full_x[idx])
  np.testing.assert_array_equal(y, full_y[idx])
  x2, _, idx2 = data.probe_set("mnist", "test", 50, data_dir=data_dir)
  np.testing.assert_array_equal(idx, idx2)
  np.testing.assert_array_equal(x, x2)
  _, _, idx3 = data.probe_set("mnist", "test", 50, seed=1, data_dir=data_dir)
  assert len(set(idx) & set(idx3)) < 100  # different seed, (mostly) different samples
  with pytest.raises(ValueError, match="fewer than 900"):
    data.probe_set("mnist", "test", 900, data_dir=data_dir)  # class 5 has 892


# ---- subset knobs ---------------------------------------------------------------------------


def test_subset_classes_reindexed_in_given_order():
  y = _labels([4, 5, 6, 7])
  x = np.arange(y.size) * 10
  xs, ys = data.subset(x, y, classes=[3, 1])
  keep = np.flatnonzero((y == 3) | (y == 1))
  np.testing.assert_array_equal(xs, x[keep])  # original order kept
  np.testing.assert_array_equal(ys, np.where(y[keep] == 3, 0, 1))
  assert ys.dtype == np.int32


def test_subset_per_class_and_fraction_exact_and_reference():
  y = _labels([40, 9, 25, 31], seed=2)
  idx, ys = data.subset_indices(y, per_class=10, seed=5)
  np.testing.assert_array_equal(np.bincount(ys), [10, 9, 10, 10])  # min(n_c, cap)
  expected = _reference_pick(y, {0: 10, 1: 9, 2: 10, 3: 10}, seed=5)
  np.testing.assert_array_equal(idx, np.sort(np.concatenate(expected)))

  idx, ys = data.subset_indices(y, fraction=0.5, seed=5)
  np.testing.assert_array_equal(np.bincount(ys), [20, 4, 12, 15])  # floor(0.5 * n_c)
  expected = _reference_pick(y, {0: 20, 1: 4, 2: 12, 3: 15}, seed=5)
  np.testing.assert_array_equal(idx, np.sort(np.concatenate(expected)))

  idx, ys = data.subset_indices(y, classes=[2, 0], per_class=15, fraction=0.5, seed=5)
  np.testing.assert_array_equal(np.bincount(ys), [12, 15])  # smaller of both caps
  np.testing.assert_array_equal(y[idx], np.where(ys == 0, 2, 0))


def test_subset_deterministic_and_seed_dependent():
  y = _labels([100] * 3)
  a, _ = data.subset_indices(y, per_class=20, seed=0)
  np.testing.assert_array_equal(a, data.subset_indices(y, per_class=20, seed=0)[0])
  assert not np.array_equal(a, data.subset_indices(y, per_class=20, seed=1)[0])
  np.testing.assert_array_equal(data.subset_indices(y)[0], np.arange(y.size))  # no knobs: all


def test_subset_errors():
  y = _labels([5, 5])
  with pytest.raises(ValueError, match="duplicates"):
    data.subset_indices(y, classes=[0, 0])
  with pytest.raises(ValueError, match=r"classes \[7\] have no samples"):
    data.subset_indices(y, classes=[0, 7])
  with pytest.raises(ValueError, match="fraction must be in"):
    data.subset_indices(y, fraction=0.0)
  with pytest.raises(ValueError, match="keeps no samples"):
    data.subset_indices(y, fraction=0.1)
  with pytest.raises(ValueError, match="per_class must be a positive integer"):
    data.subset_indices(y, per_class=0)
  with pytest.raises(ValueError, match="3 inputs but 10 labels"):
    data.subset(np.zeros(3), y)


def test_load_task_and_task_spec_on_real_data(data_dir):
  x, y = data.load_task("fashion_mnist", "test", classes=[0, 5, 9], per_class=100, seed=3,
                        data_dir=data_dir)  # fmt: skip
  np.testing.assert_array_equal(np.bincount(y), [100, 100, 100])
  full_x, full_y = data.load("fashion_mnist", "test", data_dir=data_dir)
  idx, _ = data.subset_indices(full_y, classes=[0, 5, 9], per_class=100, seed=3)
  np.testing.assert_array_equal(x, full_x[idx])
  np.testing.assert_array_equal(full_y[idx], np.array([0, 5, 9])[y])
  spec = data.task_spec("fashion_mnist", classes=[0, 5, 9])
  assert spec.num_classes == 3 and spec.class_names == ("T-shirt/top", "Sandal", "Ankle boot")
  assert spec.mean == data.get("fashion_mnist").mean
  with pytest.raises(ValueError, match="distinct class indices"):
    data.load_task("fashion_mnist", "test", classes=[10], data_dir=data_dir)

"""The deciding study's source variants: splits, counts, shapes and the corruptions they claim."""

import numpy as np
import pytest

from jtransfer import data
from jtransfer.data import variants
from jtransfer.jobs import pretrain


def test_single_split_copies_are_split_stratified_and_disjoint(data_dir):
  x, y = data.load("kmnist", "test", data_dir=str(data_dir))
  tr_x, tr_y = data.load("kmnist_split", "train", data_dir=str(data_dir))
  te_x, te_y = data.load("kmnist_split", "test", data_dir=str(data_dir))
  assert np.bincount(tr_y).tolist() == [800] * 10 and np.bincount(te_y).tolist() == [200] * 10
  # Every original image lands in exactly one split.
  rows = {r.tobytes() for r in x.reshape(len(x), -1)}
  tr = {r.tobytes() for r in tr_x.reshape(len(tr_x), -1)}
  te = {r.tobytes() for r in te_x.reshape(len(te_x), -1)}
  assert not tr & te and tr | te == rows


def test_resized_and_grey_variants_have_the_cnn_input_shape(data_dir):
  for name in ("usps_28", "cifar10_gray28"):
    x, y = data.load(name, "train", data_dir=str(data_dir))
    assert x.shape[1:] == (28, 28, 1) and x.dtype == np.float32
    assert 0.0 <= x.min() and x.max() <= 1.0
  # The declared normalisation matches the measured statistics of the train split.
  x, _ = data.load("cifar10_gray28", "train", data_dir=str(data_dir))
  (mean,), (std,) = variants.CIFAR_GRAY_MEAN_STD
  assert abs(float(x.mean()) - mean) < 1e-3 and abs(float(x.std()) - std) < 1e-3


def test_corruptions_do_what_they_say(data_dir):
  x, y = data.load("mnist", "train", data_dir=str(data_dir))
  _, noisy = data.load("mnist_label_noise_50", "train", data_dir=str(data_dir))
  # Half the labels redrawn uniformly over 10 classes: 45 % differ from the clean label.
  assert abs(float(np.mean(noisy != y)) - 0.45) < 0.01
  _, clean_test = data.load("mnist_label_noise_50", "test", data_dir=str(data_dir))
  assert np.array_equal(clean_test, data.load("mnist", "test", data_dir=str(data_dir))[1])
  inv, _ = data.load("mnist_inverted", "train", data_dir=str(data_dir))
  np.testing.assert_array_equal(inv, 1.0 - x)
  small, small_y = data.load("mnist_n50", "train", data_dir=str(data_dir))
  assert np.bincount(small_y).tolist() == [50] * 10 and small.shape == (500, 28, 28, 1)


def test_checkpoint_steps_are_validated_and_end_at_the_run_length():
  config = pretrain.PretrainConfig(source="mnist", checkpoint_steps=(0, 10, 30))
  assert pretrain._checkpoint_steps(config, 938, 100) == [0, 10, 30, 100]
  assert pretrain._checkpoint_steps(config, 938, 30) == [0, 10, 30]
  for bad in ((10, 0), (0, 200), (0, 0, 10)):
    config = pretrain.PretrainConfig(source="mnist", checkpoint_steps=bad)
    with pytest.raises(ValueError, match="checkpoint_steps must be increasing"):
      pretrain._checkpoint_steps(config, 938, 100)

"""Training augmentation: crop with padding and flip, against per-example NumPy references."""

import numpy as np
import pytest

from jtransfer.data import augment


def _images(b=16, h=6, w=5, c=3, seed=0):
  return np.random.default_rng(seed).integers(1, 256, (b, h, w, c)).astype(np.uint8)


def test_flip_is_its_own_inverse_and_mirrors_exactly_the_masked_rows():
  x = _images()
  mask = np.arange(len(x)) % 3 == 0
  once = augment.hflip(x, mask)
  np.testing.assert_array_equal(augment.hflip(once, mask), x)
  for b in range(len(x)):
    want = x[b][:, ::-1] if mask[b] else x[b]
    np.testing.assert_array_equal(once[b], want)
  np.testing.assert_array_equal(x, _images())  # the input is not modified


def test_crop_with_padding_keeps_shape_and_equals_a_per_example_reference():
  x = _images().astype(np.float32)
  p = 2
  rng = np.random.default_rng(1)
  dy, dx = rng.integers(0, 2 * p + 1, len(x)), rng.integers(0, 2 * p + 1, len(x))
  out = augment.crop_with_padding(x, p, dy, dx)
  assert out.shape == x.shape and out.dtype == x.dtype
  for b in range(len(x)):
    padded = np.zeros((x.shape[1] + 2 * p, x.shape[2] + 2 * p, x.shape[3]), np.float64)
    padded[p:-p, p:-p] = x[b]
    want = padded[dy[b] : dy[b] + x.shape[1], dx[b] : dx[b] + x.shape[2]]
    np.testing.assert_array_equal(out[b], want)
  # Offset (p, p) is the identity; (0, 0) shifts the image down-right by p, zeros entering.
  centre = augment.crop_with_padding(x, p, np.full(len(x), p), np.full(len(x), p))
  np.testing.assert_array_equal(centre, x)
  corner = augment.crop_with_padding(x, p, np.zeros(len(x), int), np.zeros(len(x), int))
  np.testing.assert_array_equal(corner[:, p:, p:], x[:, :-p, :-p])
  assert np.all(corner[:, :p] == 0) and np.all(corner[:, :, :p] == 0)
  with pytest.raises(ValueError, match=r"crop offsets must be in \[0, 4\]"):
    augment.crop_with_padding(x, p, np.full(len(x), 5), dx)


def test_draws_are_seeded_per_example_and_spread_evenly():
  aug = augment.Augment(crop_padding=4, flip=True)
  examples = np.arange(20_000)
  dy, dx, flip = augment.draws(aug, 3, 11, examples)
  again = augment.draws(aug, 3, 11, examples)
  for a, b in zip((dy, dx, flip), again, strict=True):
    np.testing.assert_array_equal(a, b)
  # Every offset 0..8 appears about 1/9 of the time, flips about half; dy and dx independent.
  for d in (dy, dx):
    counts = np.bincount(d, minlength=9)
    assert counts.size == 9 and np.all(np.abs(counts / len(d) - 1 / 9) < 0.01)
  assert abs(flip.mean() - 0.5) < 0.015
  assert abs(np.corrcoef(dy, dx)[0, 1]) < 0.03
  # Keyed by (seed, step, example): another seed or step draws differently; an example's draw
  # does not depend on which other examples are in the batch, nor on its position.
  other_seed = augment.draws(aug, 4, 11, examples)[0]
  other_step = augment.draws(aug, 3, 12, examples)[0]
  assert np.mean(other_seed == dy) < 0.2 and np.mean(other_step == dy) < 0.2
  sub = np.array([17, 5, 19_999])
  np.testing.assert_array_equal(augment.draws(aug, 3, 11, sub)[0], dy[sub])


def test_apply_is_reproducible_and_combines_crop_then_flip():
  aug = augment.Augment(crop_padding=3, flip=True)
  x = _images(b=32)
  idx = np.arange(100, 132)
  out = augment.apply(aug, x, seed=7, step=5, examples=idx)
  np.testing.assert_array_equal(out, augment.apply(aug, x, seed=7, step=5, examples=idx))
  assert out.shape == x.shape and out.dtype == x.dtype
  dy, dx, flip = augment.draws(aug, 7, 5, idx)
  want = augment.hflip(augment.crop_with_padding(x, 3, dy, dx), flip)
  np.testing.assert_array_equal(out, want)
  assert 0 < flip.sum() < len(x)  # both branches are exercised
  assert not np.array_equal(out, augment.apply(aug, x, seed=8, step=5, examples=idx))


def test_off_by_default_and_for_the_mnist_family():
  x = _images()
  assert augment.apply(None, x, seed=0, step=0, examples=np.arange(16)) is x
  assert augment.apply(augment.Augment(), x, seed=0, step=0, examples=np.arange(16)) is x
  for name in ("mnist", "fashion_mnist", "kmnist", "mnist_split_0_4", "mnist_noise", "usps"):
    assert augment.for_dataset(name) is None
  assert augment.for_dataset("cifar10") == augment.Augment(crop_padding=4, flip=True)


def test_bad_input_fails_with_a_clear_message():
  with pytest.raises(ValueError, match="crop_padding must be >= 0"):
    augment.Augment(crop_padding=-1)
  aug = augment.Augment(flip=True)
  with pytest.raises(ValueError, match=r"needs images \[B, H, W, C\]"):
    augment.apply(aug, np.zeros((4, 28, 28)), seed=0, step=0, examples=np.arange(4))
  with pytest.raises(ValueError, match="3 example indices for 4 images"):
    augment.apply(aug, _images(b=4), seed=0, step=0, examples=np.arange(3))
  with pytest.raises(ValueError, match="seed and step must be >= 0"):
    augment.example_hash(-1, 0, [0])

"""Per-seed batch index streams: permutations per epoch, deterministic, resumable."""

import itertools

import numpy as np
import pytest

from jtransfer.data import batches


def test_steps_per_epoch_and_bad_inputs():
  assert batches.steps_per_epoch(60000, 64) == 937  # floor(60000 / 64) = 937.5 -> 937
  assert batches.steps_per_epoch(60000, 64, drop_remainder=False) == 938
  with pytest.raises(ValueError, match="no full batch"):
    batches.steps_per_epoch(10, 64)
  with pytest.raises(ValueError, match="batch_size must be >= 1"):
    batches.steps_per_epoch(10, 0)


def test_each_epoch_is_a_permutation_without_the_remainder():
  n, b = 23, 5  # 4 steps per epoch, 3 examples dropped each epoch
  assert batches.steps_per_epoch(n, b) == 4
  stream = batches.index_stream([7], num_examples=n, batch_size=b)
  for epoch in range(3):
    seen = np.concatenate([next(stream)[0] for _ in range(4)])
    assert len(seen) == 20 and len(set(seen.tolist())) == 20
    assert set(seen.tolist()) <= set(range(n))
    # The epoch's order is the documented permutation, cut in order.
    np.testing.assert_array_equal(seen, batches.epoch_permutation(7, epoch, n)[:20])


def test_seeds_and_epochs_differ_and_repeat_exactly():
  a = batches.batch_indices([0, 1], 0, num_examples=1000, batch_size=64)
  assert a.shape == (2, 64) and a.dtype == np.int32
  assert not np.array_equal(a[0], a[1])
  np.testing.assert_array_equal(
    a, batches.batch_indices([0, 1], 0, num_examples=1000, batch_size=64)
  )
  e0 = batches.epoch_permutation(3, 0, 1000)
  e1 = batches.epoch_permutation(3, 1, 1000)
  assert not np.array_equal(e0, e1)
  # A seed's order does not depend on which other seeds are batched with it.
  b = batches.batch_indices([5, 1], 0, num_examples=1000, batch_size=64)
  np.testing.assert_array_equal(a[1], b[1])


def test_resumed_stream_equals_uninterrupted_stream():
  kw = dict(num_examples=50, batch_size=8)
  full = list(itertools.islice(batches.index_stream([0, 3], **kw), 20))
  resumed = list(itertools.islice(batches.index_stream([0, 3], start_step=13, **kw), 7))
  for got, want in zip(resumed, full[13:], strict=True):
    np.testing.assert_array_equal(got, want)
  for t in (0, 6, 13, 19):
    np.testing.assert_array_equal(batches.batch_indices([0, 3], t, **kw), full[t])


def test_bad_arguments():
  with pytest.raises(ValueError):
    batches.steps_per_epoch(10, 11)
  with pytest.raises(ValueError):
    next(batches.index_stream([0], num_examples=10, batch_size=2, start_step=-1))

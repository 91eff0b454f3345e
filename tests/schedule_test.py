"""The thesis log-spaced schedule and duration conversion, against hand-written expectations."""

import pytest

from jtransfer.train import schedule


def test_mnist_schedule_matches_the_thesis():
  # 60000 / 64 -> 938 steps per epoch (last partial batch kept), 100 epochs.
  spe = 938
  expected = [0, 1, 3, 10, 30, 100, 300, 938, 3 * 938, 10 * 938, 30 * 938, 100 * 938]
  assert schedule.log_checkpoint_steps(spe, 100 * spe) == expected
  labels = schedule.checkpoint_labels(spe, 100 * spe)
  assert [lab for _, _, lab in labels] == [
    "init", "1b", "3b", "10b", "30b", "100b", "300b", "1ep", "3ep", "10ep", "30ep", "100ep",
  ]  # fmt: skip
  assert [s for s, _, _ in labels] == expected
  assert labels[6][1] == pytest.approx(300 / 938)
  assert labels[-1][1] == 100.0


def test_truncated_to_configured_length():
  # 5 epochs of MNIST: the 10/30/100-epoch points are cut.
  assert schedule.log_checkpoint_steps(938, 5 * 938) == [0, 1, 3, 10, 30, 100, 300, 938, 2814]
  # include_final adds the last step when it is not on the schedule ...
  assert schedule.log_checkpoint_steps(938, 5 * 938, include_final=True)[-1] == 5 * 938
  # ... and does not duplicate it when it is.
  assert schedule.log_checkpoint_steps(938, 3 * 938, include_final=True)[-2:] == [938, 2814]
  assert schedule.log_checkpoint_steps(938, 0) == [0]
  assert schedule.log_checkpoint_steps(938, 20) == [0, 1, 3, 10]


def test_tiny_dataset_deduplicates_and_sorts():
  # 10 steps per epoch: 10 batches == epoch 1, 30 batches == epoch 3, 100 == epoch 10,
  # 300 == epoch 30; then 1000 == epoch 100.
  assert schedule.log_checkpoint_steps(10, 1000) == [0, 1, 3, 10, 30, 100, 300, 1000]
  # 2 steps per epoch: epochs interleave with batches.
  assert schedule.log_checkpoint_steps(2, 200) == [0, 1, 2, 3, 6, 10, 20, 30, 60, 100, 200]
  labels = schedule.checkpoint_labels(2, 200)
  assert [lab for _, _, lab in labels] == [
    "init", "1b", "1ep", "3b", "3ep", "5ep", "10ep", "15ep", "30ep", "50ep", "100ep",
  ]  # fmt: skip
  # one step per epoch: every point is a whole epoch
  assert schedule.log_checkpoint_steps(1, 100) == [0, 1, 3, 10, 30, 100]


def test_to_steps():
  kw = dict(steps_per_epoch=938, batch_size=64)
  assert schedule.to_steps({"steps": 500}, **kw) == 500
  assert schedule.to_steps({"epochs": 100}, **kw) == 93800
  assert schedule.to_steps({"epochs": 0.5}, **kw) == 469
  assert schedule.to_steps({"epochs": 0.3}, steps_per_epoch=10, batch_size=1) == 3  # not 4
  assert schedule.to_steps({"examples": 64}, **kw) == 1
  assert schedule.to_steps({"examples": 100}, **kw) == 2  # rounds up, never cut short
  assert schedule.to_steps({"examples": 60000}, **kw) == 938
  # None-valued entries are ignored (ConfigDict fields left unset)
  assert schedule.to_steps({"steps": None, "epochs": 2}, **kw) == 1876


@pytest.mark.parametrize(
  "duration",
  [{}, {"steps": 1, "epochs": 1}, {"minutes": 3}, {"steps": -1}, {"steps": 1.5},
   {"epochs": float("nan")}, {"examples": True}, 5],
)  # fmt: skip
def test_to_steps_rejects_bad_durations(duration):
  with pytest.raises(ValueError):
    schedule.to_steps(duration, steps_per_epoch=10, batch_size=4)


def test_bad_schedule_inputs():
  with pytest.raises(ValueError, match="steps_per_epoch"):
    schedule.log_checkpoint_steps(0, 10)
  with pytest.raises(ValueError, match="total_steps"):
    schedule.log_checkpoint_steps(10, -1)

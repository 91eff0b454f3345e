"""Durations and the thesis' log-spaced checkpoint / evaluation schedule, expressed once.

The thesis saves (and the fine-tune job evaluates) at

  step 0 (initial), 1, 3, 10, 30, 100, 300 batches, then 1, 3, 10, 30, 100 epochs,

truncated to the configured length. Both parts are converted to optimiser steps, merged, sorted
and deduplicated: with 60000 / 64 -> 938 steps per epoch the 300-batch point comes before
epoch 1, but on a tiny dataset (say 10 steps per epoch) 10 batches *is* epoch 1 and 30 batches
*is* epoch 3, so the merged list is shorter. The final step of a run is only included when it
is itself on the schedule (100 epochs for the thesis) or when `include_final=True`.

Durations in configs may be given in steps, epochs or examples (`{"steps": n}`,
`{"epochs": x}`, `{"examples": n}`); `to_steps` is the one place that turns them into steps.
"""

from __future__ import annotations

import math
from collections.abc import Mapping

# The thesis' schedule, in its own units.
LOG_BATCHES: tuple[int, ...] = (0, 1, 3, 10, 30, 100, 300)
LOG_EPOCHS: tuple[int, ...] = (1, 3, 10, 30, 100)

_UNITS = ("steps", "epochs", "examples")


def _check_positive_int(name: str, value) -> int:
  if isinstance(value, bool) or not isinstance(value, int | float) or value != int(value):
    raise ValueError(f"{name} must be a whole number, got {value!r}")
  if value < 1:
    raise ValueError(f"{name} must be >= 1, got {value!r}")
  return int(value)


def to_steps(duration: Mapping, *, steps_per_epoch: int, batch_size: int) -> int:
  """Turns `{"steps": n}`, `{"epochs": x}` or `{"examples": n}` into a number of steps.

  Epochs may be fractional (`{"epochs": 0.5}`); epochs and examples round up to whole steps, so
  a duration is never cut short (`{"examples": 100}` at batch 64 is 2 steps).
  """
  spe = _check_positive_int("steps_per_epoch", steps_per_epoch)
  bs = _check_positive_int("batch_size", batch_size)
  if not isinstance(duration, Mapping):
    raise ValueError(f"duration must be a mapping like {{'epochs': 3}}, got {duration!r}")
  given = {k: v for k, v in dict(duration).items() if v is not None}
  if len(given) != 1 or next(iter(given)) not in _UNITS:
    raise ValueError(
      f"duration must have exactly one of {_UNITS} (non-None), got {dict(duration)!r}"
    )
  ((unit, value),) = given.items()
  if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
    raise ValueError(f"duration {unit} must be a finite number, got {value!r}")
  if value < 0:
    raise ValueError(f"duration {unit} must be >= 0, got {value!r}")
  if unit == "steps":
    if value != int(value):
      raise ValueError(f"duration steps must be a whole number, got {value!r}")
    return int(value)
  if unit == "epochs":
    # Round first so that e.g. 0.3 epochs * 10 steps (= 3.0000000000000004) is 3 steps, not 4.
    return math.ceil(round(value * spe, 9))
  if value != int(value):
    raise ValueError(f"duration examples must be a whole number, got {value!r}")
  return -(-int(value) // bs)


def log_checkpoint_steps(
  steps_per_epoch: int, total_steps: int, *, include_final: bool = False
) -> list[int]:
  """The thesis schedule in steps: sorted, unique, all <= `total_steps`.

  Example (MNIST, batch 64: 938 steps per epoch, 100 epochs = 93800 steps):
  [0, 1, 3, 10, 30, 100, 300, 938, 2814, 9380, 28140, 93800].
  `include_final=True` appends `total_steps` when the schedule does not already end there.
  """
  spe = _check_positive_int("steps_per_epoch", steps_per_epoch)
  if isinstance(total_steps, bool) or not isinstance(total_steps, int) or total_steps < 0:
    raise ValueError(f"total_steps must be an int >= 0, got {total_steps!r}")
  candidates = set(LOG_BATCHES) | {e * spe for e in LOG_EPOCHS}
  if include_final:
    candidates.add(total_steps)
  return sorted(s for s in candidates if s <= total_steps)


def step_label(step: int, steps_per_epoch: int) -> str:
  """A short label for reports: "init" for 0, "3ep" on whole epochs, else "300b" (batches)."""
  spe = _check_positive_int("steps_per_epoch", steps_per_epoch)
  if isinstance(step, bool) or not isinstance(step, int) or step < 0:
    raise ValueError(f"step must be an int >= 0, got {step!r}")
  if step == 0:
    return "init"
  if step % spe == 0:
    return f"{step // spe}ep"
  return f"{step}b"


def checkpoint_labels(
  steps_per_epoch: int, total_steps: int, *, include_final: bool = False
) -> list[tuple[int, float, str]]:
  """`(step, epoch, label)` for every step of `log_checkpoint_steps`; epoch = step / spe."""
  steps = log_checkpoint_steps(steps_per_epoch, total_steps, include_final=include_final)
  return [(s, s / steps_per_epoch, step_label(s, steps_per_epoch)) for s in steps]

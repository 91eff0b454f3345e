"""Per-seed shuffled batch index streams, deterministic from (seed, epoch), resumable at a step.

Every seed sees its own order of the training set: epoch `e` of seed `s` is one permutation
drawn from `numpy.random.Generator(PCG64(SeedSequence([s, e])))` (stable across machines and
NumPy versions), cut into `num_examples // batch_size` batches (the remainder is dropped so
that every step has the same shape for all seeds). Step `t` is batch `t % steps_per_epoch` of
epoch `t // steps_per_epoch`, so a resumed run continues with exactly the batches it would
have seen.

The streams yield indices, not data: the training set stays on the device and the jitted
step gathers the rows, so only a `[num_seeds, batch_size]` int32 array crosses per step.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence

import numpy as np


def _positive_int(name: str, value) -> int:
  if isinstance(value, bool) or not isinstance(value, int | float) or value != int(value):
    raise ValueError(f"{name} must be a whole number, got {value!r}")
  if value < 1:
    raise ValueError(f"{name} must be >= 1, got {value!r}")
  return int(value)


def steps_per_epoch(num_examples: int, batch_size: int, *, drop_remainder: bool = True) -> int:
  """Optimiser steps in one pass over `num_examples` (floor when the last partial batch drops)."""
  num_examples = _positive_int("num_examples", num_examples)
  batch_size = _positive_int("batch_size", batch_size)
  n = num_examples // batch_size if drop_remainder else -(-num_examples // batch_size)
  if n < 1:
    raise ValueError(
      f"batch_size {batch_size} > num_examples {num_examples} with drop_remainder: no full batch"
    )
  return n


def epoch_permutation(seed: int, epoch: int, num_examples: int) -> np.ndarray:
  """The order of the training set that seed `seed` sees in epoch `epoch`."""
  if seed < 0 or epoch < 0:
    raise ValueError(f"seed and epoch must be >= 0, got seed={seed}, epoch={epoch}")
  rng = np.random.Generator(np.random.PCG64(np.random.SeedSequence([seed, epoch])))
  return rng.permutation(num_examples).astype(np.int32)


def batch_indices(
  seeds: Sequence[int], step: int, *, num_examples: int, batch_size: int
) -> np.ndarray:
  """`[len(seeds), batch_size]` int32 indices of training step `step` (no caching)."""
  spe = steps_per_epoch(num_examples, batch_size)
  epoch, pos = divmod(step, spe)
  rows = [epoch_permutation(s, epoch, num_examples) for s in seeds]
  return np.stack([r[pos * batch_size : (pos + 1) * batch_size] for r in rows])


def index_stream(
  seeds: Sequence[int], *, num_examples: int, batch_size: int, start_step: int = 0
) -> Iterator[np.ndarray]:
  """Endless `[len(seeds), batch_size]` index batches from `start_step` on.

  Equal to `batch_indices(seeds, t, ...)` for t = start_step, start_step + 1, ...; the
  permutations of the current epoch are cached so a step costs one slice.
  """
  if start_step < 0:
    raise ValueError(f"start_step must be >= 0, got {start_step}")
  spe = steps_per_epoch(num_examples, batch_size)
  step = start_step
  cached_epoch, perms = -1, None
  while True:
    epoch, pos = divmod(step, spe)
    if epoch != cached_epoch:
      perms = np.stack([epoch_permutation(s, epoch, num_examples) for s in seeds])
      cached_epoch = epoch
    yield perms[:, pos * batch_size : (pos + 1) * batch_size]
    step += 1

"""The timed window of jtransfer's training benchmarks (`zoo_throughput.py`,
`finetune_throughput.py`): a jitted train step from `engine.build_fns`, fed index batches."""

import statistics
import time

import jax
import numpy as np


def images_per_second(
  train_fn, state, dropout_seeds, x_dev, y_dev, stream, place, *, steps, repeats, batch_size
) -> float:
  """Median images/s over `repeats` windows of `steps` steps (all members), after 2 steps that
  compile and warm up; `stream` yields `[members, batch]` indices (`batches.index_stream`)."""
  members = len(dropout_seeds)
  step = 0

  def run(n):
    nonlocal state, step
    for _ in range(n):
      idx = jax.device_put(next(stream), place.batch_index)
      state, _ = train_fn(state, dropout_seeds, x_dev, y_dev, idx, np.int32(step))
      step += 1
    jax.block_until_ready(state)

  run(2)
  times = []
  for _ in range(repeats):
    t = time.perf_counter()
    run(steps)
    times.append(time.perf_counter() - t)
  return steps * batch_size * members / statistics.median(times)

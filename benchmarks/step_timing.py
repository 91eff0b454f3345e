"""The timed window of the training benchmarks: `median_seconds` for any step loop (also the
PyTorch loops', `torch_cnn_loop.py`, whose venv has no jax), `images_per_second` for a jitted
train step from `engine.build_fns` fed index batches (`zoo_throughput.py`,
`finetune_throughput.py`)."""

import statistics
import time


def median_seconds(run, *, steps: int, repeats: int) -> float:
  """Median seconds of `repeats` calls `run(steps)`, after `run(2)` (compile and warm up);
  `run(n)` takes n steps and returns once they are finished."""
  run(2)
  times = []
  for _ in range(repeats):
    t = time.perf_counter()
    run(steps)
    times.append(time.perf_counter() - t)
  return statistics.median(times)


def images_per_second(
  train_fn, state, dropout_seeds, x_dev, y_dev, stream, place, *, steps, repeats, batch_size
) -> float:
  """Median images/s (all members) of `median_seconds` windows; `stream` yields
  `[members, batch]` indices (`batches.index_stream`)."""
  import jax  # noqa: PLC0415  (here: the PyTorch side imports this module without jax)
  import numpy as np  # noqa: PLC0415

  members = len(dropout_seeds)
  step = 0

  def run(n):
    nonlocal state, step
    for _ in range(n):
      idx = jax.device_put(next(stream), place.batch_index)
      state, _ = train_fn(state, dropout_seeds, x_dev, y_dev, idx, np.int32(step))
      step += 1
    jax.block_until_ready(state)

  return steps * batch_size * members / median_seconds(run, steps=steps, repeats=repeats)

r"""Training throughput, in-memory index path vs the streaming pipeline, side by side.

  JTRANSFER_DATA_DIR=/work/shared/datasets python benchmarks/stream_throughput.py
  python benchmarks/stream_throughput.py --steps 200 --repeats 3 --seeds 1 --cpu_devices 1

The thesis CNN (`cnn`), batch 64, adam (lr 1e-4), on the MNIST training set, for the same
number of timed steps (after a warm-up that compiles) both ways:
- memory: the normalised training set lives on the device; each step sends `[seeds, batch]`
  indices (`batches.index_stream`) and the jitted step gathers the rows (`engine.build_fns`),
  what pre-training and fine-tuning do today;
- stream: MNIST is first written as uint8 ArrayRecord (`pipeline.write_records`, in a temp dir,
  not timed); each step's batch is read from that file by `pipeline.train_batches` (grain, 2
  reading threads, 4 steps prefetched, normalised on the host), copied to the device ahead
  (`pipeline.device_prefetch`) and trained by `engine.build_fns(..., inputs="batch")`'s step.
Both see the same batches (checked on the first step). Repeats alternate memory / stream so
machine load drifts hit both; the medians and their ratio are printed (goal: stream >= 0.9x).
`--cpu_devices` splits the CPU into that many JAX devices (`jax_num_cpu_devices`, what main's
`jtransfer.runtime.devices.request_cpu_devices` sets; an XLA_FLAGS device count already set wins).
"""

import argparse
import os
import statistics
import tempfile
import time

_parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
_parser.add_argument("--steps", type=int, default=200, help="timed steps per repeat")
_parser.add_argument("--repeats", type=int, default=3, help="timed repeats of each path (median)")
_parser.add_argument("--seeds", type=int, default=1, help="members trained at once")
_parser.add_argument("--cpu_devices", type=int, default=1, help="fake XLA host devices")
_parser.add_argument(
  "--seed_parallel", default="devices", help="engine's mode for several seeds in one step"
)
_parser.add_argument("--batch_size", type=int, default=64)
_parser.add_argument("--arch", default="cnn")
_parser.add_argument("--threads", type=int, default=2, help="pipeline reading threads")
_parser.add_argument("--prefetch", type=int, default=4, help="pipeline steps read ahead")
_parser.add_argument("--data_dir", default=None, help="default $JTRANSFER_DATA_DIR")
ARGS = _parser.parse_args()

import jax  # noqa: E402
import jax.numpy as jnp  # noqa: E402
import numpy as np  # noqa: E402

from jtransfer import data as datasets  # noqa: E402
from jtransfer.data import batches, pipeline  # noqa: E402
from jtransfer.models import functional  # noqa: E402
from jtransfer.train import engine, optim  # noqa: E402

if ARGS.cpu_devices > 1 and "xla_force_host_platform_device_count" not in os.environ.get(
  "XLA_FLAGS", ""
):
  jax.config.update("jax_num_cpu_devices", ARGS.cpu_devices)  # before any JAX computation

LR = 1e-4


class Setup:
  """The mesh, the fresh stacked state and the dropout seeds shared by both paths."""

  def __init__(self, seeds, num_examples):
    devices = jax.devices()
    self.mode = engine.resolve_seed_parallel(
      ARGS.seed_parallel, backend=jax.default_backend(), num_seeds=len(seeds)
    )
    self.mesh = engine.make_mesh(
      self.mode, num_seeds=len(seeds), batch_size=ARGS.batch_size, devices=devices
    )
    self.place = engine.placement(self.mesh, self.mode)
    self.graphdef, params, rest = functional.init_stacked(ARGS.arch, num_classes=10, seeds=seeds)
    spe = batches.steps_per_epoch(num_examples, ARGS.batch_size)
    self.spec = ("adam", (("learning_rate", LR), ("steps_per_epoch", spe)))
    tx = optim.make_optimizer("adam", learning_rate=LR)
    self.host_state = jax.device_get(
      {"params": params, "rest": rest, "opt_state": jax.jit(jax.vmap(tx.init))(params)}
    )
    self.dropout_seeds = jax.device_put(np.asarray(seeds, np.int32), self.place.state)

  def state(self):
    return jax.device_put(jax.tree.map(np.array, self.host_state), self.place.state)


def memory_path(s: Setup, x, y, seeds):
  """steps(n) -> seconds for n steps of the in-memory index path (continuing its stream)."""
  x_dev, y_dev = jax.device_put(x, s.place.replicated), jax.device_put(y, s.place.replicated)
  train_fn, _ = engine.build_fns(s.graphdef, s.spec, s.mesh, s.mode, jax.default_backend())
  stream = batches.index_stream(seeds, num_examples=len(x), batch_size=ARGS.batch_size)
  state, step = s.state(), 0

  def steps(n):
    nonlocal state, step
    t = time.perf_counter()
    for _ in range(n):
      idx = jax.device_put(next(stream), s.place.batch_index)
      state, _ = train_fn(state, s.dropout_seeds, x_dev, y_dev, idx, jnp.int32(step))
      step += 1
    jax.block_until_ready(state)
    return time.perf_counter() - t

  return steps


def stream_path(s: Setup, path, seeds):
  """steps(n) -> seconds for n steps of the streaming path (continuing its stream)."""
  train_fn, _ = engine.build_fns(
    s.graphdef, s.spec, s.mesh, s.mode, jax.default_backend(), inputs="batch"
  )
  it = pipeline.train_batches(
    pipeline.RecordSource(path), seeds, batch_size=ARGS.batch_size,
    transform=pipeline.normalizer("mnist"), num_threads=ARGS.threads, prefetch=ARGS.prefetch,
  )  # fmt: skip
  it = pipeline.device_prefetch(it, s.place.batch_index)
  state, step = s.state(), 0

  def steps(n):
    nonlocal state, step
    t = time.perf_counter()
    for _ in range(n):
      bx, by = next(it)
      state, _ = train_fn(state, s.dropout_seeds, bx, by, jnp.int32(step))
      step += 1
    jax.block_until_ready(state)
    return time.perf_counter() - t

  return steps


def main():
  x01, y = datasets.load("mnist", "train", data_dir=ARGS.data_dir)  # float32 uint8 / 255
  x = datasets.normalize("mnist", x01)
  seeds = list(range(ARGS.seeds))
  s = Setup(seeds, len(x))
  with tempfile.TemporaryDirectory() as tmp:
    path = os.path.join(tmp, "mnist_train.arrayrecord")
    raw = np.rint(x01 * 255.0).astype(np.uint8)  # exact: the loader divided uint8 by 255
    pipeline.write_records(path, raw, y)
    # Same batches both ways (first step).
    first = next(pipeline.train_batches(
      pipeline.RecordSource(path), seeds, batch_size=ARGS.batch_size,
      transform=pipeline.normalizer("mnist"), num_threads=0,
    ))  # fmt: skip
    idx = next(batches.index_stream(seeds, num_examples=len(x), batch_size=ARGS.batch_size))
    np.testing.assert_array_equal(first[0], x[idx])
    np.testing.assert_array_equal(first[1], y[idx])

    paths = {"memory": memory_path(s, x, y, seeds), "stream": stream_path(s, path, seeds)}
    for run in paths.values():
      run(3)  # compile and warm up (the stream's threads start filling their buffer)
    seconds = {name: [] for name in paths}
    for _ in range(ARGS.repeats):
      for name, run in paths.items():
        seconds[name].append(run(ARGS.steps))
  images = ARGS.steps * ARGS.batch_size * len(seeds)
  rate = {name: images / statistics.median(t) for name, t in seconds.items()}
  print(
    f"thesis CNN ({ARGS.arch}), MNIST, batch {ARGS.batch_size}, adam, {len(seeds)} seed(s), "
    f"seed_parallel={s.mode}, {len(jax.devices())} device(s), {ARGS.steps} steps x "
    f"{ARGS.repeats} repeats (median), pipeline threads={ARGS.threads} prefetch={ARGS.prefetch}"
  )
  for name in paths:
    runs = ", ".join(f"{images / t:.0f}" for t in seconds[name])
    print(f"  {name:<7} {rate[name]:9.0f} img/s   (repeats: {runs})")
  print(f"  stream / memory = {rate['stream'] / rate['memory']:.3f}")


if __name__ == "__main__":
  main()

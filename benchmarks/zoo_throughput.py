r"""Zoo training throughput: images/s summed over seeds, for 1, 4 and 10 seeds, side by side.

  python benchmarks/zoo_throughput.py                        # thesis CNN, batch 64, MNIST
  python benchmarks/zoo_throughput.py --steps 20 --repeats 3 --cpu_devices 4 --seeds 1,4,10

Ways of training S seeds (each a separate model with its own init and data order):
- loop:       seed after seed, each with its own jitted one-seed step on one device
- vmap:       all S seeds in one jitted step, vmapped, one device (`seed_parallel="vmap"`)
- vmap+data:  the same, with the batch split over all fake CPU devices
- map:        all S seeds in one jitted step, unrolled, one device (`seed_parallel="loop"`)
- map+data:   the same, with every seed's batch split over all fake CPU devices
- devices:    seeds split over the fake CPU devices, unrolled on each (`seed_parallel="devices"`)
- seq+data:   seed after seed, each one-seed step with its batch split over all fake CPU devices
- torch:      a plain PyTorch loop of the same CNN, seed after seed: in this process when torch
              is importable, else `benchmarks/torch_cnn_loop.py` under `--torch_python` (e.g.
              a Python 3.11 venv with the CPU torch wheel: `bash scripts/setup_torch_compare.sh`)

Only the optimiser steps are timed (after a warm-up that compiles), not evaluation or
checkpointing; the training set stays on the device and each step gathers its batch there.
The script asks for `--cpu_devices` fake host devices itself (`jtransfer.runtime.devices`) before
JAX starts.
"""

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time

_parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
_parser.add_argument("--seeds", default="1,4,10", help="comma-separated seed counts")
_parser.add_argument("--steps", type=int, default=20, help="timed steps per repeat")
_parser.add_argument("--repeats", type=int, default=3, help="timed repeats (median reported)")
_parser.add_argument("--cpu_devices", type=int, default=4, help="fake XLA host devices")
_parser.add_argument("--batch_size", type=int, default=64)
_parser.add_argument("--arch", default="cnn")
_parser.add_argument("--modes", default="loop,vmap,vmap+data,map,devices,torch")
_parser.add_argument("--data_dir", default=None, help="default $JTRANSFER_DATA_DIR")
_parser.add_argument(
  "--torch_python", default=None, help="a Python with torch, for the torch mode (subprocess)"
)
_parser.add_argument(
  "--json", action="store_true", help="end with one JSON line {mode: {seeds: img/s}}"
)
ARGS = _parser.parse_args()

from jtransfer.runtime import devices  # noqa: E402

devices.request_cpu_devices(ARGS.cpu_devices)  # before JAX starts its CPU backend

import jax  # noqa: E402
import numpy as np  # noqa: E402
import step_timing  # noqa: E402  (the same directory)

from jtransfer import data as datasets  # noqa: E402
from jtransfer.data import batches  # noqa: E402
from jtransfer.models import functional  # noqa: E402
from jtransfer.train import engine, optim  # noqa: E402

LR = 1e-4


def _load():
  try:
    x, y = datasets.load("mnist", "train", data_dir=ARGS.data_dir)
    return datasets.normalize("mnist", x).astype(np.float32), y.astype(np.int32), "MNIST"
  except (ValueError, FileNotFoundError) as e:  # no data dir: random images of the same shape
    print(f"(MNIST not available: {e}; using random images)")
    rng = np.random.default_rng(0)
    x = rng.normal(size=(60_000, 28, 28, 1)).astype(np.float32)
    return x, rng.integers(0, 10, 60_000).astype(np.int32), "random"


def jax_rate(x, y, seeds, mode, devices) -> float:
  """Median images/s of `mode` ("vmap", "loop" = lax.map, "devices") training `seeds` at once."""
  mesh = engine.make_mesh(mode, num_seeds=len(seeds), batch_size=ARGS.batch_size, devices=devices)
  place = engine.placement(mesh, mode)
  graphdef, params, rest = functional.init_stacked(ARGS.arch, num_classes=10, seeds=seeds)
  spec = ("adam", (("learning_rate", LR),))
  tx = optim.make_optimizer("adam", learning_rate=LR)
  state = {"params": params, "rest": rest, "opt_state": jax.jit(jax.vmap(tx.init))(params)}
  state = jax.device_put(state, place.state)
  dropout_seeds = jax.device_put(np.asarray(seeds, np.int32), place.state)
  x_dev, y_dev = jax.device_put(x, place.replicated), jax.device_put(y, place.replicated)
  train_fn, _ = engine.build_fns(graphdef, spec, mesh, mode, jax.default_backend())
  stream = batches.index_stream(seeds, num_examples=len(x), batch_size=ARGS.batch_size)
  return step_timing.images_per_second(
    train_fn, state, dropout_seeds, x_dev, y_dev, stream, place,
    steps=ARGS.steps, repeats=ARGS.repeats, batch_size=ARGS.batch_size,
  )  # fmt: skip


def loop_rate(x, y, seeds, devices=None) -> float:
  """Seed after seed: total images / total time of S one-seed runs on `devices` (default: one),
  each with its batch split over them."""
  devices = jax.devices()[:1] if devices is None else devices
  seconds = sum(ARGS.steps * ARGS.batch_size / jax_rate(x, y, [s], "vmap", devices) for s in seeds)
  return len(seeds) * ARGS.steps * ARGS.batch_size / seconds


def torch_rate(x, y, seeds) -> float | None:
  try:
    import torch
    from torch import nn
  except ImportError:
    return torch_subprocess_rate(x, y, seeds)
  xt = torch.from_numpy(np.ascontiguousarray(x.transpose(0, 3, 1, 2)))
  yt = torch.from_numpy(y.astype(np.int64))
  total = 0.0
  for seed in seeds:
    torch.manual_seed(seed)
    model = nn.Sequential(
      nn.Conv2d(1, 32, 3), nn.MaxPool2d(2), nn.ReLU(),
      nn.Conv2d(32, 64, 3), nn.MaxPool2d(2), nn.ReLU(), nn.Dropout2d(0.25),
      nn.Flatten(), nn.Linear(1600, 128), nn.ReLU(), nn.Dropout(0.5), nn.Linear(128, 10),
    )  # fmt: skip
    opt = torch.optim.Adam(model.parameters(), lr=LR)
    model.train()
    stream = batches.index_stream([seed], num_examples=len(x), batch_size=ARGS.batch_size)

    def steps(n, model=model, opt=opt, stream=stream):
      for _ in range(n):
        idx = torch.from_numpy(next(stream)[0].astype(np.int64))
        opt.zero_grad(set_to_none=True)
        loss = nn.functional.cross_entropy(model(xt[idx]), yt[idx])
        loss.backward()
        opt.step()

    steps(2)
    times = []
    for _ in range(ARGS.repeats):
      t = time.perf_counter()
      steps(ARGS.steps)
      times.append(time.perf_counter() - t)
    total += statistics.median(times)
  return len(seeds) * ARGS.steps * ARGS.batch_size / total


def torch_subprocess_rate(x, y, seeds) -> float | None:
  """The PyTorch loop under `--torch_python` (same data, steps and repeats), or None."""
  if not ARGS.torch_python:
    return None
  script = os.path.join(os.path.dirname(os.path.abspath(__file__)), "torch_cnn_loop.py")
  with tempfile.TemporaryDirectory() as tmp:
    path = os.path.join(tmp, "data.npz")
    np.savez(path, x=x, y=y)
    out = subprocess.run(
      [ARGS.torch_python, script, "--data", path, "--seeds", str(len(seeds)),
       "--steps", str(ARGS.steps), "--repeats", str(ARGS.repeats),
       "--batch_size", str(ARGS.batch_size)],
      check=True, capture_output=True, text=True,
    )  # fmt: skip
  return json.loads(out.stdout.strip().splitlines()[-1])["images_per_second"]


def main():
  x, y, what = _load()
  devices = jax.devices()
  modes = ARGS.modes.split(",")
  print(
    f"{ARGS.arch} on {what}, batch {ARGS.batch_size}, Adam; backend {jax.default_backend()}, "
    f"{len(devices)} devices, {os.cpu_count()} CPUs; {ARGS.steps} timed steps x "
    f"{ARGS.repeats} repeats (median); jax {jax.__version__}"
  )
  header = f"{'seeds':>5}  " + "  ".join(f"{m:>10}" for m in modes) + "   (images/s, all seeds)"
  print(header)
  table = {m: {} for m in modes}
  for n in (int(s) for s in ARGS.seeds.split(",")):
    seeds = list(range(n))
    row = {}
    for m in modes:
      if m == "loop":
        row[m] = loop_rate(x, y, seeds)
      elif m == "vmap":
        row[m] = jax_rate(x, y, seeds, "vmap", devices[:1])
      elif m == "vmap+data":
        row[m] = jax_rate(x, y, seeds, "vmap", devices)
      elif m == "map":
        row[m] = jax_rate(x, y, seeds, "loop", devices[:1])
      elif m == "map+data":
        row[m] = jax_rate(x, y, seeds, "loop", devices)
      elif m == "devices":
        row[m] = jax_rate(x, y, seeds, "devices", devices)
      elif m == "seq+data":
        row[m] = loop_rate(x, y, seeds, devices)
      elif m == "torch":
        row[m] = torch_rate(x, y, seeds)
      else:
        sys.exit(f"unknown mode {m!r}")
    cells = "  ".join(f"{row[m]:>10.0f}" if row[m] else f"{'n/a':>10}" for m in modes)
    base = row.get("loop")
    best = max((v, k) for k, v in row.items() if v and k != "torch")
    ratio = f"   best jax: {best[1]} = {best[0] / base:.2f}x loop" if base else ""
    if row.get("torch"):
      ratio += f", {best[0] / row['torch']:.2f}x torch"
    print(f"{n:>5}  {cells}{ratio}", flush=True)
    for m in modes:
      table[m][n] = row[m]
  if ARGS.json:
    print(json.dumps(table))


if __name__ == "__main__":
  main()

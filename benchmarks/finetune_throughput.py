r"""Fine-tuning throughput of thesis-CNN checkpoints: jtransfer's layouts vs a PyTorch loop.

  python benchmarks/finetune_throughput.py --members 16 --steps 10 --repeats 3 \
    --modes job,devices,torch --torch_python .venv-torch/bin/python

The work of `configs/thesis_cnn.py:quick`'s fine-tune stage, steps only: `--members` checkpoints
(one fine-tune group) keep their two convolutions, get a new fc1 / logits head (ft seed 0) and
train every weight with Adam 1e-4, batch 64, on Fashion-MNIST (random images if the data dir is
missing). The backbones are independent random inits standing in for checkpoints (a step costs
the same for any weights); the PyTorch side loads the very same conv weights.
- job:      the fine-tune job's layout, `seed_parallel="auto"`: on CPU "sequential" (since
            this round), i.e. the same as seq+data; "vmap" of the whole group elsewhere
- devices:  the CPU default before: members split over the `--cpu_devices` fake devices,
            unrolled on each (`seed_parallel="devices"`), the "freeze" optimiser with nothing
            frozen, as the quick config's "full" mode
- seq+data: one member after another, each with its batch split over all fake devices
- torch:    `benchmarks/torch_finetune_loop.py` under `--torch_python`, member after member
Only optimiser steps are timed (after a warm-up that compiles), median of `--repeats` windows;
images/s summed over members. Evaluation, restores and compilation are not in the numbers.
"""

import argparse
import json
import os
import subprocess
import tempfile

_parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
_parser.add_argument("--members", type=int, default=16)
_parser.add_argument("--steps", type=int, default=10, help="timed steps per window")
_parser.add_argument("--repeats", type=int, default=3)
_parser.add_argument("--cpu_devices", type=int, default=4)
_parser.add_argument("--batch_size", type=int, default=64)
_parser.add_argument("--modes", default="job,devices,torch")
_parser.add_argument("--data_dir", default=None, help="default $JTRANSFER_DATA_DIR")
_parser.add_argument("--torch_python", default=None)
_parser.add_argument("--json", action="store_true", help="end with {mode: {members: img/s}}")
ARGS = _parser.parse_args()
os.environ["XLA_FLAGS"] = (
  f"{os.environ.get('XLA_FLAGS', '')} --xla_force_host_platform_device_count={ARGS.cpu_devices}"
)

import jax  # noqa: E402
import numpy as np  # noqa: E402
import step_timing  # noqa: E402  (the same directory)

from jtransfer import data as datasets  # noqa: E402
from jtransfer.data import batches  # noqa: E402
from jtransfer.models import functional  # noqa: E402
from jtransfer.train import engine, freezing, optim  # noqa: E402

LR = 1e-4
ARCH = "cnn"


def _load():
  try:
    x, y = datasets.load("fashion_mnist", "train", data_dir=ARGS.data_dir)
    x = datasets.normalize("fashion_mnist", x)
    return np.asarray(x, np.float32), np.asarray(y, np.int32), "Fashion-MNIST"
  except (ValueError, FileNotFoundError) as e:
    print(f"(Fashion-MNIST not available: {e}; using random images)")
    rng = np.random.default_rng(0)
    x = rng.normal(size=(60_000, 28, 28, 1)).astype(np.float32)
    return x, rng.integers(0, 10, 60_000).astype(np.int32), "random"


def _members(n: int):
  """(graphdef, params, rest): checkpoint-like backbones (seeds 100..) with one new head."""
  graphdef, params, rest = functional.init_stacked(ARCH, num_classes=10, seeds=range(100, 100 + n))
  _, fresh, _ = functional.init(ARCH, num_classes=10, seed=0)
  params["head"] = jax.tree.map(lambda a: np.broadcast_to(a, (n, *a.shape)), fresh["head"])
  return graphdef, params, rest


def jax_rate(x, y, graphdef, params, rest, members, mode, devices) -> float:
  """Median images/s of `members` (indices into the stacked params) trained in one program."""
  mesh = engine.make_mesh(mode, num_seeds=len(members), batch_size=ARGS.batch_size, devices=devices)
  place = engine.placement(mesh, mode)
  layers = functional.merge(graphdef, *functional.unstack((params, rest), 0)).layers
  spe = len(x) // ARGS.batch_size
  spec = freezing.optimizer_spec(
    "adam", {"learning_rate": LR, "steps_per_epoch": spe}, frozen_layers=0, layers=layers
  )
  tx = optim.make_optimizer(spec[0], **dict(spec[1]))
  take = lambda t: jax.tree.map(lambda a: np.asarray(a)[np.asarray(members)], t)
  p, r = take(params), take(rest)
  state = {"params": p, "rest": r, "opt_state": jax.jit(jax.vmap(tx.init))(p)}
  state = jax.device_put(state, place.state)
  dropout_seeds = jax.device_put(np.zeros(len(members), np.int32), place.state)  # ft seed 0
  x_dev, y_dev = jax.device_put(x, place.replicated), jax.device_put(y, place.replicated)
  train_fn, _ = engine.build_fns(graphdef, spec, mesh, mode, jax.default_backend())
  stream = batches.index_stream([0] * len(members), num_examples=len(x), batch_size=ARGS.batch_size)
  return step_timing.images_per_second(
    train_fn, state, dropout_seeds, x_dev, y_dev, stream, place,
    steps=ARGS.steps, repeats=ARGS.repeats, batch_size=ARGS.batch_size,
  )  # fmt: skip


def torch_rate(x, y, params) -> float | None:
  if not ARGS.torch_python:
    return None
  script = os.path.join(os.path.dirname(os.path.abspath(__file__)), "torch_finetune_loop.py")
  with tempfile.TemporaryDirectory() as tmp:
    np.savez(f"{tmp}/data.npz", x=x, y=y)
    bb = params["backbone"]
    np.savez(
      f"{tmp}/weights.npz",
      **{f"{c}_{k}": np.asarray(bb[c][k]) for c in ("conv1", "conv2") for k in ("kernel", "bias")},
    )
    out = subprocess.run(
      [ARGS.torch_python, script, "--data", f"{tmp}/data.npz", "--weights", f"{tmp}/weights.npz",
       "--steps", str(ARGS.steps), "--repeats", str(ARGS.repeats),
       "--batch_size", str(ARGS.batch_size), "--lr", str(LR)],
      check=True, capture_output=True, text=True,
    )  # fmt: skip
  return json.loads(out.stdout.strip().splitlines()[-1])["images_per_second"]


def _one_after_another(x, y, graphdef, params, rest, members, devices) -> float:
  """Images/s of `members` trained one at a time, each with its batch over all devices."""
  secs = sum(
    ARGS.steps * ARGS.batch_size / jax_rate(x, y, graphdef, params, rest, [i], "vmap", devices)
    for i in members
  )
  return len(members) * ARGS.steps * ARGS.batch_size / secs


def main():
  x, y, what = _load()
  devices = jax.devices()
  graphdef, params, rest = _members(ARGS.members)
  everyone = list(range(ARGS.members))
  print(
    f"fine-tune {ARGS.members} {ARCH} checkpoints on {what}, batch {ARGS.batch_size}, Adam; "
    f"{jax.default_backend()}, {len(devices)} devices, {os.cpu_count()} CPUs; "
    f"{ARGS.steps} steps x {ARGS.repeats} windows (median); jax {jax.__version__}"
  )
  # The job's layout ("auto"); "sequential" trains one member at a time: that is seq+data.
  job = engine.resolve_seed_parallel("auto", backend=jax.default_backend(), num_seeds=ARGS.members)
  layouts = {"job": job, "devices": "devices", "seq+data": "sequential"}
  row = {}
  for m in ARGS.modes.split(","):
    if layouts.get(m) == "sequential":
      row[m] = _one_after_another(x, y, graphdef, params, rest, everyone, devices)
    elif m in layouts:
      row[m] = jax_rate(x, y, graphdef, params, rest, everyone, layouts[m], devices)
    elif m == "torch":
      row[m] = torch_rate(x, y, params)
    else:
      raise SystemExit(f"unknown mode {m!r}")
    shown = "n/a" if row[m] is None else f"{row[m]:,.0f} img/s"
    print(f"{m:>9}: {shown}", flush=True)
  if row.get("torch"):
    best = max((v, k) for k, v in row.items() if v and k != "torch")
    print(f"best jtransfer ({best[1]}) / torch: {best[0] / row['torch']:.2f}x")
  if ARGS.json:
    print(json.dumps({m: {str(ARGS.members): v} for m, v in row.items()}))


if __name__ == "__main__":
  main()

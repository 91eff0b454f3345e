r"""Fine-tune job wall time for three CPU layouts of its members, side by side in one run.

  python launch/sweep.py --config configs/audio_fsdd.py:quick --workdir runs/audio_fsdd_quick
  python benchmarks/finetune_layouts.py --zoo runs/audio_fsdd_quick

Fine-tunes the zoo's final checkpoints (plus the scratch and random-init baselines) on the
target for `--steps` steps, once per layout, each in a fresh subprocess (XLA's device count is
fixed at start-up) and a fresh copy of the zoo's results store (so nothing is skipped as done):
- 1 device, groups of 16 members (`seed_parallel="loop"`: members unrolled on one device);
- 4 fake CPU devices, groups of 16 (`seed_parallel="devices"`: members spread over them);
- 4 fake CPU devices, one member at a time with its batch split over the devices (groups of
  one; what `seed_parallel="auto"` = "sequential" now does with any group size on CPU).
Wall time includes compilation and the log-spaced evaluations, as a user's run does.
"""

import argparse
import json
import os
import pathlib
import shutil
import sqlite3
import subprocess
import sys
import tempfile
import time

# (fake CPU devices, group_size, seed_parallel)
LAYOUTS = ((1, 16, "loop"), (4, 16, "devices"), (4, 1, "vmap"))


def _one(args):
  """Child: one fine-tune run in the given layout; prints its wall time as JSON."""
  from jtransfer.jobs import context as job  # noqa: PLC0415
  from jtransfer.runtime import devices  # noqa: PLC0415

  devices.request_cpu_devices(args.devices)  # before JAX starts its CPU backend
  from jtransfer.jobs import finetune  # noqa: PLC0415

  t = time.perf_counter()
  config = finetune.FinetuneConfig(
    target=args.target, steps=[args.step], duration={"steps": args.steps},
    batch_size=32, optimizer="adam", optimizer_kwargs={"learning_rate": 1e-3},
    eval_batch_size=500, group_size=args.group, seed_parallel=args.seed_parallel,
  )  # fmt: skip
  runtime = job.Runtime(args.work, data_dir=args.data_dir, show_progress=False)
  summary = finetune.run(config, runtime)
  print(json.dumps({"seconds": time.perf_counter() - t, "members": summary["members"]}))


def _fresh_copy(zoo: pathlib.Path, work: pathlib.Path) -> None:
  work.mkdir(parents=True)
  for name in ("results.sqlite", "config.json"):
    shutil.copy(zoo / name, work / name)
  (work / "zoo").symlink_to((zoo / "zoo").resolve())
  with sqlite3.connect(work / "results.sqlite") as conn:  # forget earlier fine-tuning
    conn.execute("DELETE FROM finetune")
    conn.execute("DELETE FROM done WHERE job = 'finetune'")


def main():
  p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  p.add_argument("--zoo", help="workdir of a finished pre-training (e.g. audio_fsdd quick)")
  p.add_argument("--target", default="fsdd_digit_spk45")
  p.add_argument("--step", type=int, default=150, help="pre-training step of the checkpoints")
  p.add_argument("--steps", type=int, default=40, help="fine-tune steps")
  p.add_argument("--data_dir", default=os.environ.get("JTRANSFER_DATA_DIR"))
  p.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
  p.add_argument("--work", help=argparse.SUPPRESS)
  p.add_argument("--devices", type=int, help=argparse.SUPPRESS)
  p.add_argument("--group", type=int, help=argparse.SUPPRESS)
  p.add_argument("--seed_parallel", help=argparse.SUPPRESS)
  args = p.parse_args()
  if args.child:
    return _one(args)
  if not args.zoo:
    p.error("--zoo is required")
  zoo = pathlib.Path(args.zoo)
  times = {}
  with tempfile.TemporaryDirectory() as tmp:
    for devices, group, mode in LAYOUTS:
      work = pathlib.Path(tmp) / f"d{devices}_g{group}"
      _fresh_copy(zoo, work)
      out = subprocess.run(
        [sys.executable, __file__, "--child", "--work", str(work), "--devices", str(devices),
         "--group", str(group), "--seed_parallel", mode, "--target", args.target,
         "--step", str(args.step), "--steps", str(args.steps), "--data_dir", args.data_dir or ""],
        check=True, capture_output=True, text=True,
      )  # fmt: skip
      res = json.loads(out.stdout.strip().splitlines()[-1])
      times[(devices, group)] = res["seconds"]
      print(f"{devices} device(s), group_size {group:>2} ({mode}): {res['seconds']:6.1f} s "
            f"({res['members']} members)", flush=True)  # fmt: skip
  first = LAYOUTS[0][:2]
  others = [(d, g, t) for (d, g), t in times.items() if (d, g) != first]
  print("speed-up over 1 device: " + ", ".join(f"{d} devices / group {g}: {times[first] / t:.2f}x"
                                               for d, g, t in others))  # fmt: skip


if __name__ == "__main__":
  main()

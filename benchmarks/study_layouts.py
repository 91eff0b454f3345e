r"""A study's stage times in its default training layout vs the previous one, side by side.

  python benchmarks/study_layouts.py --config configs/thesis_cnn.py:tiny
  python benchmarks/study_layouts.py --config configs/thesis_cnn.py:quick --repeats 2 \
      --stages pretrain,finetune --data_dir /work/shared/datasets

Runs `launch/sweep.py` once per layout and repeat, interleaved (A B A B ...) so that a change in
the machine's load hits both, each in a fresh workdir and a fresh process (compilation included,
as a user's run has it). Layout "default" is the config as written (on CPU: `seed_parallel`
"auto" = "sequential", each seed / fine-tune member trained alone in turn with its batch split
over the devices, `jtransfer.runtime.stacking`); "before" is the CPU default before that change:
`--config.cpu_devices=4` and `seed_parallel=devices` for pre-training and fine-tuning (members
stacked and spread over 4 fake devices). Prints each stage's seconds per run (the sweep's own
"[sweep] <stage> done in N s" lines) and the median per layout, then one line of JSON. Other
arguments go to every sweep unchanged (a layout's own flags come after them and win). Check
`uptime` before and after: the numbers mean something only on an idle machine.
"""

import argparse
import json
import pathlib
import re
import statistics
import subprocess
import sys
import tempfile

REPO = pathlib.Path(__file__).resolve().parents[1]
LAYOUTS = {
  "default": [],
  "before": [
    "--config.cpu_devices=4",
    "--config.pretrain.seed_parallel=devices",
    "--config.finetune.seed_parallel=devices",
  ],
}
_DONE = re.compile(r"^\[sweep\] (.+) done in (\d+) s$")


def _run(config: str, layout: str, workdir: pathlib.Path, args) -> dict[str, float]:
  cmd = [sys.executable, str(REPO / "launch" / "sweep.py"), "--config", config]
  cmd += ["--workdir", str(workdir), *args.passthrough, *LAYOUTS[layout]]
  if args.stages:
    cmd.append(f"--stages={args.stages}")
  if args.data_dir:
    cmd += ["--data_dir", args.data_dir]
  out = subprocess.run(cmd, cwd=REPO, capture_output=True, text=True)
  if out.returncode != 0:
    sys.exit(f"{layout}: sweep failed ({out.returncode}):\n{out.stderr[-3000:]}")
  times = {}
  for line in out.stdout.splitlines():
    m = _DONE.match(line.strip())
    if m:
      times[m.group(1)] = float(m.group(2))
  return times


def main():
  ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
  ap.add_argument("--config", required=True, help="e.g. configs/thesis_cnn.py:quick")
  ap.add_argument("--repeats", type=int, default=1)
  ap.add_argument("--stages", default="", help="comma list (default: the config's)")
  ap.add_argument("--data_dir", default="")
  ap.add_argument("--layouts", default="default,before")
  args, args.passthrough = ap.parse_known_args()
  layouts = args.layouts.split(",")
  unknown = [name for name in layouts if name not in LAYOUTS]
  if unknown:
    sys.exit(f"unknown layouts {unknown}; valid: {', '.join(LAYOUTS)}")
  runs: dict[str, list[dict[str, float]]] = {name: [] for name in layouts}
  with tempfile.TemporaryDirectory(prefix="study_layouts_") as tmp:
    for r in range(args.repeats):
      for name in layouts:
        times = _run(args.config, name, pathlib.Path(tmp) / f"{name}_{r}", args)
        runs[name].append(times)
        print(f"{name} #{r}: " + ", ".join(f"{k} {v:.0f} s" for k, v in times.items()), flush=True)
  median = {
    name: {k: statistics.median(t[k] for t in ts) for k in ts[0]} for name, ts in runs.items()
  }
  for name, times in median.items():
    total = sum(times.values())
    print(
      f"median {name}: total {total:.0f} s; " + ", ".join(f"{k} {v:.0f}" for k, v in times.items())
    )
  print(json.dumps({"config": args.config, "repeats": args.repeats, "median_seconds": median}))


if __name__ == "__main__":
  main()

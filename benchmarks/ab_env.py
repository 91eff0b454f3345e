r"""Interleaved A/B of one benchmark command under different environments (XLA flags, threads).

  python benchmarks/ab_env.py --rounds 4 \
    --variant "base=" --variant "onednn=XLA_FLAGS=--xla_cpu_use_onednn=true" -- \
    python benchmarks/zoo_throughput.py --seeds 1 --steps 10 --repeats 3 --modes seq+data --json

XLA reads its flags once per process, so each variant runs the command in a fresh subprocess,
in turns (A B A B ...), `--rounds` times. The command must end its output with one JSON line
{mode: {seeds: images/s}}; every (mode, seeds) cell is reported as the median over rounds with
its ratio to the first variant. `uptime` is printed before and after: the machine is shared,
so the ratios are the result, not the absolute numbers. A variant is `name=VAR=value;VAR=value`
(empty after the first `=`: the environment as it is); an XLA_FLAGS value is appended to the
inherited XLA_FLAGS (the benchmark appends its own device count after it). An item `@ARGS`
appends ARGS (split on spaces) to the command instead, e.g. `dev2=@--cpu_devices 2`.
"""

import argparse
import json
import os
import statistics
import subprocess


def _env(spec: str) -> dict:
  env = dict(os.environ)
  for item in filter(None, spec.split(";")):
    if item.startswith("@"):
      continue
    key, _, value = item.partition("=")
    env[key] = f"{env.get(key, '')} {value}".strip() if key == "XLA_FLAGS" else value
  return env


def _uptime() -> str:
  return subprocess.run(["uptime"], capture_output=True, text=True).stdout.strip()


def main():
  ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  ap.add_argument("--variant", action="append", required=True, help="name=VAR=value;...")
  ap.add_argument("--rounds", type=int, default=3)
  ap.add_argument(
    "--ratio_to", default=None, help="also: each mode / this mode, median of per-run ratios"
  )
  ap.add_argument("command", nargs=argparse.REMAINDER)
  a = ap.parse_args()
  cmd = a.command[1:] if a.command[:1] == ["--"] else a.command
  if not cmd:
    ap.error("give the benchmark command after --")
  variants = [v.partition("=")[::2] for v in a.variant]
  results = {name: [] for name, _ in variants}
  print("before:", _uptime(), flush=True)
  for r in range(a.rounds):
    for name, spec in variants:
      extra = [w for item in spec.split(";") if item.startswith("@") for w in item[1:].split()]
      out = subprocess.run(cmd + extra, env=_env(spec), capture_output=True, text=True)
      if out.returncode:
        raise SystemExit(f"{name} failed:\n{out.stderr[-3000:]}")
      table = json.loads(out.stdout.strip().splitlines()[-1])
      results[name].append(table)
      cells = ", ".join(f"{m}/{n}: {v:.0f}" for m, row in table.items() for n, v in row.items())
      print(f"round {r + 1} {name}: {cells}", flush=True)
  print("after: ", _uptime())
  base_name = variants[0][0]
  for name, _ in variants:
    cells = []
    for m, row in results[name][0].items():
      for n in row:
        med = statistics.median(t[m][n] for t in results[name])
        base = statistics.median(t[m][n] for t in results[base_name])
        cells.append(f"{m}/{n} seeds {med:,.0f} img/s ({med / base:.2f}x {base_name})")
    print(f"{name:>12}: " + "; ".join(cells))
    if a.ratio_to:  # modes measured side by side in each run: the median of their ratios
      ref = a.ratio_to
      for m, row in results[name][0].items():
        for n in row:
          if m != ref and ref in results[name][0]:
            rs = [t[m][n] / t[ref][n] for t in results[name] if t[m][n] and t[ref][n]]
            if rs:
              print(f"{'':>12}  {m}/{n} seeds / {ref}: {statistics.median(rs):.2f}x "
                    f"(median of {len(rs)} runs; {', '.join(f'{r:.2f}' for r in rs)})")  # fmt: skip


if __name__ == "__main__":
  main()

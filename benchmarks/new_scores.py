r"""The fused pass with and without the issue-24 scores (NCTI's three terms, ETran's two, PACTran),
measured side by side in one process (medians of a few repeats, float32, jitted and warmed up).

  PYTHONPATH=$PWD .venv/bin/python benchmarks/new_scores.py [--repeats 7]

For each size it times `scores.compute` with every default feature score as before issue 24's
remaining part ("before": the default set without the six new scores) and with them ("after"),
alternately (medians), then each new score alone; prints `uptime` before and after.
"""

import statistics
import subprocess
import time

from absl import app, flags

_REPEATS = flags.DEFINE_integer("repeats", 7, "Timed repeats per measurement.")

import numpy as np  # noqa: E402

import jtransfer.scores as scores  # noqa: E402
from jtransfer.scores import registry  # noqa: E402

NEW = ("ncti_seli", "ncti_ncc", "ncti_vc", "etran_energy", "etran_lda", "pactran")
SIZES = ((500, 1600, 10), (1000, 4096, 10))


def _median_time(fn, repeats):
  fn()  # compile / warm up
  times = []
  for _ in range(repeats):
    start = time.perf_counter()
    fn()
    times.append(time.perf_counter() - start)
  return statistics.median(times)


def _interleaved(fa, fb, repeats):
  """Medians of `fa` and `fb` timed alternately (a loaded machine's swings hit both alike)."""
  fa(), fb()  # compile / warm up
  ta, tb = [], []
  for _ in range(repeats):
    for fn, times in ((fa, ta), (fb, tb)):
      start = time.perf_counter()
      fn()
      times.append(time.perf_counter() - start)
  return statistics.median(ta), statistics.median(tb)


def _probe(rng, n, d, c):
  """Post-ReLU features with class structure (float32)."""
  y = np.arange(n) % c
  x = np.maximum(rng.normal(size=(n, d)) + 0.7 * rng.normal(size=(c, d))[y], 0)
  return x.astype(np.float32), y


def main(_):
  print("uptime before:", subprocess.run(["uptime"], capture_output=True, text=True).stdout.strip())
  feature = [n for n in registry.names(labels=True) if registry.REGISTRY[n].needs_features]
  before = [n for n in feature if n not in NEW]
  rng = np.random.default_rng(0)
  for n, d, c in SIZES:
    x, y = _probe(rng, n, d, c)

    def run(names, x=x, y=y, c=c):
      return lambda: scores.compute(x, y, num_classes=c, names=names)

    t_before, t_after = _interleaved(run(before), run(feature), _REPEATS.value)
    alone = {s: _median_time(run([s]), _REPEATS.value) for s in NEW}
    ncti = _median_time(run(list(NEW[:3])), _REPEATS.value)
    print(f"N={n} D={d} C={c}: before ({len(before)} scores) {1e3 * t_before:.0f} ms, after "
          f"({len(feature)}) {1e3 * t_after:.0f} ms (+{1e3 * (t_after - t_before):.0f} ms, "
          f"{t_after / t_before:.2f}x)")  # fmt: skip
    print("  alone (ms, each with its own Gram + eigh): "
          + ", ".join(f"{s} {1e3 * t:.0f}" for s, t in alone.items())
          + f"; the three NCTI terms together {1e3 * ncti:.0f}")  # fmt: skip
  print("uptime after:", subprocess.run(["uptime"], capture_output=True, text=True).stdout.strip())


if __name__ == "__main__":
  app.run(main)

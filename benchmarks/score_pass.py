r"""The whole fused score pass at one probe shape: every default feature score in one
`scores.compute`, median and minimum of --repeats runs after a warm-up. Run it from two
checkouts alternately for a before/after ratio:

  PYTHONPATH=<checkout> .venv/bin/python benchmarks/score_pass.py --n 500 --d 21632
"""

import statistics
import time

from absl import app, flags

_N = flags.DEFINE_integer("n", 500, "Samples.")
_D = flags.DEFINE_integer("d", 21632, "Features (21,632: the thesis CNN's conv1 tap).")
_C = flags.DEFINE_integer("c", 10, "Classes.")
_REPEATS = flags.DEFINE_integer("repeats", 7, "Timed runs.")

import jax  # noqa: E402
import numpy as np  # noqa: E402

import jtransfer.scores as scores  # noqa: E402
from jtransfer.scores import registry  # noqa: E402


def main(_):
  names = [k for k in registry.names(labels=True) if registry.REGISTRY[k].needs_features]
  n, d, c = _N.value, _D.value, _C.value
  rng = np.random.default_rng(0)
  y = (np.arange(n) % c).astype(np.int32)
  x = np.maximum(rng.normal(size=(n, d)) + 0.7 * rng.normal(size=(c, d))[y], 0)
  x = x.astype(np.float32)
  run = lambda: jax.block_until_ready(scores.compute(x, y, num_classes=c, names=names))
  run()
  times = []
  for _ in range(_REPEATS.value):
    start = time.perf_counter()
    run()
    times.append(time.perf_counter() - start)
  print(f"{scores.__file__}: N={n} D={d} C={c}, {len(names)} scores: median "
        f"{statistics.median(times) * 1e3:.0f} ms, min {min(times) * 1e3:.0f} ms")  # fmt: skip


if __name__ == "__main__":
  app.run(main)

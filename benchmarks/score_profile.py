r"""Where the fused score pass spends its time beyond the floor: each default feature score's own
work given the shared Gram and eigendecomposition (handed in precomputed), best of a few runs.

  PYTHONPATH=$PWD .venv/bin/python benchmarks/score_profile.py [--n 1000 --d 4096] [--repeats 5]

Prints the floor (jitted Gram + eigh), each kernel alone on top of it, and all kernels together
on top of it; `uptime` before and after. Minima, not medians: on a loaded machine the least
disturbed run is the closest to the work itself.
"""

import subprocess
import time

from absl import app, flags

_N = flags.DEFINE_integer("n", 1000, "Samples.")
_D = flags.DEFINE_integer("d", 4096, "Features.")
_C = flags.DEFINE_integer("c", 10, "Classes.")
_REPEATS = flags.DEFINE_integer("repeats", 5, "Timed runs per measurement (best taken).")

import jax  # noqa: E402
import jax.numpy as jnp  # noqa: E402
import numpy as np  # noqa: E402
from threadpoolctl import threadpool_limits  # noqa: E402

from jtransfer.scores import registry  # noqa: E402
from jtransfer.scores.shared import Shared  # noqa: E402

FEATURES = [n for n in registry.names(labels=True) if registry.REGISTRY[n].needs_features]


def _best(fn, repeats):
  jax.block_until_ready(fn())
  times = []
  for _ in range(repeats):
    start = time.perf_counter()
    jax.block_until_ready(fn())
    times.append(time.perf_counter() - start)
  return min(times)


def main(_):
  print("uptime before:", subprocess.run(["uptime"], capture_output=True, text=True).stdout.strip())
  n, d, c, repeats = _N.value, _D.value, _C.value, _REPEATS.value
  rng = np.random.default_rng(0)
  y = np.arange(n) % c
  x = np.maximum(rng.normal(size=(n, d)) + 0.7 * rng.normal(size=(c, d))[y], 0)
  xj, yj = jnp.asarray(x, jnp.float32), jnp.asarray(y, jnp.int32)

  def floor(f, labels):
    shared = Shared(f, labels, c)
    return shared.centered_gram, shared.centered_gram_eigh

  floor = jax.jit(floor)
  gram, (w, u) = jax.block_until_ready(floor(xj, yj))

  def on_top(names):
    def fn(f, labels, g, w, u):
      shared = Shared(f, labels, c)
      shared.__dict__["centered_gram"] = g  # the cached properties, precomputed
      shared.__dict__["centered_gram_eigh"] = (w, u)
      return [registry.REGISTRY[k].kernel(shared) for k in names]

    fn = jax.jit(fn)
    return lambda: fn(xj, yj, gram, w, u)

  with threadpool_limits(limits=1, user_api="blas"):
    t_floor = _best(lambda: floor(xj, yj), repeats)
    print(f"N={n} D={d} C={c} float32: floor (Gram + eigh) {t_floor * 1e3:.1f} ms")
    alone = {k: _best(on_top([k]), repeats) for k in FEATURES}
    for k, t in sorted(alone.items(), key=lambda kv: -kv[1]):
      print(f"  {k:<20} {t * 1e3:8.1f} ms")
    t_all = _best(on_top(FEATURES), repeats)
  total = sum(alone.values())
  print(f"  all {len(FEATURES)} on top of the floor: {t_all * 1e3:.1f} ms "
        f"(the above add to {total * 1e3:.1f} ms: shared pieces counted once there)")  # fmt: skip
  print("uptime after:", subprocess.run(["uptime"], capture_output=True, text=True).stdout.strip())


if __name__ == "__main__":
  app.run(main)

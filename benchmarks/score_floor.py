r"""The score core against its floor, its cost growth with N, and its large-N accuracy (issue 27).

  PYTHONPATH=$PWD .venv/bin/python benchmarks/score_floor.py --what table   # the issue table
  PYTHONPATH=$PWD .venv/bin/python benchmarks/score_floor.py --what growth --max_seconds 60
  PYTHONPATH=$PWD .venv/bin/python benchmarks/score_floor.py --what accuracy
  PYTHONPATH=$PWD .venv/bin/python benchmarks/score_floor.py --what randomized

table: every default feature score in one `scores.compute` ÷ the floor (one jitted, warmed-up
  N×D×N Gram matmul + N×N eigh; the faster of BLAS as is / one thread), timed alternately
  (medians), at N = 1000, D = 4096, C = 10 and at N = 4000 (--n_large); then the six scores
  ID + SS + RSA + NC + LogME + LEEP against the public-style NumPy/SciPy code of
  benchmarks/scores.py (part 2), side by side.
growth: the same pass for N = 500 … --max_n at D = 512 and 4096, with the route each shape takes
  and that route's floor (Gram + N×N eigh, or Zᵀ Z + D×D eigh); a D's series stops once a cell
  takes longer than --max_seconds. PARC (N² pairs, N² memory) is left out above --parc_max_n.
accuracy: float32 on the covariance route against float64 on the Gram route (the exact route),
  same rounded input, relative error per score; then the same for the randomized route (the
  scores it serves) at N = D = 4096.
randomized: the scores the randomized route serves in one `scores.compute` at N = D = 4096 …
  --max_n (route printed), against the exact route's floor (Gram + N×N eigh) where that takes
  under --max_seconds.
Prints `uptime` before and after; every ratio is from one process.
"""

import os
import statistics
import subprocess
import sys
import time

from absl import app, flags

_WHAT = flags.DEFINE_list("what", ["table"], "table, growth, accuracy.")
_REPS = flags.DEFINE_integer("reps", 5, "Timed repeats (table).")
_N_LARGE = flags.DEFINE_integer("n_large", 4000, "The table's large probe (0: skip).")
_MAX_N = flags.DEFINE_integer("max_n", 32000, "Largest N of the growth table.")
_MIN_N = flags.DEFINE_integer("min_n", 500, "Smallest N of the growth table.")
_GROWTH_D = flags.DEFINE_list("growth_d", ["512", "4096"], "The growth table's feature sizes.")
_MAX_SECONDS = flags.DEFINE_float("max_seconds", 60.0, "Stop a growth series past this.")
_PARC_MAX_N = flags.DEFINE_integer("parc_max_n", 8000, "PARC left out of growth cells above.")
_ACCURACY_ROUTES = flags.DEFINE_list(
  "accuracy_routes", ["covariance", "randomized"], "Routes the accuracy part checks."
)

import jax  # noqa: E402
import jax.numpy as jnp  # noqa: E402
import numpy as np  # noqa: E402
from threadpoolctl import threadpool_limits  # noqa: E402

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import scores as peers  # noqa: E402  (benchmarks/scores.py: the public-style NumPy/SciPy code)

import jtransfer.scores as scores  # noqa: E402
from jtransfer.scores import registry  # noqa: E402
from jtransfer.scores.shared import Shared  # noqa: E402

FEATURES = [n for n in registry.names(labels=True) if registry.REGISTRY[n].needs_features]
SERVED = [n for n in FEATURES if getattr(registry.REGISTRY[n], "randomized", False)]
PEER_SIX = ["two_nn", "sum_of_squares", "rsa", "nc_score", "logme", "leep"]
HIGHEST = jax.lax.Precision.HIGHEST
# The table part also runs against an older checkout (PYTHONPATH=<it>) for before/after ratios.
_route = getattr(scores, "route", lambda n, d: "gram")


def _uptime():
  return subprocess.run(["uptime"], capture_output=True, text=True).stdout.strip()


def _time(fn):
  start = time.perf_counter()
  jax.block_until_ready(fn())
  return time.perf_counter() - start


def _alternating(fns: dict, repeats: int) -> dict:
  """Medians of every function, timed in turn (a load swing hits them all alike)."""
  for fn in fns.values():
    jax.block_until_ready(fn())  # compile / warm up
  times = {k: [] for k in fns}
  for _ in range(repeats):
    for k, fn in fns.items():
      times[k].append(_time(fn))
  return {k: statistics.median(v) for k, v in times.items()}


@jax.jit
def _gram_floor(f):
  return jnp.linalg.eigh(jnp.matmul(f, f.T, precision=HIGHEST))


@jax.jit
def _cov_floor(f):
  return jnp.linalg.eigh(jnp.matmul(f.T, f, precision=HIGHEST))


def _floor(x, route):
  """The route's floor: the faster of BLAS as is / one thread (jitted, warmed up)."""
  fn = _cov_floor if route == "covariance" else _gram_floor
  xj = jnp.asarray(x)
  best = np.inf
  for limit in (None, 1):
    with threadpool_limits(limits=limit, user_api="blas"):
      best = min(best, min(_time(lambda: fn(xj)) for _ in range(2 if x.shape[0] > 2000 else 4)))
  return best


def _ratio_row(n, d, c, repeats):
  x, y, _ = peers._probe(np.random.default_rng(0), n, d, c)
  xj = jnp.asarray(x)
  no_sfda = [s for s in FEATURES if s != "sfda"]
  fns = {
    "floor": lambda: _gram_floor(xj),
    "all": lambda: scores.compute(x, y, num_classes=c, names=FEATURES),
    "no_sfda": lambda: scores.compute(x, y, num_classes=c, names=no_sfda),
  }
  with threadpool_limits(limits=1, user_api="blas"):
    t = _alternating(fns, repeats)
  t["floor"] = min(t["floor"], _floor(x, "gram"))
  print(f"  N={n} D={d} C={c} ({_route(n, d)} route): floor {t['floor'] * 1e3:.1f} ms; "
        f"{len(FEATURES)} default feature scores {t['all'] * 1e3:.1f} ms -> "
        f"{t['all'] / t['floor']:.2f}x (goal <= 1.5x); without SFDA (its own two k×k eighs) "
        f"{t['no_sfda'] * 1e3:.1f} ms -> {t['no_sfda'] / t['floor']:.2f}x", flush=True)  # fmt: skip
  return t


def table(repeats):
  print("\n[table] all default feature scores in one compute / the floor (float32)")
  _ratio_row(1000, 4096, 10, repeats)
  if _N_LARGE.value:
    _ratio_row(_N_LARGE.value, 4096, 10, max(1, repeats // 2))
  peers.SUMMARY.clear()
  peers.part2(False, repeats)


def growth(_):
  print("\n[growth] all default feature scores in one compute, float32, C = 10 (one timed run "
        "after a warm-up)")  # fmt: skip
  print("| D | N | route | floor (s) | compute (s) | ÷ floor | scores |")
  print("|---|---|---|---|---|---|---|")
  sizes = [500, 1000, 2000, 4000, 8000, 16000, 32000]
  for d in map(int, _GROWTH_D.value):
    for n in (s for s in sizes if _MIN_N.value <= s <= _MAX_N.value):
      names = [s for s in FEATURES if s != "parc" or n <= _PARC_MAX_N.value]
      x, y, _ = peers._probe(np.random.default_rng(0), n, d, 10)
      route = _route(n, d)
      t_floor = _floor(x, route)
      fn = lambda x=x, y=y, names=names: scores.compute(x, y, num_classes=10, names=names)
      jax.block_until_ready(fn())
      t = _time(fn)
      left = "all" if len(names) == len(FEATURES) else "all but parc"
      print(f"| {d} | {n} | {route} | {t_floor:.3f} | {t:.3f} | {t / t_floor:.2f}x | {left} |",
            flush=True)  # fmt: skip
      if t > _MAX_SECONDS.value:
        print(f"  (series D={d} stopped: {t:.0f} s > {_MAX_SECONDS.value:.0f} s)")
        break


def _kernels(x, y, c, route, names=FEATURES):
  fn = lambda f, labels: {
    k: registry.REGISTRY[k].kernel(Shared(f, labels, c, route)) for k in names
  }  # fmt: skip
  return {k: float(v) for k, v in jax.jit(fn)(jnp.asarray(x), jnp.asarray(y)).items()}


def accuracy(_):
  if "covariance" in _ACCURACY_ROUTES.value:
    _accuracy_covariance()
  if "randomized" in _ACCURACY_ROUTES.value:
    _accuracy_randomized()


def _accuracy_covariance():
  print("\n[accuracy] covariance route, float32, vs the Gram route in float64 (same input)")
  rows = {}
  cases = [(2500, 128), (4096, 512), (4096, 64)]
  for n, d in cases:
    x, y, _ = peers._probe(np.random.default_rng(5), n, d, 10)
    got = _kernels(x, y, 10, "covariance")
    jax.config.update("jax_enable_x64", True)
    want = _kernels(x.astype(np.float64), y, 10, "gram")
    jax.config.update("jax_enable_x64", False)
    rows[(n, d)] = {k: abs(got[k] - want[k]) / max(abs(want[k]), 1e-30) for k in FEATURES}
    print(f"  done N={n} D={d}", flush=True)
  print("| score | " + " | ".join(f"N={n}, D={d}" for n, d in cases) + " |")
  print("|---|" + "---|" * len(cases))
  for k in FEATURES:
    print(f"| {k} | " + " | ".join(f"{rows[c][k]:.1e}" for c in cases) + " |")


def _accuracy_randomized():
  print("\n[accuracy] randomized route, float32, vs the Gram route in float64 (same input)")
  n = d = 4096
  x, y, _ = peers._probe(np.random.default_rng(5), n, d, 10)
  got = _kernels(x, y, 10, "randomized", SERVED)
  jax.config.update("jax_enable_x64", True)
  want = _kernels(x.astype(np.float64), y, 10, "gram", SERVED)
  jax.config.update("jax_enable_x64", False)
  print(f"| score | N={n}, D={d} |\n|---|---|")
  for k in SERVED:
    print(f"| {k} | {abs(got[k] - want[k]) / max(abs(want[k]), 1e-30):.1e} |")


def randomized(_):
  print("\n[randomized] the scores the randomized route serves, one compute, float32, C = 10")
  print(f"  scores: {', '.join(SERVED)}")
  print("| N = D | route | exact floor (s) | compute (s) | ÷ exact floor |")
  print("|---|---|---|---|---|")
  n = 4096
  while n <= _MAX_N.value:
    x, y, _ = peers._probe(np.random.default_rng(0), n, n, 10)
    fn = lambda x=x, y=y: scores.compute(x, y, num_classes=10, names=SERVED)
    jax.block_until_ready(fn())
    t = _time(fn)
    if n <= 4096:
      floor = _floor(x, "gram")
    elif n <= 8192:  # one timed run after a warm-up (each takes minutes)
      with threadpool_limits(limits=1, user_api="blas"):
        xj = jnp.asarray(x)
        jax.block_until_ready(_gram_floor(xj))
        floor = _time(lambda xj=xj: _gram_floor(xj))
    else:
      floor = float("nan")
    print(f"| {n} | {scores.route(n, n, SERVED)} | {floor:.2f} | {t:.2f} | {t / floor:.2f}x |",
          flush=True)  # fmt: skip
    if t > _MAX_SECONDS.value or floor > _MAX_SECONDS.value:
      break
    n *= 2


def main(_):
  print("uptime before:", _uptime())
  print(f"jax {jax.__version__}, {jax.default_backend()}, cpu count {os.cpu_count()}")
  for part in _WHAT.value:
    parts = {"table": table, "growth": growth, "accuracy": accuracy, "randomized": randomized}
    parts[part](_REPS.value)
  print("uptime after:", _uptime())


if __name__ == "__main__":
  app.run(main)

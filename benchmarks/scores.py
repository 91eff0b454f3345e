r"""Score-core speed, measured side by side (medians of repeated runs).

  python benchmarks/scores.py            # full sizes (issue 2 / 11); prints `uptime` around it
  python benchmarks/scores.py --load     # the same beside a second CPU-bound process
  python benchmarks/scores.py --quick    # smaller sizes, fewer repeats

1. All feature scores of one (checkpoint, layer) at N=1000, D=4096, C=10, float32, divided by
   the floor: one jitted, warmed-up N×D×N Gram matmul plus N×N eigh in JAX (the faster of BLAS
   pool as is / one thread). Goal ≤ 1.5×. Shown for the library default (BLAS held to one thread
   during the pass, `jtransfer.scores.threads`) and with the BLAS pool left alone.
2. ID + SS + RSA + NC + LogME + LEEP through `compute` vs straightforward NumPy/SciPy code
   written the way the public implementations do it (pdist + full sort for TWO-NN, corrcoef for
   RSA, per-class / per-sample Python loops for SS and NC, LogME by an SVD of F per call with the
   published 11-iteration loop per class, LEEP with loops). Goal ≥ 12×.
3. `compute_batched` for M=64 checkpoints (N=500, D=1600) vs a Python loop over `compute`.
4. float32 vs float64 relative error of every score (synthetic probe and, when the data dir is
   available, 500 MNIST pixel images).
"""

import gzip
import os
import pathlib
import statistics
import subprocess
import sys
import time

from absl import app, flags

_QUICK = flags.DEFINE_bool("quick", False, "Smaller sizes and fewer repeats.")
_REPEATS = flags.DEFINE_integer("repeats", None, "Timed repeats per measurement (default 5/2).")
_PARTS = flags.DEFINE_list("parts", ["1", "2", "3", "4"], "Which parts to run.")
_LOAD = flags.DEFINE_bool("load", False, "Run a second CPU-bound process beside the benchmark.")

import jax  # noqa: E402
import jax.numpy as jnp  # noqa: E402
import numpy as np  # noqa: E402
from scipy.spatial.distance import pdist, squareform  # noqa: E402
from threadpoolctl import threadpool_limits  # noqa: E402

import jtransfer.scores as scores  # noqa: E402
from jtransfer.scores import registry  # noqa: E402

FEATURE_SCORES = [n for n, s in registry.REGISTRY.items() if not s.needs_source_probs]


def _median_time(fn, repeats):
  fn()  # compile / warm up
  times = []
  for _ in range(repeats):
    start = time.perf_counter()
    fn()
    times.append(time.perf_counter() - start)
  return statistics.median(times)


def _probe(rng, n, d, c, cs=10, dtype=np.float32):
  """ReLU features with class structure, plus a source softmax."""
  y = np.arange(n) % c
  x = np.maximum(rng.normal(size=(n, d)) + 0.7 * rng.normal(size=(c, d))[y], 0)
  logits = 2 * rng.normal(size=(n, cs)) + 2 * np.eye(cs)[y % cs]
  probs = np.exp(logits - logits.max(1, keepdims=True))
  probs /= probs.sum(1, keepdims=True)
  return x.astype(dtype), y.astype(np.int32), probs.astype(dtype)


# -- straightforward NumPy/SciPy versions, the way public code does them ----------------------
def np_two_nn(x, fraction=0.9):
  y = np.sort(squareform(pdist(x)), axis=1)
  k1, k2 = y[:, 1], y[:, 2]
  good = np.setdiff1d(np.setdiff1d(np.arange(len(x)), np.nonzero(k1 == 0)[0]),
                      np.nonzero(k1 == k2)[0])  # fmt: skip
  mu = np.sort(k2[good] / k1[good])
  n = good.size
  femp = np.arange(1, n + 1) / n
  npts = int(np.floor(n * fraction))
  xs, ys = np.log(mu[:-2])[:npts], -np.log(1 - femp[:-2])[:npts]
  return np.linalg.lstsq(xs[:, None], ys, rcond=None)[0][0]


def np_sum_of_squares(x, y):
  ssw = 0.0
  for c in np.unique(y):
    xc = x[y == c]
    ssw += np.sum((xc - xc.mean(0)) ** 2)
  return ssw / np.sum((x - x.mean(0)) ** 2)


def np_rsa(x, y):
  rdm = 1 - np.corrcoef(x)
  off = ~np.eye(len(y), dtype=bool)
  return rdm[y[:, None] != y[None, :]].mean() - rdm[(y[:, None] == y[None, :]) & off].mean()


def np_nc(x, y):
  means = [x[y == c].mean(0) for c in np.unique(y)]
  within = sum(np.linalg.norm(x[i] - means[y[i]]) for i in range(len(x))) / len(x)
  between = [np.linalg.norm(a - b) for i, a in enumerate(means) for j, b in enumerate(means)
             if i != j]  # fmt: skip
  return within / np.mean(between)


def np_logme(x, y):
  x = x.astype(np.float64)
  n, d = x.shape
  u, s, _ = np.linalg.svd(x, full_matrices=False)
  sigma = s**2
  evidences = []
  for c in range(y.max() + 1):
    yc = (y == c).astype(np.float64)
    proj = u.T @ yc
    x2 = proj**2
    res_x2 = yc @ yc - x2.sum()
    alpha, beta = 1.0, 1.0
    for _ in range(11):
      t = alpha / beta
      gamma = (sigma / (sigma + t)).sum()
      m2 = (sigma * x2 / (t + sigma) ** 2).sum()
      res2 = (x2 / (1 + sigma / t) ** 2).sum() + res_x2
      alpha, beta = gamma / (m2 + 1e-5), (n - gamma) / (res2 + 1e-5)
      if abs(alpha / beta - t) / t < 1e-3:
        break
    full = np.concatenate([sigma, np.zeros(d - sigma.size)])
    ev = (d / 2 * np.log(alpha) + n / 2 * np.log(beta) - 0.5 * np.sum(np.log(alpha + beta * full))
          - beta / 2 * res2 - alpha / 2 * m2 - n / 2 * np.log(2 * np.pi))  # fmt: skip
    evidences.append(ev / n)
  return np.mean(evidences)


def np_leep(probs, y):
  c = y.max() + 1
  joint = np.zeros((c, probs.shape[1]))
  for i in range(len(y)):
    joint[y[i]] += probs[i] / len(y)
  cond = joint / joint.sum(0, keepdims=True)
  return np.mean([np.log(probs[i] @ cond[y[i]]) for i in range(len(y))])


def _block(tree):
  return jax.block_until_ready(tree)


# -- parts --------------------------------------------------------------------------------------
def _blas(limit):
  """JTRANSFER_BLAS_THREADS for the scores' passes (0: leave the BLAS pool alone)."""
  os.environ["JTRANSFER_BLAS_THREADS"] = str(limit)


SUMMARY = {}


def part1(quick, repeats):
  n, d, c = (500, 2048, 10) if quick else (1000, 4096, 10)
  x, y, _ = _probe(np.random.default_rng(0), n, d, c)
  xj = jnp.asarray(x)

  @jax.jit
  def floor(f):
    g = jnp.matmul(f, f.T, precision=jax.lax.Precision.HIGHEST)
    return jnp.linalg.eigh(g)

  # The floor: one jitted, warmed-up Gram + eigh, with the BLAS pool as it comes and with one
  # thread; the faster of the two is the floor.
  floors = {}
  for limit in (0, 1):
    with threadpool_limits(limits=limit or None, user_api="blas"):
      floors[limit] = _median_time(lambda: _block(floor(xj)), repeats)
  t_floor = min(floors.values())
  all_scores = lambda: _block(scores.compute(x, y, num_classes=c, names=FEATURE_SCORES))
  t_all = {}
  for limit in (1, 0):  # 1: the library default; 0: BLAS threads left alone (the old default)
    _blas(limit)
    t_all[limit] = _median_time(all_scores, repeats)
  _blas(1)
  per = {}
  for name in FEATURE_SCORES:
    per[name] = _median_time(lambda n=name: _block(scores.compute(x, y, num_classes=c, names=[n])),
                             max(1, repeats // 2))  # fmt: skip
  print(f"\n[1] all {len(FEATURE_SCORES)} feature scores, N={n} D={d} C={c} float32")
  print(f"    floor, jitted Gram matmul + eigh: {floors[0] * 1e3:8.1f} ms (BLAS pool as is), "
        f"{floors[1] * 1e3:8.1f} ms (BLAS 1 thread); floor = {t_floor * 1e3:.1f} ms")  # fmt: skip
  print(f"    compute(all), default (BLAS 1 thread): {t_all[1] * 1e3:8.1f} ms  -> "
        f"{t_all[1] / t_floor:.2f}x floor (goal <= 1.5x)")  # fmt: skip
  print(f"    compute(all), BLAS pool as is:         {t_all[0] * 1e3:8.1f} ms  -> "
        f"{t_all[0] / t_floor:.2f}x floor")  # fmt: skip
  print("    each score alone (own Gram etc.): " +
        ", ".join(f"{k} {v * 1e3:.0f}" for k, v in per.items()) + " ms")  # fmt: skip
  print(f"    sum of scores computed alone: {sum(per.values()) * 1e3:.1f} ms "
        f"({sum(per.values()) / t_all[1]:.1f}x the shared pass)")  # fmt: skip
  SUMMARY["[1] all feature scores / floor (goal <= 1.5x)"] = f"{t_all[1] / t_floor:.2f}x"
  SUMMARY["[1]   same, BLAS pool as is"] = f"{t_all[0] / t_floor:.2f}x"


def part2(quick, repeats):
  n, d, c = (500, 2048, 10) if quick else (1000, 4096, 10)
  x, y, probs = _probe(np.random.default_rng(1), n, d, c)
  names = ["two_nn", "sum_of_squares", "rsa", "nc_score", "logme", "leep"]
  ours = lambda: _block(scores.compute(x, y, num_classes=c, names=names, source_probs=probs))
  baselines = {
    "two_nn": lambda: np_two_nn(x),
    "sum_of_squares": lambda: np_sum_of_squares(x, y),
    "rsa": lambda: np_rsa(x, y),
    "nc_score": lambda: np_nc(x, y),
    "logme": lambda: np_logme(x, y),
    "leep": lambda: np_leep(probs, y),
  }
  reps = max(1, min(repeats, 3))
  t_ours = _median_time(ours, repeats)
  t_np = {k: _median_time(f, reps) for k, f in baselines.items()}
  total = sum(t_np.values())
  print(f"\n[2] ID + SS + RSA + NC + LogME + LEEP, N={n} D={d} C={c} float32 inputs")
  parts = ", ".join(f"{k} {v * 1e3:.0f}" for k, v in t_np.items())
  print(f"    NumPy/SciPy public-style: {parts} ms; total {total * 1e3:.0f} ms")
  print(f"    jtransfer compute:        {t_ours * 1e3:.1f} ms  -> speed-up {total / t_ours:.1f}x"
        " (goal >= 12x)")  # fmt: skip
  SUMMARY["[2] speed-up over public-style NumPy/SciPy (goal >= 12x)"] = f"{total / t_ours:.1f}x"
  got = ours()
  ref = {k: float(f()) for k, f in baselines.items() if k != "logme"}
  print("    agreement (float32 vs NumPy): " + ", ".join(
    f"{k} {abs(float(got[k]) - v) / abs(v):.1e}" for k, v in ref.items()))  # fmt: skip


def part3(quick, repeats):
  m, n, d, c = (16, 250, 800, 10) if quick else (64, 500, 1600, 10)
  rng = np.random.default_rng(2)
  xs = np.stack([_probe(rng, n, d, c)[0] for _ in range(m)])
  y = np.arange(n, dtype=np.int32) % c
  batched = lambda: _block(scores.compute_batched(xs, y, num_classes=c, names=FEATURE_SCORES))
  loop = lambda: _block([scores.compute(xs[i], y, num_classes=c, names=FEATURE_SCORES)
                         for i in range(m)])  # fmt: skip
  reps = 1  # each side runs M models per repeat (plus a warm-up); one repeat is minutes on CPU
  t_b = _median_time(batched, reps)
  t_l = _median_time(loop, reps)
  print(f"\n[3] compute_batched, M={m} N={n} D={d} C={c}, all feature scores, "
        f"{len(jax.devices())} device(s)")  # fmt: skip
  print(f"    loop of compute: {t_l:.2f} s   compute_batched: {t_b:.2f} s   -> {t_l / t_b:.2f}x"
        f"   ({t_b / m * 1e3:.0f} ms per model)")  # fmt: skip
  SUMMARY["[3] loop of compute / compute_batched"] = f"{t_l / t_b:.2f}x"


def _mnist_probe(per_class=50):
  default = pathlib.Path(__file__).resolve().parents[2] / "shared" / "datasets"
  root = pathlib.Path(os.environ.get("JTRANSFER_DATA_DIR") or default)
  try:
    with gzip.open(root / "mnist" / "t10k-images-idx3-ubyte.gz") as f:
      images = np.frombuffer(f.read(), np.uint8, offset=16).reshape(-1, 784)
    with gzip.open(root / "mnist" / "t10k-labels-idx1-ubyte.gz") as f:
      labels = np.frombuffer(f.read(), np.uint8, offset=8)
  except FileNotFoundError:
    return None
  idx = np.concatenate([np.nonzero(labels == c)[0][:per_class] for c in range(10)])
  return images[idx].astype(np.float64) / 255, labels[idx].astype(np.int32)


def part4(quick, repeats):
  del repeats
  n, d = (300, 800) if quick else (500, 1600)
  x, y, probs = _probe(np.random.default_rng(3), n, d, 10, dtype=np.float64)
  sets = {f"ReLU N={n} D={d}": (x, y, probs)}
  mnist = _mnist_probe()
  if mnist is not None:
    sets["MNIST pixels N=500"] = (mnist[0], mnist[1], probs[:500] if n >= 500 else None)
  print("\n[4] float32 vs float64 relative error")
  for label, (f, labs, p) in sets.items():
    if p is not None and len(p) != len(labs):
      p = None
    previous = jax.config.jax_enable_x64
    jax.config.update("jax_enable_x64", True)
    ref = {k: float(v) for k, v in scores.compute(f, labs, num_classes=10, source_probs=p).items()}
    jax.config.update("jax_enable_x64", False)
    f32 = {k: float(v) for k, v in scores.compute(
      f.astype(np.float32), labs, num_classes=10,
      source_probs=None if p is None else p.astype(np.float32)).items()}  # fmt: skip
    jax.config.update("jax_enable_x64", previous)
    print(f"    {label}: " + ", ".join(
      f"{k} {abs(f32[k] - v) / max(abs(v), 1e-30):.1e}" for k, v in ref.items()))  # fmt: skip


def _uptime():
  try:
    return subprocess.run(["uptime"], capture_output=True, text=True, check=True).stdout.strip()
  except (OSError, subprocess.CalledProcessError):
    return "load average {:.2f}, {:.2f}, {:.2f}".format(*os.getloadavg())


_BUSY = "import numpy as np\na = np.random.rand(800, 800)\nwhile True: a = np.tanh(a @ a)"


def main(argv):
  del argv
  quick = _QUICK.value
  repeats = _REPEATS.value or (2 if quick else 5)
  _blas(1)
  print(f"uptime before: {_uptime()}")
  print(f"jax {jax.__version__}, backend {jax.default_backend()}, devices {len(jax.devices())}, "
        f"cpu count {os.cpu_count()}, quick={quick}, repeats={repeats}, "
        f"load={_LOAD.value}")  # fmt: skip
  busy = None
  if _LOAD.value:  # a second CPU-bound process beside the benchmark
    busy = subprocess.Popen([sys.executable, "-c", _BUSY])
  try:
    for part in _PARTS.value:
      {"1": part1, "2": part2, "3": part3, "4": part4}[part](quick, repeats)
  finally:
    if busy is not None:
      busy.kill()
  print("\nsummary (one run, side by side):")
  for key, value in SUMMARY.items():
    print(f"    {key:<58} {value}")
  print(f"uptime after: {_uptime()}")


if __name__ == "__main__":
  app.run(main)

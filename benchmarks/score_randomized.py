r"""The randomized route against the Gram route for the scores it serves, N = D = 4096, float32:
`scores.compute` with `RANDOMIZED_MIN_N` as shipped (randomized) and raised (Gram), the jit
cache cleared between, one warm-up and one timed run each, randomized / Gram / randomized.

  PYTHONPATH=$PWD .venv/bin/python benchmarks/score_randomized.py
"""

import importlib
import subprocess
import sys
import time

import jax
import numpy as np

sys.path.insert(0, __import__("os").path.dirname(__import__("os").path.abspath(__file__)))
import scores as peers  # noqa: E402

import jtransfer.scores as scores
from jtransfer.scores import registry
from jtransfer.scores import shared as sh

SERVED = [
  n
  for n in registry.names(labels=True)
  if registry.REGISTRY[n].needs_features and registry.REGISTRY[n].randomized
]
print("uptime before:", subprocess.run(["uptime"], capture_output=True, text=True).stdout.strip())
x, y, _ = peers._probe(np.random.default_rng(0), 4096, 4096, 10)

cl = importlib.import_module("jtransfer.scores.compute")


def t(route_min):
  sh.RANDOMIZED_MIN_N = route_min
  cl._jitted_single.cache_clear()
  f = lambda: scores.compute(x, y, num_classes=10, names=SERVED)
  jax.block_until_ready(f())
  s = time.perf_counter()
  jax.block_until_ready(f())
  return time.perf_counter() - s


for label, m in [("randomized", 4096), ("gram (forced)", 10**9), ("randomized", 4096)]:
  secs = t(m)
  print(label, scores.route(4096, 4096, SERVED), f"{secs:.2f} s", flush=True)
print("uptime after:", subprocess.run(["uptime"], capture_output=True, text=True).stdout.strip())

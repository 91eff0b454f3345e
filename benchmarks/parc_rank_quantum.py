"""How far PARC moves when float32 features change in their last bits (the quantum that
tests/distributed_sweep_test.py allows): features x (1 + 1e-7 noise), N = 50, 10 classes.

  JAX_PLATFORMS=cpu .venv/bin/python benchmarks/parc_rank_quantum.py
"""

import importlib

import numpy as np

parc = importlib.import_module("jtransfer.scores.parc")


def main(trials: int = 30) -> None:
  rng = np.random.default_rng(0)
  worst = 0.0
  for trial in range(trials):
    n, d = 50, (128, 1600, 3136, 10)[trial % 4]
    if d < 200:
      x = rng.normal(size=(n, d)) @ rng.normal(size=(d, d)) * 0.1
    else:
      x = rng.normal(size=(n, d))
    x = np.maximum(x, 0).astype(np.float32)  # post-ReLU features
    y = np.repeat(np.arange(10), 5)
    a = float(parc.parc(x, y, num_classes=10))
    x2 = (x * (1 + 1e-7 * rng.normal(size=x.shape))).astype(np.float32)
    b = float(parc.parc(x2, y, num_classes=10))
    worst = max(worst, abs(a - b))
  print(f"largest |change| of PARC over {trials} cases: {worst:.2e} (x100 scale)")


if __name__ == "__main__":
  main()

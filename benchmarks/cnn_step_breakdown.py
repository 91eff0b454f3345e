r"""Where the thesis CNN's training step spends its time on XLA:CPU: gradients with parts cut off.

  python benchmarks/cnn_step_breakdown.py --rounds 5

One seed, batch 64, one device, the jitted gradient only (no optimiser), the same plain-JAX CNN
as `benchmarks/cnn_formulations.py` (XLA convolutions, `jtransfer.models.pooling` pools). Each
variant removes work, so the differences of the medians attribute it:
- full:          the whole gradient;
- no_conv1_w:    conv1's kernel is not differentiated (its weight gradient is gone);
- no_conv1:      neither conv1 parameter is (conv2's input gradient, pool1's backward and
                 conv1's bias gradient are gone as well);
- const_input:   conv2 reads a constant [64, 13, 13, 32] array (conv1 and pool1 forward gone);
- conv2_fwd / conv2_w / conv2_x: conv2 alone: forward; forward + weight gradient; forward +
                 input gradient.
Variants run in turns (A B C ... A B C ...), `--steps` calls per turn; medians in ms, with
`uptime` before and after.
"""

import argparse
import statistics
import subprocess
import sys
import time
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
import optax
from jax import lax

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from cnn_formulations import conv_xla  # noqa: E402

from jtransfer.models import pooling  # noqa: E402

B = 64


def _head(p, h, y):
  h = jax.nn.relu(pooling.max_pool_2x2(conv_xla(h, p["k2"], p["b2"])))
  h = jax.nn.relu(h.reshape(B, -1) @ p["w1"] + p["c1"])
  return optax.softmax_cross_entropy_with_integer_labels(h @ p["w2"] + p["c2"], y).mean()


def _variants(p, x, y, h1):
  def net(freeze=()):
    def loss(p):
      k1, b1 = (lax.stop_gradient(p[k]) if k in freeze else p[k] for k in ("k1", "b1"))
      return _head(p, jax.nn.relu(pooling.max_pool_2x2(conv_xla(x, k1, b1))), y)

    return loss

  zero = jnp.zeros((64,), jnp.float32)
  return {  # name: (function, its argument)
    "full": (jax.grad(net()), p),
    "no_conv1_w": (jax.grad(net(("k1",))), p),
    "no_conv1": (jax.grad(net(("k1", "b1"))), p),
    "const_input": (jax.grad(lambda q: _head(q, h1, y)), p),
    "conv2_fwd": (lambda k: conv_xla(h1, k, zero), p["k2"]),
    "conv2_w": (jax.grad(lambda k: jnp.sum(conv_xla(h1, k, zero) ** 2)), p["k2"]),
    "conv2_x": (jax.grad(lambda h: jnp.sum(conv_xla(h, p["k2"], zero) ** 2)), h1),
  }


def _uptime() -> str:
  return subprocess.run(["uptime"], capture_output=True, text=True).stdout.strip()


def main():
  ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  ap.add_argument("--rounds", type=int, default=5)
  ap.add_argument("--steps", type=int, default=30)
  a = ap.parse_args()
  rng = np.random.default_rng(0)
  shapes = {"k1": (3, 3, 1, 32), "b1": (32,), "k2": (3, 3, 32, 64), "b2": (64,)}
  shapes |= {"w1": (1600, 128), "c1": (128,), "w2": (128, 10), "c2": (10,)}
  p = {k: jnp.asarray(rng.uniform(-0.1, 0.1, s), jnp.float32) for k, s in shapes.items()}
  x = jnp.asarray(rng.normal(size=(B, 28, 28, 1)), jnp.float32)
  y = jnp.asarray(rng.integers(0, 10, B), jnp.int32)
  h1 = jnp.asarray(rng.normal(size=(B, 13, 13, 32)), jnp.float32)
  fns = {n: (jax.jit(f), arg) for n, (f, arg) in _variants(p, x, y, h1).items()}
  print(f"before: {_uptime()}")
  times = {n: [] for n in fns}
  for _ in range(a.rounds):
    for n, (f, arg) in fns.items():
      jax.block_until_ready(f(arg))
      t = time.perf_counter()
      for _ in range(a.steps):
        out = f(arg)
      jax.block_until_ready(out)
      times[n].append((time.perf_counter() - t) / a.steps)
  print(f"after:  {_uptime()}")
  for n, ts in times.items():
    print(f"{n:>12}: {statistics.median(ts) * 1e3:6.2f} ms (min {min(ts) * 1e3:.2f})")


if __name__ == "__main__":
  main()

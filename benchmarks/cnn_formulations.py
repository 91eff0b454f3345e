r"""Thesis CNN training step, formulations of its convolutions and max pools, interleaved A/B.

  python benchmarks/cnn_formulations.py                     # every variant, 7 rounds
  python benchmarks/cnn_formulations.py --variants xla,pool --rounds 9

One seed, batch 64, Adam, one jitted step per variant in one process (one XLA:CPU device); the
variants run in turns (A B C D A B C D ...), `--steps` steps per turn, and the median images/s
of each is reported with its ratio to the first, with `uptime` before and after (the machine is
shared: read the ratios). A plain-JAX copy of the thesis CNN (the same layers as
`jtransfer/models/cnn.py`), so the formulations can be swapped freely:
- conv "xla": `lax.conv_general_dilated` (what `nnx.Conv` emits);
  conv "im2col": the 3x3 patches concatenated on the channel axis, then one matmul;
  conv "gemm_grads": the XLA forward, both gradients as plain matmuls (col2im / im2col);
- pool "reduce_window": `lax.reduce_window` (what `nnx.max_pool` emits; its gradient is
  `select_and_scatter`); pool "reshape": `jtransfer.models.pooling.max_pool_2x2`; pool
  "slices": the four strided quadrants, max and first-argmax by comparisons, no transposes.
Variants: xla, im2col (old pool); pool, im2col+pool, gemm_grads+pool (reshape pool); slices.
Before timing, each variant's gradient is compared with the first's (max relative difference).
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

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from jtransfer.models import pooling  # noqa: E402


def conv_xla(x, k, b):
  dn = ("NHWC", "HWIO", "NHWC")
  return lax.conv_general_dilated(x, k, (1, 1), "VALID", dimension_numbers=dn) + b


def conv_im2col(x, k, b):
  kh, kw, cin, cout = k.shape
  h, w = x.shape[1] - kh + 1, x.shape[2] - kw + 1
  patches = jnp.concatenate(
    [x[:, i : i + h, j : j + w, :] for i in range(kh) for j in range(kw)], axis=-1
  )  # [B, h, w, kh*kw*cin] in (i, j, c) order = the HWIO kernel's row order
  out = patches.reshape(-1, kh * kw * cin) @ k.reshape(-1, cout)
  return out.reshape(x.shape[0], h, w, cout) + b


@jax.custom_vjp
def _conv_gemm_grads(x, k):
  dn = ("NHWC", "HWIO", "NHWC")
  return lax.conv_general_dilated(x, k, (1, 1), "VALID", dimension_numbers=dn)


def _conv_gemm_grads_fwd(x, k):
  return _conv_gemm_grads(x, k), (x, k)


def _conv_gemm_grads_bwd(res, g):
  """Both gradients as plain matmuls: dx = col2im(g @ K^T), dk = im2col(x)^T @ g."""
  x, k = res
  kh, kw, cin, cout = k.shape
  b, h, w = g.shape[:3]
  col = (g.reshape(-1, cout) @ k.reshape(-1, cout).T).reshape(b, h, w, kh, kw, cin)
  pads = lambda i, j: ((0, 0), (i, kh - 1 - i), (j, kw - 1 - j), (0, 0))  # noqa: E731
  dx = sum(jnp.pad(col[:, :, :, i, j], pads(i, j)) for i in range(kh) for j in range(kw))
  patches = jnp.concatenate(
    [x[:, i : i + h, j : j + w, :] for i in range(kh) for j in range(kw)], axis=-1
  )
  dk = (patches.reshape(-1, kh * kw * cin).T @ g.reshape(-1, cout)).reshape(k.shape)
  return dx, dk


_conv_gemm_grads.defvjp(_conv_gemm_grads_fwd, _conv_gemm_grads_bwd)


def conv_gemm_grads(x, k, b):
  return _conv_gemm_grads(x, k) + b


def pool_reduce_window(x):
  return lax.reduce_window(x, -jnp.inf, lax.max, (1, 2, 2, 1), (1, 2, 2, 1), "VALID")


def _quadrants(x):
  """The four elements of each 2x2 window as strided slices, in row-major window order."""
  x = x[:, : x.shape[1] // 2 * 2, : x.shape[2] // 2 * 2]
  return x[:, 0::2, 0::2], x[:, 0::2, 1::2], x[:, 1::2, 0::2], x[:, 1::2, 1::2]


@jax.custom_vjp
def pool_slices(x):
  a, b, c, d = _quadrants(x)
  return jnp.maximum(jnp.maximum(a, b), jnp.maximum(c, d))


def _pool_slices_fwd(x):
  a, b, c, d = _quadrants(x)
  m = jnp.maximum(jnp.maximum(a, b), jnp.maximum(c, d))
  first = jnp.where(a == m, 0, jnp.where(b == m, 1, jnp.where(c == m, 2, 3))).astype(jnp.int8)
  return m, (x.shape, first)


def _pool_slices_bwd(res, g):
  (n, h, w, c), first = res
  ga, gb, gc, gd = (jnp.where(first == i, g, 0.0) for i in range(4))
  h2, w2 = h // 2, w // 2
  row0 = jnp.stack([ga, gb], axis=3).reshape(n, h2, 2 * w2, c)
  row1 = jnp.stack([gc, gd], axis=3).reshape(n, h2, 2 * w2, c)
  gx = jnp.stack([row0, row1], axis=2).reshape(n, 2 * h2, 2 * w2, c)
  return (jnp.pad(gx, ((0, 0), (0, h - 2 * h2), (0, w - 2 * w2), (0, 0))),)


pool_slices.defvjp(_pool_slices_fwd, _pool_slices_bwd)


VARIANTS = {
  "xla": (conv_xla, pool_reduce_window),
  "im2col": (conv_im2col, pool_reduce_window),
  "pool": (conv_xla, pooling.max_pool_2x2),
  "im2col+pool": (conv_im2col, pooling.max_pool_2x2),
  "gemm_grads+pool": (conv_gemm_grads, pooling.max_pool_2x2),
  "slices": (conv_xla, pool_slices),
}


def make_step(conv, pool, tx):
  def loss_fn(p, x, y, key):
    h = jax.nn.relu(pool(conv(x, p["k1"], p["b1"])))
    h = jax.nn.relu(pool(conv(h, p["k2"], p["b2"])))
    k1, k2 = jax.random.split(key)
    keep = jax.random.bernoulli(k1, 0.75, (h.shape[0], 1, 1, h.shape[3]))  # channel dropout
    h = jnp.where(keep, h / 0.75, 0.0).reshape(h.shape[0], -1)
    h = jax.nn.relu(h @ p["w1"] + p["c1"])
    h = jnp.where(jax.random.bernoulli(k2, 0.5, h.shape), h / 0.5, 0.0)
    logits = h @ p["w2"] + p["c2"]
    return optax.softmax_cross_entropy_with_integer_labels(logits, y).mean()

  @jax.jit
  def step(p, o, x, y, key):
    grads = jax.grad(loss_fn)(p, x, y, key)
    updates, o = tx.update(grads, o, p)
    return optax.apply_updates(p, updates), o

  return step, loss_fn


def _uptime() -> str:
  return subprocess.run(["uptime"], capture_output=True, text=True).stdout.strip()


def main():
  ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  ap.add_argument("--variants", default=",".join(VARIANTS))
  ap.add_argument("--rounds", type=int, default=7)
  ap.add_argument("--steps", type=int, default=20)
  ap.add_argument("--batch_size", type=int, default=64)
  a = ap.parse_args()
  names = a.variants.split(",")
  rng = np.random.default_rng(0)
  shapes = {"k1": (3, 3, 1, 32), "b1": (32,), "k2": (3, 3, 32, 64), "b2": (64,)}
  shapes |= {"w1": (1600, 128), "c1": (128,), "w2": (128, 10), "c2": (10,)}
  params = {k: jnp.asarray(rng.uniform(-0.1, 0.1, s), jnp.float32) for k, s in shapes.items()}
  # MNIST-like: a constant background (ties in the pools) and some bright pixels.
  x = rng.normal(size=(4096, 28, 28, 1)).astype(np.float32)
  x = jnp.asarray(np.where(x > 0.5, x, -0.42), jnp.float32)
  y = jnp.asarray(rng.integers(0, 10, len(x)), jnp.int32)
  tx = optax.adam(1e-4)
  runs, ref = {}, None
  for n in names:
    step, loss_fn = make_step(*VARIANTS[n], tx)
    g = jax.jit(jax.grad(loss_fn))(params, x[:64], y[:64], jax.random.key(0))
    ref = g if ref is None else ref
    diff = max(float(jnp.max(jnp.abs(g[k] - ref[k])) / jnp.max(jnp.abs(ref[k]))) for k in g)
    print(f"{n:>12}: gradient max rel. diff vs {names[0]}: {diff:.1e}")
    runs[n] = [step, params, tx.init(params)]

  def turn(n, steps):
    step, p, o = runs[n]
    for i in range(steps):
      idx = rng.integers(0, len(x), a.batch_size)
      p, o = step(p, o, x[idx], y[idx], jax.random.key(i))
    jax.block_until_ready(p)
    runs[n][1:] = [p, o]

  for n in names:
    turn(n, 3)  # compile, warm up
  print("before:", _uptime())
  rates = {n: [] for n in names}
  for _ in range(a.rounds):
    for n in names:
      t = time.perf_counter()
      turn(n, a.steps)
      rates[n].append(a.steps * a.batch_size / (time.perf_counter() - t))
  print("after: ", _uptime())
  base = statistics.median(rates[names[0]])
  for n in names:
    med = statistics.median(rates[n])
    print(f"{n:>12}: {med:8.0f} img/s (median of {a.rounds})  {med / base:5.2f}x {names[0]}")


if __name__ == "__main__":
  main()

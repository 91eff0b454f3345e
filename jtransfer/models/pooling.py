"""2x2 / stride-2 max pooling with a gradient that is fast on XLA:CPU.

`nnx.max_pool` lowers to `reduce_window`, whose gradient is XLA's `select_and_scatter`: on
XLA:CPU that one op took most of the thesis CNN's training step (`benchmarks/cnn_formulations.py`;
BENCHMARKS.md, "Numbers from the docstrings"). Here the 2x2 windows are a
reshape, the forward a max over them, and the backward a one-hot of the window's argmax.

Same numbers as `nnx.max_pool(x, (2, 2), strides=(2, 2))` (padding "VALID": an odd last row or
column is dropped) in value and gradient, ties included: like `select_and_scatter` the whole
gradient goes to the first maximal element of a window in row-major order (argmax picks the
first). Reverse mode only (`jax.grad` / `vjp`); the models are never differentiated forward.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp


def _windows(x):
  """[B, H, W, C] -> [B, H//2, W//2, C, 4], the 2x2 windows in row-major order."""
  if x.ndim != 4:
    raise ValueError(f"max_pool_2x2 expects an NHWC array of rank 4, got shape {x.shape}")
  if x.shape[1] < 2 or x.shape[2] < 2:
    raise ValueError(f"max_pool_2x2 needs height and width >= 2, got shape {x.shape}")
  b, h, w, c = x.shape
  h2, w2 = h // 2, w // 2
  x = x[:, : 2 * h2, : 2 * w2].reshape(b, h2, 2, w2, 2, c)
  return x.transpose(0, 1, 3, 5, 2, 4).reshape(b, h2, w2, c, 4)


@jax.custom_vjp
def max_pool_2x2(x: jax.Array) -> jax.Array:
  """Max over 2x2 windows, stride 2, of an NHWC array; [B, H//2, W//2, C]."""
  return jnp.max(_windows(x), axis=-1)


def _forward(x):
  win = _windows(x)
  return jnp.max(win, axis=-1), (x.shape, jnp.argmax(win, axis=-1))


def _backward(res, g):
  shape, first_max = res
  b, h, w, c = shape
  h2, w2 = h // 2, w // 2
  gw = g[..., None] * jax.nn.one_hot(first_max, 4, dtype=g.dtype)  # [B, h2, w2, C, 4]
  gx = gw.reshape(b, h2, w2, c, 2, 2).transpose(0, 1, 4, 2, 5, 3).reshape(b, 2 * h2, 2 * w2, c)
  return (jnp.pad(gx, ((0, 0), (0, h - 2 * h2), (0, w - 2 * w2), (0, 0))),)


max_pool_2x2.defvjp(_forward, _backward)

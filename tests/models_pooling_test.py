"""2x2 max pooling: value and gradient against float64 NumPy, ties and odd sizes included."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx

from jtransfer.models import pooling


def np_pool_and_grad(x, g):
  """Float64 reference: the pooled map and the gradient of sum(pool * g), whole gradient of a
  window to its first maximal element in row-major order (what XLA's select_and_scatter does)."""
  b, h, w, c = x.shape
  out = np.zeros((b, h // 2, w // 2, c))
  grad = np.zeros(x.shape)
  for n in range(b):
    for i in range(h // 2):
      for j in range(w // 2):
        for k in range(c):
          win = [x[n, 2 * i + di, 2 * j + dj, k] for di in (0, 1) for dj in (0, 1)]
          first = int(np.argmax(win))  # NumPy's argmax returns the first maximum too
          out[n, i, j, k] = win[first]
          grad[n, 2 * i + first // 2, 2 * j + first % 2, k] = g[n, i, j, k]
  return out, grad


@pytest.mark.parametrize("shape", [(2, 6, 6, 3), (1, 7, 5, 2), (3, 2, 3, 1)])
def test_value_and_gradient_match_float64_reference(shape):
  rng = np.random.default_rng(0)
  x = rng.normal(size=shape).astype(np.float32)
  g = rng.normal(size=(shape[0], shape[1] // 2, shape[2] // 2, shape[3])).astype(np.float32)
  out, vjp = jax.vjp(pooling.max_pool_2x2, jnp.asarray(x))
  (grad,) = vjp(jnp.asarray(g))
  ref_out, ref_grad = np_pool_and_grad(x.astype(np.float64), g.astype(np.float64))
  np.testing.assert_array_equal(np.asarray(out, np.float64), ref_out)
  np.testing.assert_allclose(np.asarray(grad, np.float64), ref_grad, rtol=0, atol=0)


def test_ties_send_the_gradient_to_the_first_maximum_like_nnx_max_pool():
  # Constant regions (MNIST's background) make whole windows tie; a mean-splitting max gradient
  # would give 0.25 to each element, select_and_scatter gives 1 to the first.
  x = jnp.zeros((1, 4, 4, 1)).at[0, 3, 3, 0].set(1.0).at[0, 0, 3, 0].set(-1.0)
  x = x.at[0, 2, 0, 0].set(0.5).at[0, 3, 1, 0].set(0.5)  # a two-way tie below the first row

  def loss(fn, x):
    return jnp.sum(fn(x) * jnp.arange(1.0, 5.0).reshape(1, 2, 2, 1))

  ours = jax.grad(lambda x: loss(pooling.max_pool_2x2, x))(x)
  nnx_grad = jax.grad(lambda x: loss(lambda a: nnx.max_pool(a, (2, 2), strides=(2, 2)), x))(x)
  np.testing.assert_array_equal(np.asarray(ours), np.asarray(nnx_grad))
  expected = np.zeros((4, 4))
  expected[0, 0] = 1.0  # all-zero window: first element
  expected[0, 2] = 2.0  # zeros and a -1: first zero
  expected[2, 0] = 3.0  # 0.5 at (2, 0) and (3, 1): the first in row-major order
  expected[3, 3] = 4.0
  np.testing.assert_array_equal(np.asarray(ours)[0, :, :, 0], expected)


def test_matches_nnx_max_pool_under_vmap_and_jit():
  x = jax.random.normal(jax.random.key(1), (3, 2, 9, 8, 4))  # [seeds, B, H, W, C]
  ref = jax.vmap(lambda a: nnx.max_pool(a, (2, 2), strides=(2, 2)))(x)
  np.testing.assert_array_equal(jax.jit(jax.vmap(pooling.max_pool_2x2))(x), ref)
  f = lambda fn: jax.grad(lambda a: jnp.sum(jnp.sin(jax.vmap(fn)(a))))
  ours = jax.jit(f(pooling.max_pool_2x2))(x)
  np.testing.assert_allclose(ours, f(lambda a: nnx.max_pool(a, (2, 2), strides=(2, 2)))(x))


@pytest.mark.parametrize("shape", [(4, 4, 3), (2, 1, 4, 3)])
def test_bad_shapes_are_rejected(shape):
  with pytest.raises(ValueError, match="max_pool_2x2"):
    pooling.max_pool_2x2(jnp.zeros(shape))

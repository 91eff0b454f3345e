"""The shared train / eval step: loss, accuracy and updates against NumPy, seed lifting."""

import jax
import jax.numpy as jnp
import numpy as np

from jtransfer.models import functional
from jtransfer.train import optim
from jtransfer.train import step as step_lib


def _batch(n=16, seed=0):
  rng = np.random.default_rng(seed)
  x = rng.normal(size=(n, 28, 28, 1)).astype(np.float32)
  y = rng.integers(0, 10, n).astype(np.int32)
  return x, y


def _np_loss_acc(logits, y):
  logits = np.asarray(logits, np.float64)
  z = logits - logits.max(-1, keepdims=True)
  logp = z - np.log(np.exp(z).sum(-1, keepdims=True))
  losses = -logp[np.arange(len(y)), y]
  return losses, (logits.argmax(-1) == y).astype(np.float64)


def test_eval_step_matches_numpy_with_mask():
  graphdef, params, rest = functional.init("cnn_tiny", num_classes=10, seed=0)
  x, y = _batch()
  mask = np.arange(16) < 11
  sums = jax.jit(step_lib.make_eval_step(graphdef))(params, rest, x, y, mask)
  logits, _ = functional.apply(graphdef, params, rest, x)
  losses, correct = _np_loss_acc(logits, y)
  np.testing.assert_allclose(sums["loss_sum"], losses[:11].sum(), rtol=1e-5)
  np.testing.assert_allclose(sums["correct"], correct[:11].sum())
  assert float(sums["count"]) == 11


def test_train_step_is_sgd_on_the_cross_entropy():
  graphdef, params, rest = functional.init(
    "cnn_tiny", num_classes=10, seed=1, dropout1=0.0, dropout2=0.0
  )
  x, y = _batch()
  lr = 0.1
  tx = optim.make_optimizer("sgd", learning_rate=lr)
  step = jax.jit(step_lib.make_train_step(graphdef, tx))
  new, _, _, metrics = step(params, rest, tx.init(params), x, y, jax.random.key(0))
  logits, _ = functional.apply(graphdef, params, rest, x)
  losses, correct = _np_loss_acc(logits, y)
  np.testing.assert_allclose(metrics["loss"], losses.mean(), rtol=1e-5)
  np.testing.assert_allclose(metrics["accuracy"], correct.mean())
  # Gradient of the mean cross-entropy w.r.t. the logits bias: mean(softmax - onehot).
  p = np.exp(np.asarray(logits, np.float64))
  p /= p.sum(-1, keepdims=True)
  p[np.arange(16), y] -= 1
  want_bias = np.asarray(params["head"]["logits"]["bias"]) - lr * p.mean(0)
  np.testing.assert_allclose(new["head"]["logits"]["bias"], want_bias, rtol=1e-5, atol=1e-7)


def test_over_seeds_vmap_and_map_equal_a_python_loop():
  seeds = [0, 1]
  graphdef, params, rest = functional.init_stacked("cnn_tiny", num_classes=10, seeds=seeds)
  tx = optim.make_optimizer("adam", learning_rate=1e-3)
  opt = jax.vmap(tx.init)(params)
  xs = np.stack([_batch(8, s)[0] for s in seeds])
  ys = np.stack([_batch(8, s)[1] for s in seeds])
  keys = jax.vmap(jax.random.key)(jnp.arange(2))
  one = step_lib.make_train_step(graphdef, tx)
  outs = {
    how: jax.jit(step_lib.over_seeds(one, how))(params, rest, opt, xs, ys, keys)
    for how in ("vmap", "unroll", "map")
  }
  for i in range(2):
    p_i, r_i, o_i = (jax.tree.map(lambda a, i=i: a[i], t) for t in (params, rest, opt))
    want_p, _, _, want_m = jax.jit(one)(p_i, r_i, o_i, xs[i], ys[i], keys[i])
    for how, (got_p, _, _, got_m) in outs.items():
      got_i = jax.tree.map(lambda a, i=i: a[i], got_p)
      for g, w in zip(jax.tree.leaves(got_i), jax.tree.leaves(want_p), strict=True):
        np.testing.assert_allclose(g, w, rtol=1e-5, atol=1e-6, err_msg=how)
      np.testing.assert_allclose(got_m["loss"][i], want_m["loss"], rtol=1e-5)

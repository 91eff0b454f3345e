"""Optimisers from plain args, checked against NumPy re-implementations of the update rules."""

import jax.numpy as jnp
import numpy as np
import optax
import pytest

from jtransfer.train import optim


def _run(tx, grads):
  params = {"w": jnp.zeros(3, jnp.float32)}
  state = tx.init(params)
  out = []
  for g in grads:
    updates, state = tx.update({"w": jnp.asarray(g, jnp.float32)}, state, params)
    params = optax.apply_updates(params, updates)
    out.append(np.asarray(params["w"], np.float64))
  return out


def test_adam_matches_numpy():
  rng = np.random.default_rng(0)
  grads = rng.normal(size=(5, 3))
  got = _run(optim.make_optimizer("adam", learning_rate=1e-3), grads)
  # Kingma & Ba, algorithm 1, in float64.
  w, m, v = np.zeros(3), np.zeros(3), np.zeros(3)
  for t, g in enumerate(grads, start=1):
    m = 0.9 * m + 0.1 * g
    v = 0.999 * v + 0.001 * g * g
    w = w - 1e-3 * (m / (1 - 0.9**t)) / (np.sqrt(v / (1 - 0.999**t)) + 1e-8)
    np.testing.assert_allclose(got[t - 1], w, rtol=1e-5, atol=1e-9)


def test_sgd_momentum_step_decay_matches_numpy():
  # lr 0.01 x 0.1 every 2 epochs of 3 steps: the rate drops after steps 6 and 12.
  tx = optim.make_optimizer(
    "sgd",
    learning_rate=0.01,
    momentum=0.9,
    decay_every_epochs=2,
    decay_factor=0.1,
    steps_per_epoch=3,
  )
  grads = np.ones((14, 3))
  got = _run(tx, grads)
  w, buf = np.zeros(3), np.zeros(3)
  for t, g in enumerate(grads):
    lr = 0.01 * 0.1 ** (t // 6)
    buf = 0.9 * buf + g  # optax.trace: heavy ball, lr applied after
    w = w - lr * buf
    np.testing.assert_allclose(got[t], w, rtol=1e-5)


def test_bad_arguments():
  with pytest.raises(ValueError, match=r"unknown optimizer .adamw_typo.; valid names: .*adam.*sgd"):
    optim.make_optimizer("adamw_typo", learning_rate=1e-3)
  with pytest.raises(ValueError, match="steps_per_epoch"):
    optim.make_optimizer("sgd", learning_rate=0.1, decay_every_epochs=20)
  with pytest.raises(ValueError, match="learning_rate"):
    optim.make_optimizer("adam", learning_rate=0.0)

"""SFDA's saturation certificate (N − 1 < D): when it holds, the two eigendecompositions are
skipped and the score is 1; the tests check that the full two-pass computation gives 1 there
(float64 and float32), that the certificate does not hold where the posterior is informative,
and that the score equals the float64 NumPy reference either way."""

import importlib

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from scores_sfda_test import sfda_reference

import jtransfer.scores as scores
from jtransfer.scores.shared import Shared

sfda_module = importlib.import_module("jtransfer.scores.sfda")


def _relu(n, d, c, seed, scale=1.0, sep=0.7):
  rng = np.random.default_rng(seed)
  y = np.arange(n) % c
  x = np.maximum(rng.normal(size=(n, d)) + sep * rng.normal(size=(c, d))[y], 0)
  return scale * x, y, c


def _certificate_and_full(x, y, c):
  """(certified, the full two-pass value) for one probe, as the kernel computes them."""

  def fn(f, labels):
    shared = Shared(f, labels, c)
    coords = sfda_module.coordinates(shared)
    means, resid, trace = sfda_module._class_stats(coords, shared)
    top = jnp.max(jnp.sum(resid * resid, axis=0)) / shared.n
    upper = jnp.maximum(jnp.exp(-5 * top * shared.scale**2), 1e-10)
    certified = sfda_module._saturated(coords, means, resid, trace, upper, shared)
    means, omega, e, _ = sfda_module._scatter(coords, shared)
    shrinkage = jnp.maximum(jnp.exp(-5 * omega[-1] * shared.scale**2), 1e-10)
    full = sfda_module._two_passes(coords, means, omega, e, trace, shrinkage, shared)
    return certified, full

  certified, full = jax.jit(fn)(jnp.asarray(x), jnp.asarray(y, jnp.int32))
  return bool(certified), float(full)


SATURATED = {
  "relu": lambda: _relu(120, 300, 6, 0),
  "relu_wide": lambda: _relu(200, 1024, 10, 1),
  "relu_large_offset": lambda: (lambda x, y, c: (x + 1e3, y, c))(*_relu(90, 200, 3, 2)),
}
INFORMATIVE = {
  "small_weak": lambda: _relu(120, 300, 6, 1, scale=0.02, sep=0.03),
  "small": lambda: _relu(60, 100, 4, 3, scale=0.01, sep=0.2),
}


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("case", sorted(SATURATED))
def test_certified_where_the_full_computation_gives_one(x64, case, dtype):
  x, y, c = SATURATED[case]()
  certified, full = _certificate_and_full(x.astype(dtype), y, c)
  assert certified
  assert full == 1.0
  assert float(scores.sfda(x.astype(dtype), y, num_classes=c)) == 1.0
  assert sfda_reference(x, y, c) == pytest.approx(1.0, abs=1e-12)


@pytest.mark.parametrize("case", sorted(INFORMATIVE))
def test_not_certified_where_the_posterior_is_informative(x64, case):
  x, y, c = INFORMATIVE[case]()
  certified, full = _certificate_and_full(x, y, c)
  want = sfda_reference(x, y, c)
  assert want < 0.99
  assert not certified
  np.testing.assert_allclose(full, want, rtol=1e-9)
  np.testing.assert_allclose(float(scores.sfda(x, y, num_classes=c)), want, rtol=1e-9)


def test_power_option_also_takes_the_certificate(x64):
  x, y, c = SATURATED["relu"]()
  assert float(scores.sfda(x, y, num_classes=c, largest_eigenvalue="power")) == 1.0
  x, y, c = INFORMATIVE["small"]()
  want = sfda_reference(x, y, c, power=True)
  got = scores.sfda(x, y, num_classes=c, largest_eigenvalue="power")
  np.testing.assert_allclose(float(got), want, rtol=1e-9)


def test_batched_takes_both_branches(x64):
  # vmapped, the cond becomes a select: both branches computed, each model's value kept.
  x1, y, c = SATURATED["relu"]()
  x2 = x1 * 0.0004 + np.random.default_rng(7).normal(size=x1.shape) * 0.004
  batched = scores.compute_batched(np.stack([x1, x2]), y, num_classes=c, names=["sfda"],
                                   chunk_size=2)["sfda"]  # fmt: skip
  np.testing.assert_allclose(batched[0], 1.0, rtol=0)
  np.testing.assert_allclose(batched[1], sfda_reference(x2, y, c), rtol=1e-9)
  assert batched[1] < 0.99

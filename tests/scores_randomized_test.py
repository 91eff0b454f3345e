"""The randomized route (many samples and many features): chosen only for scores it serves, its
values against the exact Gram route per score within a stated tolerance, and the refusal of the
scores that need the full spectrum."""

import importlib

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import jtransfer.scores as scores
from jtransfer.scores import registry
from jtransfer.scores import shared as shared_lib
from jtransfer.scores.shared import Shared

compute_lib = importlib.import_module("jtransfer.scores.compute")
SERVED = [
  n for n, s in registry.REGISTRY.items() if s.needs_features and s.by_default and s.randomized
]  # fmt: skip
# Relative tolerance of each served score on the randomized route against the exact route (the
# PCA-based scores read the top eigenpairs of the range finder; every other served score reads
# no eigendecomposition and is exact). Measured worst on the probes below, with margin.
RANDOMIZED_RTOL = {"gbc": 5e-3, "parc": 2e-3, "ncti_seli": 1e-3, "ncti_ncc": 1e-4, "ncti_vc": 1e-4}
EXACT_RTOL = 1e-9


def _probe(n, d, c, seed, sep=0.7, decay=False):
  """Post-ReLU features with class structure; `decay`: a decaying spectrum (random mixing with
  column scales 1/√j), as real networks' features have."""
  rng = np.random.default_rng(seed)
  y = np.arange(n) % c
  pre = rng.normal(size=(n, d))
  if decay:
    pre = (pre / np.sqrt(np.arange(1, d + 1))) @ rng.normal(size=(d, d)) / np.sqrt(d) * 6
  x = np.maximum(pre + sep * rng.normal(size=(c, d))[y] + 0.3, 0)
  return x, y.astype(np.int32)


def _kernels(x, y, c, route, names=SERVED):
  fn = lambda f, labels: {
    nm: registry.REGISTRY[nm].kernel(Shared(f, labels, c, route)) for nm in names
  }  # fmt: skip
  return {k: float(v) for k, v in jax.jit(fn)(jnp.asarray(x), jnp.asarray(y)).items()}


def test_route_is_randomized_only_for_served_scores():
  n = shared_lib.RANDOMIZED_MIN_N
  d = n  # D > N / COVARIANCE_RATIO: the covariance route does not apply
  assert scores.route(n, d) == "gram"  # every default score: LogME etc. need the full spectrum
  assert scores.route(n, d, SERVED) == "randomized"
  assert scores.route(n, d, ["gbc", "logme"]) == "gram"
  assert scores.route(n - 1, d, SERVED) == "gram"
  assert scores.route(4 * n, 2 * n, SERVED) == "covariance"
  too_many = {"gbc": {"pca_dim": shared_lib.RANDOMIZED_RANK + 1}}
  assert scores.route(n, d, ["gbc"], too_many) == "gram"
  assert scores.route(n, d, ["etran_lda"], {"etran_lda": {"covariance": "shrunk"}}) == "gram"
  assert scores.route(n, d, ["etran_lda", "leep"]) == "randomized"


@pytest.mark.parametrize("decay", [False, True])
def test_served_scores_match_the_exact_route_float64(x64, decay):
  x, y = _probe(700, 1200, 10, seed=1, sep=0.25, decay=decay)
  got = _kernels(x, y, 10, "randomized")
  want = _kernels(x, y, 10, "gram")
  for name in SERVED:
    rtol = RANDOMIZED_RTOL.get(name, EXACT_RTOL)
    np.testing.assert_allclose(got[name], want[name], rtol=rtol, atol=1e-12, err_msg=name)
  assert abs(want["gbc"]) > 1e-4  # informative: not every class pair apart


def test_float32_randomized_against_float64_exact():
  x, y = _probe(600, 900, 8, seed=2, sep=0.3)
  got = _kernels(x.astype(np.float32), y, 8, "randomized")
  previous = jax.config.jax_enable_x64
  jax.config.update("jax_enable_x64", True)
  try:
    want = _kernels(x.astype(np.float32).astype(np.float64), y, 8, "gram")
  finally:
    jax.config.update("jax_enable_x64", previous)
  for name in SERVED:
    rtol = max(RANDOMIZED_RTOL.get(name, 0), 5e-5)
    np.testing.assert_allclose(got[name], want[name], rtol=rtol, atol=1e-6, err_msg=name)


def test_full_spectrum_scores_refuse_the_randomized_route():
  x, y = _probe(60, 80, 3, seed=3)
  shared = Shared(jnp.asarray(x, jnp.float32), jnp.asarray(y), 3, "randomized")
  with pytest.raises(ValueError, match="needs the full spectrum") as info:
    registry.REGISTRY["logme"].kernel(shared)
  assert "\n" not in str(info.value)
  with pytest.raises(ValueError, match="has 64 eigenpairs, 65 asked for"):
    shared.top_eigh(65)


def test_compute_takes_the_route_and_falls_back(monkeypatch):
  """With the threshold lowered, `compute` takes the randomized route for served scores (equal
  to the randomized kernels) and the Gram route as soon as one unserved score is asked for."""
  monkeypatch.setattr(shared_lib, "RANDOMIZED_MIN_N", 500)
  compute_lib._jitted_single.cache_clear()
  try:
    x, y = _probe(520, 700, 5, seed=4, sep=0.3)
    x = x.astype(np.float32)
    names = ["gbc", "parc", "two_nn"]
    assert scores.route(520, 700, names) == "randomized"
    got = scores.compute(x, y, num_classes=5, names=names)
    want = _kernels(x, y, 5, "randomized", names)
    for name in names:
      # atol: GBC is -1.8e-4 here, a sum whose jitted fusion moves it by 4e-10.
      np.testing.assert_allclose(float(got[name]), want[name], rtol=1e-6, atol=1e-8, err_msg=name)
    mixed = scores.compute(x, y, num_classes=5, names=[*names, "logme"])
    exact = _kernels(x, y, 5, "gram", [*names, "logme"])
    for name in [*names, "logme"]:
      np.testing.assert_allclose(
        float(mixed[name]), exact[name], rtol=1e-6, atol=1e-8, err_msg=name
      )
  finally:
    compute_lib._jitted_single.cache_clear()

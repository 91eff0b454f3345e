"""PACTran-Gaussian against a float64 NumPy/SciPy transcription of the reference objective (the
D-dimensional MAP softmax head fitted by SciPy's L-BFGS-B, run to convergence; the summed
Hessian diagonal; the complexity term), the published optimiser settings' shortfall, the
fixed-iteration Newton fit against SciPy's optimum, batched = one by one, float32 under offsets
and scales, bad inputs, x64 on and off."""

import importlib

import jax
import jax.numpy as jnp
import numpy as np
import pytest
import scipy.optimize
import scipy.special

import jtransfer.scores as scores
from jtransfer.scores.shared import Shared

pactran_module = importlib.import_module("jtransfer.scores.pactran")  # the package binds the fn


def _objective(x, y, c, lda_factor):
  x = np.asarray(x, np.float64)
  x = x - x.mean(axis=0)  # on a copy: the reference centres its argument in place
  n, d = x.shape
  onehot = np.eye(c)[y]
  prior = lda_factor * n

  def loss(theta):
    t = theta.reshape(d + 1, c)
    logits = x @ t[:d] + t[d:]
    log_q = logits - scipy.special.logsumexp(logits, axis=1, keepdims=True)
    return -(onehot * log_q).sum() / n + 0.5 * (t[:d] ** 2).sum() / prior

  def grad(theta):
    t = theta.reshape(d + 1, c)
    r = (scipy.special.softmax(x @ t[:d] + t[d:], axis=1) - onehot) / n
    return np.concatenate([x.T @ r + t[:d] / prior, r.sum(axis=0, keepdims=True)]).ravel()

  return x, loss, grad


def pactran_reference(x, y, c, lda_factor=1.0, s2_factor=100.0, published=None):
  """(value, loss at the fit): L-BFGS-B to convergence from 0, or with `published` = maxiter
  the reference's settings (tol 1e-6, start N(0, 1)·0.03 from a fixed seed)."""
  x, loss, grad = _objective(x, y, c, lda_factor)
  n, d = x.shape
  prior = lda_factor * n
  if published is None:
    start = np.zeros((d + 1) * c)
    kw = dict(options=dict(maxiter=20000, maxcor=30, ftol=1e-16, gtol=1e-12))
  else:
    w0 = np.random.default_rng(0).normal(size=(d, c)) * 0.03
    start = np.concatenate([w0, np.zeros((1, c))]).ravel()
    kw = dict(options=dict(maxiter=published), tol=1e-6)
  theta = scipy.optimize.minimize(loss, start, jac=grad, method="L-BFGS-B", **kw).x
  t = theta.reshape(d + 1, c)
  p = scipy.special.softmax(x @ t[:d] + t[d:], axis=1)
  q = p - p * p
  h = np.concatenate([(x * x).T @ q + 1 / prior, q.sum(axis=0, keepdims=True)])
  kd = d * c
  sigma2_inv = h.sum() * prior / kd + 1e-10
  value = loss(theta) + 0.5 * kd / prior * (s2_factor / d) * np.log(sigma2_inv)
  return value, loss(theta)


def _build(n, d, c, sep, noise, seed, counts=None, offset=3.0):
  rng = np.random.default_rng(seed)
  y = np.arange(n) % c if counts is None else np.repeat(np.arange(c), counts)
  x = sep * rng.normal(size=(c, d))[y] + noise * rng.normal(size=(n, d)) * rng.uniform(0.5, 1.5, d)
  return x + offset, y, c


CASES = {
  "n_gt_d": lambda: _build(120, 30, 4, 1.0, 1.0, 0),
  "n_lt_d": lambda: _build(60, 200, 5, 2.0, 1.0, 4),
  "pair_class": lambda: _build(60, 20, 3, 1.0, 1.0, 2, counts=[2, 29, 29]),
  "large": lambda: _build(100, 400, 5, 5.0, 5.0, 1),  # separable, weakly regularised
}


@pytest.mark.parametrize("case", sorted(CASES))
def test_matches_numpy_reference(x64, case):
  x, y, c = CASES[case]()
  want, _ = pactran_reference(x, y, c)
  np.testing.assert_allclose(float(scores.pactran(x, y, num_classes=c)), want, rtol=1e-4)


@pytest.mark.parametrize("lda_factor,s2_factor", [(10.0, 1000.0), (0.1, 1.0), (1.0, 10.0)])
def test_the_reference_grid(x64, lda_factor, s2_factor):
  x, y, c = CASES["n_gt_d"]()
  want, _ = pactran_reference(x, y, c, lda_factor, s2_factor)
  got = scores.pactran(x, y, num_classes=c, lda_factor=lda_factor, s2_factor=s2_factor)
  np.testing.assert_allclose(float(got), want, rtol=1e-4)


@pytest.mark.parametrize("case", sorted(CASES))
def test_the_newton_fit_reaches_scipys_optimum(x64, case):
  x, y, c = CASES[case]()
  _, want = pactran_reference(x, y, c)
  shared = Shared(jnp.asarray(x), jnp.asarray(y, jnp.int32), c)
  coords = pactran_module.pca_coordinates(shared)
  inv_prior = 1 / (len(y) * shared.scale**2)
  a, _, logits = pactran_module.fit_head(coords, shared.onehot, inv_prior)
  onehot = np.eye(c)[y]
  xent = -(onehot * jax.nn.log_softmax(logits, axis=1)).sum() / len(y)
  got = float(xent + 0.5 * inv_prior * jnp.sum(a * a))
  assert got <= want * (1 + 1e-9)  # at least as low as SciPy's minimum ...
  np.testing.assert_allclose(got, want, rtol=1e-7)  # ... and equal to it


def test_the_published_settings_stop_short(x64):
  # maxiter = 100 (google-research) or 10 (ETran's copy), tol 1e-6, random start: the fit is
  # above the minimum and the value moves by more than the 1e-4 the tests allow.
  x, y, c = CASES["large"]()
  want, best = pactran_reference(x, y, c)
  for maxiter, at_least in ((100, 1e-4), (10, 1e-2)):
    value, loss = pactran_reference(x, y, c, published=maxiter)
    assert loss > best
    assert abs(value - want) > at_least * abs(want), (maxiter, value, want)


def test_input_is_not_modified(x64):
  x, y, c = CASES["n_gt_d"]()
  before = x.copy()
  scores.pactran(x, y, num_classes=c)
  np.testing.assert_array_equal(x, before)


def test_invariant_to_shift_not_to_scale(x64):
  x, y, c = CASES["n_gt_d"]()
  base = float(scores.pactran(x, y, num_classes=c))
  np.testing.assert_allclose(float(scores.pactran(x - 40, y, num_classes=c)), base, rtol=1e-9)
  assert abs(float(scores.pactran(x * 4, y, num_classes=c)) - base) > 0.01 * base


def test_batched_equals_one_by_one(x64):
  rng = np.random.default_rng(5)
  x, y, c = CASES["pair_class"]()
  models = np.stack([x, x + rng.normal(size=x.shape), x[:, ::-1] * 2.0])
  batched = scores.compute_batched(models, y, num_classes=c, names=["pactran"], chunk_size=2)
  for i, m in enumerate(models):
    np.testing.assert_allclose(batched["pactran"][i], float(scores.pactran(m, y, num_classes=c)),
                               rtol=1e-9)  # fmt: skip


@pytest.mark.parametrize("scale", [1e-3, 1.0, 1e3])
@pytest.mark.parametrize("case", sorted(CASES))
def test_float32_with_large_offset_and_scale_equals_float64(case, scale):
  x, y, c = CASES[case]()
  low = ((x - 3.0 + 1e3) * scale).astype(np.float32)  # features + 1e3, rescaled
  got = scores.pactran(low, y, num_classes=c)
  assert np.asarray(got).dtype == np.float32
  np.testing.assert_allclose(float(got), pactran_reference(low, y, c)[0], rtol=1e-3)


def test_x64_on_and_off(x64):
  x, y, c = CASES["pair_class"]()
  want, _ = pactran_reference(x, y, c)
  on64 = scores.pactran(x, y, num_classes=c)
  on32 = scores.pactran(x.astype(np.float32), y, num_classes=c)
  assert np.asarray(on64).dtype == np.float64 and np.asarray(on32).dtype == np.float32
  np.testing.assert_allclose(float(on64), want, rtol=1e-7)
  np.testing.assert_allclose(float(on32), want, rtol=1e-4)
  jax.config.update("jax_enable_x64", False)  # the fixture restores the setting
  off = scores.pactran(x, y, num_classes=c)
  assert np.asarray(off).dtype == np.float32
  np.testing.assert_allclose(float(off), want, rtol=1e-4)


def _one_line_error(call, message):
  with pytest.raises(ValueError, match=message) as info:
    call()
  assert "\n" not in str(info.value)


def test_bad_inputs_raise_one_line_errors():
  x, y, c = CASES["pair_class"]()
  nan = x.copy()
  nan[3, 1] = np.nan
  _one_line_error(lambda: scores.pactran(nan, y, num_classes=c), "features contain NaN")
  _one_line_error(lambda: scores.pactran(x, np.where(y == 2, 3, y), num_classes=c),
                  "out of range")  # fmt: skip
  bad_prior = r"pactran option lda_factor must be a finite number in \(0, ∞\), got 0.0"
  _one_line_error(lambda: scores.pactran(x, y, num_classes=c, lda_factor=0.0), bad_prior)
  _one_line_error(lambda: scores.pactran(x, y, num_classes=c, s2_factor=-1.0),
                  "pactran option s2_factor must be a finite number")  # fmt: skip


def test_documented_constants():
  m = pactran_module
  assert (m.LDA_FACTOR, m.S2_FACTOR) == (1.0, 100.0)
  assert (m.NEWTON_STEPS, m.CG_STEPS, m.LINE_STEPS, m.LINE_UP) == (50, 50, 40, 10)

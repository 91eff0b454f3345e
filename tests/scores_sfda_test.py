"""SFDA against a float64 NumPy transcription of the reference algorithm (D×D covariances, the
generalised eigenproblem, the in-place ConfMix done on a copy), batched = one by one, float32
under offsets and scales, bad inputs, x64 on and off, and the documented pitfalls."""

import jax
import numpy as np
import pytest
import scipy.linalg

import jtransfer.scores as scores


def _softmax(a):
  a = a - a.max(axis=1, keepdims=True)
  e = np.exp(a)
  return e / e.sum(axis=1, keepdims=True)


def _power_top(a):
  """The reference's 3-round power estimate of the largest eigenvalue, started at A·1."""
  x = a.sum(axis=1)
  for _ in range(3):
    t = a @ x
    y = t / np.linalg.norm(t)
    t = a @ y
    x = t / np.linalg.norm(t)
  return x @ a @ y


def _within(x, y, c):
  n = len(y)
  priors = np.bincount(y, minlength=c) / n
  means = np.stack([x[y == k].mean(axis=0) for k in range(c)])
  sw = sum(priors[k] * np.atleast_2d(np.cov(x[y == k].T, bias=True)) for k in range(c))
  return priors, means, sw


def _shrunk(s, lam):
  d = s.shape[0]
  out = (1 - lam) * s
  out[np.diag_indices(d)] += lam * np.trace(s) / d
  return out


def _lda_proba(x, y, c, lam):
  """predict_proba of the reference's SFDA class: generalised eigh of (S_B, shrunk S_W), all
  eigenvectors, coef = M V Vᵀ, intercept −½ diag(M coefᵀ) + log π."""
  priors, means, sw = _within(x, y, c)
  b = _shrunk(sw, lam)
  sb = _shrunk(np.atleast_2d(np.cov(x.T, bias=True)), lam) - b
  w, v = scipy.linalg.eigh(sb, b)
  v = v[:, np.argsort(w)[::-1]]
  coef = means @ v @ v.T
  intercept = -0.5 * np.diag(means @ coef.T) + np.log(priors)
  return _softmax(x @ coef.T + intercept), means


def sfda_reference(x, y, c, power=False):
  x = np.array(x, np.float64)  # a copy: the reference mixes into its argument
  n = len(y)
  _, _, sw = _within(x, y, c)
  top = _power_top(sw) if power else np.linalg.eigvalsh(sw).max()
  lam = max(np.exp(-5 * top), 1e-10)
  probs, means = _lda_proba(x, y, c, lam)
  q = _softmax(probs)[np.arange(n), y][:, None]
  outer = (means.sum(axis=0) - means) / (c - 1)
  x = q * x + (1 - q) * outer[y]
  probs, _ = _lda_proba(x, y, c, lam)
  return probs[np.arange(n), y].mean()


def _build(n, d, c, sep, noise, seed, offset=3.0, counts=None):
  rng = np.random.default_rng(seed)
  y = np.arange(n) % c if counts is None else np.repeat(np.arange(c), counts)
  x = sep * rng.normal(size=(c, d))[y] + noise * rng.normal(size=(n, d)) * rng.uniform(0.5, 1.5, d)
  return x + offset, y, c


CASES = {
  "n_gt_d": lambda: _build(60, 12, 4, 0.3, 0.15, 0),
  "n_lt_d": lambda: _build(30, 50, 3, 0.02, 0.1, 1),
  "pair_class": lambda: _build(40, 8, 3, 0.3, 0.3, 2, counts=[2, 19, 19]),
  "moderate_shrinkage": lambda: _build(80, 10, 5, 0.4, 0.35, 3),
}


@pytest.mark.parametrize("largest", ["exact", "power"])
@pytest.mark.parametrize("case", sorted(CASES))
def test_matches_numpy_reference(x64, case, largest):
  x, y, c = CASES[case]()
  want = sfda_reference(x, y, c, power=largest == "power")
  assert 0.5 < want < 0.999, want  # informative: neither saturated nor chance
  got = scores.sfda(x, y, num_classes=c, largest_eigenvalue=largest)
  np.testing.assert_allclose(float(got), want, rtol=1e-4)


def test_saturates_to_one_when_n_minus_c_lt_d_and_features_are_large(x64):
  # λ = exp(−5 σ_max) hits its floor 1e-10 for features of unit scale; with N − C < D the class
  # means differ along directions with no within-class scatter: a one-hot posterior, score 1.
  x, y, c = _build(30, 50, 3, 1.0, 1.0, 4)
  assert sfda_reference(x, y, c) == pytest.approx(1.0, abs=1e-12)
  assert float(scores.sfda(x, y, num_classes=c)) == pytest.approx(1.0, abs=1e-12)


def test_input_is_not_modified_and_a_second_call_agrees(x64):
  x, y, c = CASES["n_gt_d"]()
  keep = x.copy()
  first = float(scores.sfda(x, y, num_classes=c))
  np.testing.assert_array_equal(x, keep)
  assert float(scores.sfda(x, y, num_classes=c)) == first


def test_power_estimate_differs_from_exact_where_the_spectrum_is_flat(x64):
  # Isotropic within-class noise: the top eigenvalues of S_W are close, three power rounds stop
  # short of σ_max, λ differs; both follow their definitions (the test above), values differ.
  x, y, c = CASES["moderate_shrinkage"]()
  exact = float(scores.sfda(x, y, num_classes=c))
  power = float(scores.sfda(x, y, num_classes=c, largest_eigenvalue="power"))
  assert exact != power


def test_batched_equals_one_by_one(x64):
  rng = np.random.default_rng(5)
  x, y, c = CASES["n_gt_d"]()
  models = np.stack([x, x * 0.7 + rng.normal(size=x.shape) * 0.05, x[:, ::-1] + 1.0])
  batched = scores.compute_batched(models, y, num_classes=c, names=["sfda"])["sfda"]
  for i, m in enumerate(models):
    np.testing.assert_allclose(batched[i], float(scores.sfda(m, y, num_classes=c)), rtol=1e-9)
  x2, y2, c2 = CASES["n_lt_d"]()
  models = np.stack([x2, x2 * 1.3 - 2.0])
  batched = scores.compute_batched(models, y2, num_classes=c2, names=["sfda"], chunk_size=2)
  for i, m in enumerate(models):
    np.testing.assert_allclose(batched["sfda"][i], float(scores.sfda(m, y2, num_classes=c2)),
                               rtol=1e-9)  # fmt: skip


@pytest.mark.parametrize("scale", [0.5, 1.0, 3.0])
@pytest.mark.parametrize("case", sorted(CASES))
def test_float32_with_large_offset_and_scale_equals_float64(case, scale):
  x, y, c = CASES[case]()
  low = ((x - 3.0) * scale + 1e3).astype(np.float32)  # features + 1e3, rescaled
  got = scores.sfda(low, y, num_classes=c)
  assert np.asarray(got).dtype == np.float32
  want = sfda_reference(low.astype(np.float64), y, c)
  np.testing.assert_allclose(float(got), want, rtol=1e-3)


def test_x64_on_and_off(x64):
  x, y, c = CASES["pair_class"]()
  want = sfda_reference(x, y, c)
  on64 = scores.sfda(x, y, num_classes=c)
  on32 = scores.sfda(x.astype(np.float32), y, num_classes=c)
  assert np.asarray(on64).dtype == np.float64 and np.asarray(on32).dtype == np.float32
  np.testing.assert_allclose(float(on64), want, rtol=1e-9)
  np.testing.assert_allclose(float(on32), want, rtol=1e-4)
  jax.config.update("jax_enable_x64", False)  # the fixture restores the setting
  off = scores.sfda(x, y, num_classes=c)
  assert np.asarray(off).dtype == np.float32
  np.testing.assert_allclose(float(off), want, rtol=1e-4)


def _one_line_error(call, message):
  with pytest.raises(ValueError, match=message) as info:
    call()
  assert "\n" not in str(info.value)


def test_bad_inputs_raise_one_line_errors():
  x, y, c = CASES["n_gt_d"]()
  nan = x.copy()
  nan[3, 1] = np.nan
  _one_line_error(lambda: scores.sfda(nan, y, num_classes=c), "features contain NaN")
  _one_line_error(lambda: scores.sfda(x, np.where(y == 3, 4, y), num_classes=c), "out of range")
  _one_line_error(lambda: scores.sfda(x, y, num_classes=c, largest_eigenvalue="lanczos"),
                  "unknown sfda option largest_eigenvalue='lanczos'")  # fmt: skip
  # Every sample equal to its class mean: no within-class scatter, B = 0.
  means = np.random.default_rng(0).normal(size=(c, 12))
  _one_line_error(lambda: scores.sfda(means[y], y, num_classes=c), "zero within-class scatter")

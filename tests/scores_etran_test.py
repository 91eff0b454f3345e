"""ETran's two terms against float64 NumPy/SciPy transcriptions of the reference (the energy's
logsumexp and 'bot' tail with the reference's integer count; class `LDA` written out: shrunk
scatters, eigh of inv(S_W) S_B, coef = M V Vᵀ, softmax), the identity-covariance posterior that
amounts to, the intended shrunk LDA, the published pool combination (tw.py), batched = one by
one, float32 under offsets and scales, bad inputs, x64 on and off."""

import jax
import numpy as np
import pytest
import scipy.special

import jtransfer.scores as scores
from jtransfer.scores import etran as etran_module


def energy_reference(x, percent=0.5, at_least_one=False):
  """Energy_Score(x, percent, 'bot'): the mean of the lowest int(percent·10)·N // 1000 values
  (`at_least_one`: of max(1, that), jtransfer's count)."""
  lse = scipy.special.logsumexp(np.asarray(x, np.float64), axis=1)
  k = int(percent * 10) * len(lse) // 1000
  k = max(k, 1) if at_least_one else k
  return np.sort(lse)[:k].mean() if k else np.nan  # the mean of nothing: NaN


def _power_top(a):
  x = a.sum(axis=1)
  for _ in range(3):
    t = a @ x
    y = t / np.linalg.norm(t)
    t = a @ y
    x = t / np.linalg.norm(t)
  return x @ a @ y


def _shrunk(s, lam):
  d = s.shape[0]
  out = (1 - lam) * s
  out[np.diag_indices(d)] += lam * np.trace(s) / d
  return out


def _scatter(x, y, c):
  priors = np.bincount(y, minlength=c) / len(y)
  means = np.stack([x[y == k].mean(axis=0) for k in range(c)])
  sw = sum(priors[k] * np.atleast_2d(np.cov(x[y == k].T, bias=True)) for k in range(c))
  return priors, means, sw


def lda_released_reference(x, y, c):
  """LDA_Score as released: the class `LDA` pipeline step by step."""
  x = np.asarray(x, np.float64)
  priors, means, sw = _scatter(x, y, c)
  lam = max(np.exp(-5 * _power_top(sw)), 1e-10)
  st = _shrunk(np.atleast_2d(np.cov(x.T, bias=True)), lam)
  sw = _shrunk(sw, lam)
  w, v = np.linalg.eigh(np.linalg.inv(sw) @ (st - sw))  # reads the lower triangle only
  v = v[:, np.argsort(w)[::-1]]
  coef = means @ v @ v.T
  intercept = -0.5 * np.diag(means @ coef.T) + np.log(priors)
  probs = scipy.special.softmax(x @ coef.T + intercept, axis=1)
  return probs[np.arange(len(y)), y].mean()


def lda_identity_reference(x, y, c):
  """What the released pipeline amounts to (V Vᵀ = I): the identity-covariance posterior."""
  x = np.asarray(x, np.float64)
  priors, means, _ = _scatter(x, y, c)
  dist = ((x[:, None, :] - means[None]) ** 2).sum(axis=-1)
  probs = scipy.special.softmax(-0.5 * dist + np.log(priors), axis=1)
  return probs[np.arange(len(y)), y].mean()


def lda_shrunk_reference(x, y, c):
  """The LDA the code sets out to compute: B = shrunk S_W (exact σ_max), p ∝ π N(x; μ_c, B)."""
  x = np.asarray(x, np.float64)
  priors, means, sw = _scatter(x, y, c)
  lam = max(np.exp(-5 * np.linalg.eigvalsh(sw).max()), 1e-10)
  b = _shrunk(sw, lam)
  diff = x[:, None, :] - means[None]
  maha = np.einsum("ncd,de,nce->nc", diff, np.linalg.inv(b), diff)
  probs = scipy.special.softmax(-0.5 * maha + np.log(priors), axis=1)
  return probs[np.arange(len(y)), y].mean()


def reference_pool(energy, lda):
  """tw.py, metric 'etran': scale() each term over the models, 0.15 energy + 0.85 lda."""
  scale = lambda v: (np.asarray(v) - np.min(v)) / (np.max(v) - np.min(v))  # noqa: E731
  return scale(energy) * 0.15 + scale(lda) * 0.85


def _build(n, d, c, sep, noise, seed, counts=None, offset=2.0):
  rng = np.random.default_rng(seed)
  y = np.arange(n) % c if counts is None else np.repeat(np.arange(c), counts)
  x = sep * rng.normal(size=(c, d))[y] + noise * rng.normal(size=(n, d))
  return x + offset, y, c


CASES = {
  "n_gt_d": lambda: _build(400, 20, 4, 0.3, 0.5, 0),
  "n_lt_d": lambda: _build(60, 150, 3, 0.1, 0.15, 1),
  "pair_class": lambda: _build(300, 30, 3, 0.25, 0.4, 2, counts=[2, 149, 149]),
}


@pytest.mark.parametrize("case", sorted(CASES))
def test_lda_matches_the_released_pipeline(x64, case):
  x, y, c = CASES[case]()
  want = lda_released_reference(x, y, c)
  assert 0.4 < want < 0.99, want  # informative: neither chance nor saturated
  np.testing.assert_allclose(lda_identity_reference(x, y, c), want, rtol=1e-9)  # V Vᵀ = I
  np.testing.assert_allclose(float(scores.etran_lda(x, y, num_classes=c)), want, rtol=1e-4)


@pytest.mark.parametrize("case", sorted(CASES))
def test_shrunk_lda_matches_numpy_reference(x64, case):
  x, y, c = CASES[case]()
  want = lda_shrunk_reference(x, y, c)
  got = float(scores.etran_lda(x, y, num_classes=c, covariance="shrunk"))
  np.testing.assert_allclose(got, want, rtol=1e-4)


@pytest.mark.parametrize("n,percent", [(400, 0.5), (1000, 0.5), (400, 100.0), (300, 2.5)])
def test_energy_matches_numpy_reference(x64, n, percent):
  x, _, _ = _build(n, 50, 4, 0.3, 1.0, 3)
  assert etran_module.energy_count(n, percent) == int(percent * 10) * n // 1000
  want = energy_reference(x, percent)
  np.testing.assert_allclose(float(scores.etran_energy(x, percent=percent)), want, rtol=1e-4)


def test_energy_of_fewer_than_200_samples_takes_the_lowest(x64):
  # 5·N // 1000 = 0 for N < 200: the reference averages nothing (NaN); jtransfer takes 1.
  x, _, _ = _build(150, 50, 4, 0.3, 1.0, 4)
  assert np.isnan(energy_reference(x))
  lse = scipy.special.logsumexp(x, axis=1)
  np.testing.assert_allclose(float(scores.etran_energy(x)), lse.min(), rtol=1e-9)


def test_pool_equals_the_reference_combination(x64):
  rng = np.random.default_rng(7)
  x, y, c = CASES["n_gt_d"]()
  pool = np.stack([x * a + rng.normal(size=x.shape) * s
                   for a, s in ((1.0, 0.0), (1.5, 0.3), (0.8, 0.6), (1.2, 1.0))])  # fmt: skip
  energy = [energy_reference(m) for m in pool]
  lda = [lda_released_reference(m, y, c) for m in pool]
  batched = scores.compute_batched(pool, y, num_classes=c, names=["etran_energy", "etran_lda"])
  got = scores.etran_pool({k: np.asarray(v) for k, v in batched.items()})
  np.testing.assert_allclose(got, reference_pool(energy, lda), rtol=1e-4, atol=1e-6)
  flat = scores.etran_pool({"etran_energy": [2.0] * 4, "etran_lda": lda})  # constant: 0
  np.testing.assert_allclose(flat, 0.85 * (np.array(lda) - min(lda)) / np.ptp(lda))


def test_lda_is_invariant_to_shift_but_not_to_scale(x64):
  x, y, c = CASES["n_gt_d"]()
  base = float(scores.etran_lda(x, y, num_classes=c))
  np.testing.assert_allclose(float(scores.etran_lda(x - 50, y, num_classes=c)), base, rtol=1e-9)
  assert abs(float(scores.etran_lda(x * 3, y, num_classes=c)) - base) > 0.05


def test_batched_equals_one_by_one(x64):
  rng = np.random.default_rng(5)
  x, y, c = CASES["pair_class"]()
  models = np.stack([x, x + rng.normal(size=x.shape) * 0.3, x[:, ::-1] * 2.0])
  names = ["etran_energy", "etran_lda"]
  batched = scores.compute_batched(models, y, num_classes=c, names=names, chunk_size=2)
  for i, m in enumerate(models):
    np.testing.assert_allclose(batched["etran_energy"][i], float(scores.etran_energy(m)),
                               rtol=1e-9)  # fmt: skip
    np.testing.assert_allclose(batched["etran_lda"][i], float(scores.etran_lda(m, y,
                               num_classes=c)), rtol=1e-9)  # fmt: skip


@pytest.mark.parametrize("scale", [0.5, 1.0, 2.0])
@pytest.mark.parametrize("case", sorted(CASES))
def test_float32_with_large_offset_and_scale_equals_float64(case, scale):
  x, y, c = CASES[case]()
  low = ((x - 2.0 + 1e3) * scale).astype(np.float32)  # features + 1e3, rescaled
  for covariance, reference in (("identity", lda_identity_reference),
                                ("shrunk", lda_shrunk_reference)):  # fmt: skip
    got = scores.etran_lda(low, y, num_classes=c, covariance=covariance)
    assert np.asarray(got).dtype == np.float32
    np.testing.assert_allclose(float(got), reference(low, y, c), rtol=1e-3, err_msg=covariance)
  got = scores.etran_energy(low)
  assert np.asarray(got).dtype == np.float32
  np.testing.assert_allclose(float(got), energy_reference(low, at_least_one=True), rtol=1e-3)


def test_x64_on_and_off(x64):
  x, y, c = CASES["pair_class"]()
  want = lda_released_reference(x, y, c)
  on64 = scores.etran_lda(x, y, num_classes=c)
  on32 = scores.etran_lda(x.astype(np.float32), y, num_classes=c)
  assert np.asarray(on64).dtype == np.float64 and np.asarray(on32).dtype == np.float32
  np.testing.assert_allclose(float(on64), want, rtol=1e-9)
  np.testing.assert_allclose(float(on32), want, rtol=1e-4)
  e32 = scores.etran_energy(x.astype(np.float32))
  assert np.asarray(e32).dtype == np.float32
  jax.config.update("jax_enable_x64", False)  # the fixture restores the setting
  off = scores.etran_lda(x, y, num_classes=c)
  assert np.asarray(off).dtype == np.float32
  np.testing.assert_allclose(float(off), want, rtol=1e-4)
  np.testing.assert_allclose(float(scores.etran_energy(x)), energy_reference(x), rtol=1e-5)  # N=300


def _one_line_error(call, message):
  with pytest.raises(ValueError, match=message) as info:
    call()
  assert "\n" not in str(info.value)


def test_bad_inputs_raise_one_line_errors():
  x, y, c = CASES["pair_class"]()
  nan = x.copy()
  nan[3, 1] = np.nan
  _one_line_error(lambda: scores.etran_energy(nan), "features contain NaN")
  _one_line_error(lambda: scores.etran_lda(x, np.where(y == 2, 3, y), num_classes=c),
                  "out of range")  # fmt: skip
  _one_line_error(lambda: scores.etran_energy(x, percent=0),
                  r"etran_energy option percent must be a finite number in \(0, 100\]")  # fmt: skip
  _one_line_error(lambda: scores.etran_lda(x, y, num_classes=c, covariance="full"),
                  "unknown etran_lda option covariance='full'")  # fmt: skip
  means = np.stack([x[y == k].mean(axis=0) for k in range(c)])
  _one_line_error(lambda: scores.etran_lda(means[y], y, num_classes=c, covariance="shrunk"),
                  "etran_lda is not finite")  # fmt: skip


def test_documented_constants():
  assert etran_module.PERCENT == 0.5
  assert etran_module.POOL_WEIGHTS == {"etran_energy": 0.15, "etran_lda": 0.85}

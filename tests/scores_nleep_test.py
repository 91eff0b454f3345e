"""N-LEEP against a float64 NumPy transcription of its definition (sklearn's PCA(0.8) rule,
k-means++ from the same uniform draws, Lloyd, diagonal-GMM EM with sklearn's updates, LEEP with
the log), the spread over seeds next to the gap between clearly different features, batched =
one by one, float32 under offsets and scales, bad inputs, x64 on and off."""

import importlib

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import jtransfer.scores as scores

nleep_module = importlib.import_module("jtransfer.scores.nleep")  # the package binds the function

KMEANS_ITERS, EM_ITERS, REG_COVAR = 30, 100, 1e-6


def test_counts_are_the_documented_ones():
  assert (nleep_module.KMEANS_ITERS, nleep_module.EM_ITERS) == (KMEANS_ITERS, EM_ITERS)
  assert nleep_module.REG_COVAR == REG_COVAR


def _draws(seed, k):
  """The kernel's random input: K float32 uniforms from jax.random.key(seed)."""
  return np.asarray(jax.random.uniform(jax.random.key(seed), (k,), jnp.float32), np.float64)


def _sq_dist(x, c):
  return ((x[:, None, :] - c[None, :, :]) ** 2).sum(axis=-1)


def nleep_reference(x, y, c, per_class=5, variance=0.8, seed=0):
  x = np.asarray(x, np.float64)
  n, k = len(y), per_class * c
  # PCA(n_components=variance): the smallest number of components whose fraction exceeds it
  centred = x - x.mean(axis=0)
  u, s, _ = np.linalg.svd(centred, full_matrices=False)
  ratio = s**2 / (s**2).sum()
  dims = np.searchsorted(np.cumsum(ratio), variance, side="right") + 1
  p = u[:, :dims] * s[:dims]
  # k-means++ by inverse CDF at the draws, then Lloyd, then the final assignment
  draws = _draws(seed, k)
  first = min(int(np.floor(draws[0] * n)), n - 1)
  centres, nearest = [p[first]], ((p - p[first]) ** 2).sum(axis=1)
  for j in range(1, k):
    cdf = np.cumsum(nearest)
    idx = int((cdf <= draws[j] * cdf[-1]).sum()) if cdf[-1] > 0 else int(draws[j] * n)
    idx = min(idx, n - 1)
    centres.append(p[idx])
    nearest = np.minimum(nearest, ((p - p[idx]) ** 2).sum(axis=1))
  centres = np.array(centres)
  for _ in range(KMEANS_ITERS):
    assign = _sq_dist(p, centres).argmin(axis=1)
    for m in range(k):
      if (assign == m).any():
        centres[m] = p[assign == m].mean(axis=0)
  resp = np.eye(k)[_sq_dist(p, centres).argmin(axis=1)]
  eps = np.finfo(np.float64).eps

  def m_step(resp):
    nk = resp.sum(axis=0) + 10 * eps
    means = resp.T @ p / nk[:, None]
    var = np.stack([resp[:, m] @ (p - means[m]) ** 2 for m in range(k)]) / nk[:, None]
    return np.log(nk / n), means, var + REG_COVAR

  def posterior(params):
    log_w, means, var = params
    maha = ((p[:, None, :] - means[None]) ** 2 / var[None]).sum(axis=-1)
    log_p = -0.5 * (maha + np.log(var).sum(axis=1) + dims * np.log(2 * np.pi)) + log_w
    log_p -= log_p.max(axis=1, keepdims=True)
    r = np.exp(log_p)
    return r / r.sum(axis=1, keepdims=True)

  params = m_step(resp)
  for _ in range(EM_ITERS):
    params = m_step(posterior(params))
  theta = posterior(params)
  # LEEP of the GMM posterior, with the log
  joint = np.stack([theta[y == cl].sum(axis=0) for cl in range(c)]) / n
  cond = joint / joint.sum(axis=0, keepdims=True)
  return np.log((theta * cond[y]).sum(axis=1)).mean()


def _build(n, d, c, sep, seed, counts=None, offset=4.0):
  rng = np.random.default_rng(seed)
  y = np.arange(n) % c if counts is None else np.repeat(np.arange(c), counts)
  mix = rng.normal(size=(d, d)) / np.sqrt(d)
  return sep * rng.normal(size=(c, d))[y] + rng.normal(size=(n, d)) @ mix + offset, y, c


CASES = {
  "n_gt_d": lambda: _build(120, 20, 4, 0.7, 0),
  "n_lt_d": lambda: _build(40, 60, 2, 0.25, 1),
  "pair_class": lambda: _build(50, 10, 3, 0.6, 2, counts=[2, 24, 24]),
}


@pytest.mark.parametrize("case", sorted(CASES))
def test_matches_numpy_reference(x64, case):
  x, y, c = CASES[case]()
  want = nleep_reference(x, y, c)
  assert -np.log(c) < want < -0.01, want  # informative: neither pure components nor chance
  np.testing.assert_allclose(float(scores.nleep(x, y, num_classes=c)), want, rtol=1e-4)


def test_options_match_numpy_reference(x64):
  x, y, c = CASES["n_gt_d"]()
  for opts in ({"seed": 3}, {"components_per_class": 2}, {"variance": 0.5}):
    want = nleep_reference(x, y, c, **{"per_class" if k == "components_per_class" else k: v
                                       for k, v in opts.items()})  # fmt: skip
    np.testing.assert_allclose(float(scores.nleep(x, y, num_classes=c, **opts)), want, rtol=1e-4,
                               err_msg=str(opts))  # fmt: skip


def test_spread_over_seeds_is_small_next_to_clearly_different_features(x64):
  # Same labels, class separation 1.0 vs 0.3: the GMM's seed moves N-LEEP by far less than the
  # features do, and every seed ranks the two feature sets the same way.
  seeds = range(5)
  good, _, c = _build(120, 20, 4, 1.0, 5)
  poor, y, _ = _build(120, 20, 4, 0.3, 5)
  g = np.array([float(scores.nleep(good, y, num_classes=c, seed=s)) for s in seeds])
  p = np.array([float(scores.nleep(poor, y, num_classes=c, seed=s)) for s in seeds])
  gap = g.mean() - p.mean()
  assert gap > 0.3, (g, p)
  assert np.ptp(g) < 0.25 * gap and np.ptp(p) < 0.25 * gap, (g, p)
  assert g.min() > p.max(), (g, p)


def test_batched_equals_one_by_one(x64):
  rng = np.random.default_rng(6)
  x, y, c = CASES["pair_class"]()
  models = np.stack([x, x * 2.0 + rng.normal(size=x.shape) * 0.1, x[:, ::-1] - 3.0])
  batched = scores.compute_batched(models, y, num_classes=c, names=["nleep"], chunk_size=2)
  for i, m in enumerate(models):
    np.testing.assert_allclose(batched["nleep"][i], float(scores.nleep(m, y, num_classes=c)),
                               rtol=1e-9)  # fmt: skip


@pytest.mark.parametrize("scale", [0.5, 1.0, 10.0])
@pytest.mark.parametrize("case", sorted(CASES))
def test_float32_with_large_offset_and_scale_equals_float64(case, scale):
  x, y, c = CASES[case]()
  low = ((x - 4.0) * scale + 1e3).astype(np.float32)  # features + 1e3, rescaled
  got = scores.nleep(low, y, num_classes=c)
  assert np.asarray(got).dtype == np.float32
  np.testing.assert_allclose(float(got), nleep_reference(low, y, c), rtol=1e-3)


def test_x64_on_and_off(x64):
  x, y, c = CASES["pair_class"]()
  want = nleep_reference(x, y, c)
  on64 = scores.nleep(x, y, num_classes=c)
  on32 = scores.nleep(x.astype(np.float32), y, num_classes=c)
  assert np.asarray(on64).dtype == np.float64 and np.asarray(on32).dtype == np.float32
  np.testing.assert_allclose(float(on64), want, rtol=1e-9)
  np.testing.assert_allclose(float(on32), want, rtol=1e-4)
  jax.config.update("jax_enable_x64", False)  # the fixture restores the setting
  off = scores.nleep(x, y, num_classes=c)
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
  _one_line_error(lambda: scores.nleep(nan, y, num_classes=c), "features contain NaN")
  _one_line_error(lambda: scores.nleep(x, np.where(y == 2, 3, y), num_classes=c), "out of range")
  # 5 × 3 = 15 components need 15 samples
  few = np.r_[0:2, 2:8, 26:32]  # 14 samples, every class present
  _one_line_error(lambda: scores.nleep(x[few], y[few], num_classes=c),
                  "nleep needs at least components_per_class × C = 15 samples")  # fmt: skip
  _one_line_error(lambda: scores.nleep(x, y, num_classes=c, variance=1.0),
                  r"variance must be a finite number in \(0, 1\), got 1.0")  # fmt: skip
  _one_line_error(lambda: scores.nleep(x, y, num_classes=c, seed=-1), "seed must be an integer")
  _one_line_error(lambda: scores.nleep(x, y, num_classes=c, components_per_class=0),
                  "components_per_class must be an integer")  # fmt: skip
  _one_line_error(lambda: scores.nleep(np.ones_like(x), y, num_classes=c), "all samples are equal")

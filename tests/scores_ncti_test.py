"""NCTI's three terms against a float64 NumPy/SciPy transcription of the reference (exact PCA to
64 components, sklearn's solver="svd" LDA written out: per-coordinate standardised within-class
SVD with tol 1e-4, between-class SVD, transform and predict_proba; nuclear norms by
np.linalg.norm(ord="nuc")), the published pool combination, batched = one by one, float32 under
offsets and scales, bad inputs, x64 on and off."""

import jax
import numpy as np
import pytest
import scipy.linalg
import scipy.special

import jtransfer.scores as scores
from jtransfer.scores import ncti as ncti_module
from jtransfer.scores.shared import Shared

TERMS = ("ncti_seli", "ncti_ncc", "ncti_vc")
SWITCH = 10 * np.log(10)  # the reference fits the unshrunk LDA iff Σ top-32 variances ≥ this


def lda_svd_reference(x, y, c, tol=1e-4):
  """LinearDiscriminantAnalysis(solver="svd").fit(x, y): (transform(x), predict_proba(x))."""
  n, d = x.shape
  priors = np.bincount(y, minlength=c) / n
  means = np.stack([x[y == k].mean(axis=0) for k in range(c)])
  resid = x - means[y]
  std = resid.std(axis=0)
  std[std == 0] = 1.0
  _, s, vt = scipy.linalg.svd(np.sqrt(1.0 / (n - c)) * resid / std, full_matrices=False)
  rank = int((s > tol).sum())
  scalings = (vt[:rank] / std).T / s[:rank]
  xbar = priors @ means
  weighted = (np.sqrt(n * priors / (c - 1)) * (means - xbar).T).T @ scalings
  _, sb, vbt = scipy.linalg.svd(weighted, full_matrices=False)
  rank_b = int((sb > tol * sb[0]).sum())
  proj = scalings @ vbt.T[:, :rank_b]
  coef = (means - xbar) @ proj
  low = (x - xbar) @ proj
  decision = low @ coef.T - 0.5 * (coef**2).sum(axis=1) + np.log(priors)
  return low[:, : min(c - 1, d)], scipy.special.softmax(decision, axis=1)


def top32_variance(x):
  """Σ of the top-32 PCA variances (ddof 1): the reference's shrinkage switch reads this."""
  s = np.linalg.svd(x - x.mean(axis=0), compute_uv=False)
  return (s[:32] ** 2).sum() / (len(x) - 1)


def ncti_reference(x, y, c, dim=64):
  x = np.asarray(x, np.float64)
  centred = x - x.mean(axis=0)
  u, s, _ = np.linalg.svd(centred, full_matrices=False)
  k = min(dim, np.linalg.matrix_rank(centred))  # round-off components left out
  low, probs = lda_svd_reference(u[:, :k] * s[:k], y, c)
  return {
    "ncti_seli": np.linalg.norm(low - low.mean(axis=0), ord="nuc"),
    "ncti_ncc": probs[np.arange(len(y)), y].mean(),
    "ncti_vc": np.log(sum(np.linalg.norm(probs[y == k], ord="nuc") for k in range(c))),
  }


def reference_pool(terms):
  """evaluate_metric_group1_cpu.py: (t − min)/(max − min) per term, mc + ma − cp."""
  norm = {k: (np.asarray(v) - np.min(v)) / (np.max(v) - np.min(v)) for k, v in terms.items()}
  return norm["ncti_ncc"] + norm["ncti_seli"] - norm["ncti_vc"]


def _build(n, d, c, sep, seed, counts=None, offset=3.0):
  rng = np.random.default_rng(seed)
  y = np.arange(n) % c if counts is None else np.repeat(np.arange(c), counts)
  mix = rng.normal(size=(d, d)) / np.sqrt(d)
  return sep * rng.normal(size=(c, d))[y] + rng.normal(size=(n, d)) @ mix + offset, y, c


CASES = {
  "n_gt_d": lambda: _build(400, 100, 5, 0.15, 0),
  "n_lt_d": lambda: _build(200, 300, 4, 0.1, 1),
  "pair_class": lambda: _build(300, 90, 3, 0.15, 2, counts=[2, 149, 149]),
}


def _terms(x, y, c, **kw):
  out = scores.compute(x, y, num_classes=c, names=list(TERMS), options={t: kw for t in TERMS}
                       if kw else None)  # fmt: skip
  return {k: float(v) for k, v in out.items()}


@pytest.mark.parametrize("case", sorted(CASES))
def test_matches_numpy_reference(x64, case):
  x, y, c = CASES[case]()
  assert top32_variance(x) > SWITCH  # the reference's unshrunk ('svd') LDA applies
  want = ncti_reference(x, y, c)
  assert 0.3 < want["ncti_ncc"] < 0.99, want  # informative: neither chance nor saturated
  got = _terms(x, y, c)
  for term in TERMS:
    np.testing.assert_allclose(got[term], want[term], rtol=1e-4, err_msg=term)
    alone = float(getattr(scores, term)(x, y, num_classes=c))  # one term alone: the same fit
    np.testing.assert_allclose(alone, got[term], rtol=1e-12, err_msg=term)


def test_fewer_than_64_dimensions_or_samples(x64):
  # D = 30 < 64 (the reference's PCA(64) raises; jtransfer takes k = D), and N = 64 (the centred
  # data's rank is 63: the 64th component is round-off, left out, as the reference would if
  # it did not blow it up to unit variance).
  for x, y, c in (_build(90, 30, 3, 0.2, 3), _build(64, 100, 4, 0.1, 4)):
    want = ncti_reference(x, y, c)
    got = _terms(x, y, c)
    for term in TERMS:
      np.testing.assert_allclose(got[term], want[term], rtol=1e-4, err_msg=term)


def test_pca_dim_option(x64):
  x, y, c = CASES["n_gt_d"]()
  want = ncti_reference(x, y, c, dim=8)
  got = _terms(x, y, c, pca_dim=8)
  for term in TERMS:
    np.testing.assert_allclose(got[term], want[term], rtol=1e-4, err_msg=term)


def test_invariant_to_shift_and_scale_where_the_reference_switches_to_shrinkage(x64):
  # Scaled by 1e-3 the top-32 variances sum to < 23.03: the reference would fit its shrunk
  # 'eigen' LDA there (a different value); jtransfer's terms do not move.
  x, y, c = CASES["n_lt_d"]()
  base = _terms(x, y, c)
  small = x * 1e-3 - 7
  assert top32_variance(small) < SWITCH
  for term, value in _terms(small, y, c).items():
    np.testing.assert_allclose(value, base[term], rtol=1e-9, err_msg=term)


def test_pool_equals_the_reference_combination(x64):
  rng = np.random.default_rng(7)
  x, y, c = CASES["n_gt_d"]()
  pool = [x * rng.uniform(0.5, 2) + rng.normal(size=x.shape) * s for s in (0.0, 0.5, 1.0, 2.0)]
  terms = {t: [] for t in TERMS}
  for m in pool:
    for t, v in ncti_reference(m, y, c).items():
      terms[t].append(v)
  want = reference_pool(terms)
  batched = scores.compute_batched(np.stack(pool), y, num_classes=c, names=list(TERMS))
  got = scores.ncti_pool({t: np.asarray(v) for t, v in batched.items()})
  np.testing.assert_allclose(got, want, rtol=1e-4, atol=1e-6)
  assert np.argmax(got) == 0  # the noiseless features rank first
  # A term equal for every model: the reference divides 0 by 0 (NaN); jtransfer gives it 0.
  flat = {**terms, "ncti_vc": [1.0] * len(pool)}
  with np.errstate(invalid="ignore"):
    assert np.all(np.isnan(reference_pool(flat)))
  norm = lambda v: (np.asarray(v) - np.min(v)) / np.ptp(v)  # noqa: E731
  np.testing.assert_allclose(scores.ncti_pool(flat), norm(terms["ncti_ncc"]) +
                             norm(terms["ncti_seli"]))  # fmt: skip
  with pytest.raises(ValueError, match=r"pool terms missing: \['ncti_vc'\]"):
    scores.ncti_pool({"ncti_seli": [1.0, 2.0], "ncti_ncc": [1.0, 2.0]})
  with pytest.raises(ValueError, match="non-finite"):
    scores.ncti_pool({**terms, "ncti_vc": [np.nan] * len(pool)})


def test_batched_equals_one_by_one(x64):
  rng = np.random.default_rng(5)
  x, y, c = CASES["pair_class"]()
  models = np.stack([x, x + rng.normal(size=x.shape), x[:, ::-1] * 2.0])
  batched = scores.compute_batched(models, y, num_classes=c, names=list(TERMS), chunk_size=2)
  for i, m in enumerate(models):
    one = _terms(m, y, c)
    for term in TERMS:
      np.testing.assert_allclose(batched[term][i], one[term], rtol=1e-9, err_msg=term)


@pytest.mark.parametrize("scale", [1e-3, 1.0, 1e3])
@pytest.mark.parametrize("case", sorted(CASES))
def test_float32_with_large_offset_and_scale_equals_float64(case, scale):
  x, y, c = CASES[case]()
  low = ((x - 3.0 + 1e3) * scale).astype(np.float32)  # features + 1e3, rescaled
  want = ncti_reference(low, y, c)
  out = scores.compute(low, y, num_classes=c, names=list(TERMS))
  for term in TERMS:
    assert np.asarray(out[term]).dtype == np.float32
    np.testing.assert_allclose(float(out[term]), want[term], rtol=1e-3, err_msg=term)


def test_x64_on_and_off(x64):
  x, y, c = CASES["pair_class"]()
  want = ncti_reference(x, y, c)
  on64 = scores.compute(x, y, num_classes=c, names=list(TERMS))
  on32 = scores.compute(x.astype(np.float32), y, num_classes=c, names=list(TERMS))
  jax.config.update("jax_enable_x64", False)  # the fixture restores the setting
  off = scores.compute(x, y, num_classes=c, names=list(TERMS))
  for term in TERMS:
    assert np.asarray(on64[term]).dtype == np.float64
    assert np.asarray(on32[term]).dtype == np.float32 == np.asarray(off[term]).dtype
    np.testing.assert_allclose(float(on64[term]), want[term], rtol=1e-9, err_msg=term)
    np.testing.assert_allclose(float(on32[term]), want[term], rtol=1e-4, err_msg=term)
    np.testing.assert_allclose(float(off[term]), want[term], rtol=1e-4, err_msg=term)


def _one_line_error(call, message):
  with pytest.raises(ValueError, match=message) as info:
    call()
  assert "\n" not in str(info.value)


def test_bad_inputs_raise_one_line_errors():
  x, y, c = CASES["pair_class"]()
  nan = x.copy()
  nan[3, 1] = np.nan
  _one_line_error(lambda: scores.ncti_seli(nan, y, num_classes=c), "features contain NaN")
  _one_line_error(lambda: scores.ncti_ncc(x, np.where(y == 2, 3, y), num_classes=c),
                  "out of range")  # fmt: skip
  _one_line_error(lambda: scores.ncti_vc(x, y, num_classes=c, pca_dim=0),
                  "ncti_vc option pca_dim must be an integer pca_dim ≥ 1, got 0")  # fmt: skip
  # Every sample at its class mean: no within-class scatter, no LDA.
  means = np.stack([x[y == k].mean(axis=0) for k in range(c)])
  _one_line_error(lambda: scores.ncti_seli(means[y], y, num_classes=c),
                  "ncti_seli is not finite: zero within-class scatter")  # fmt: skip
  _one_line_error(lambda: scores.ncti_ncc(x[:3], np.arange(3), num_classes=3),
                  "ncti_ncc is not finite")  # fmt: skip


def test_documented_constants():
  assert (ncti_module.PCA_DIM, ncti_module.LDA_TOL) == (64, 1e-4)
  assert ncti_module.POOL_SIGNS == {"ncti_seli": 1.0, "ncti_ncc": 1.0, "ncti_vc": -1.0}


def test_vc_never_holds_an_n_by_n_matrix_per_class():
  # XLA:CPU's vmapped SVD of the [N, C] class posteriors allocated N×N per class (N = 32,000:
  # 41 GB, an OOM); through the C×C R factor the program's scratch stays O(N·C + N·D).
  n, d, c = 4000, 64, 10
  rng = np.random.default_rng(0)
  y = np.arange(n) % c
  x = (rng.normal(size=(n, d)) + rng.normal(size=(c, d))[y]).astype(np.float32)
  fn = jax.jit(lambda f, lab: ncti_module.ncti_vc_kernel(Shared(f, lab, c)))
  temp = fn.lower(x, y.astype(np.int32)).compile().memory_analysis().temp_size_in_bytes
  assert temp < n * n * 4, temp  # below one N×N float32 matrix (the old program: 10 of them)
  # The values are held to the float64 reference by the tests above.

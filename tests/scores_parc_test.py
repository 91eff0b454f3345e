"""PARC against a float64 NumPy/SciPy transcription of the reference (PCA, StandardScaler,
1 − corrcoef of samples and of one-hot labels, scipy's Spearman over the upper triangles, ×100),
batched = one by one, float32 under offsets and scales, bad inputs, x64 on and off."""

import jax
import numpy as np
import pytest
import scipy.stats

import jtransfer.scores as scores
from jtransfer.scores import regimes
from jtransfer.scores.parc import rank_biserial


def parc_reference(x, y, c, dim=32, literal_label_rdm=False):
  """The reference, with its label RDM two-valued (0 / C/(C − 1)) as it is in exact arithmetic;
  `literal_label_rdm` takes 1 − np.corrcoef(one-hot) as the reference does, round-off included."""
  x = np.asarray(x, np.float64)
  n = len(y)
  centred = x - x.mean(axis=0)
  u, s, _ = np.linalg.svd(centred, full_matrices=False)
  k = min(dim, np.linalg.matrix_rank(centred))  # components beyond the rank are round-off
  u, s = u[:, :k], s[:k]
  big = np.argmax(np.abs(u), axis=0)
  u = u * np.sign(u[big, np.arange(k)])  # sklearn's u-based svd_flip
  coords = u * s  # PCA.transform
  coords = (coords - coords.mean(axis=0)) / coords.std(axis=0)  # StandardScaler
  rdm_f = 1 - np.corrcoef(coords)
  if literal_label_rdm:
    rdm_y = 1 - np.corrcoef(np.eye(c)[y])
  else:
    rdm_y = np.where(y[:, None] == y[None, :], 0.0, c / (c - 1))
  iu = np.triu_indices(n, 1)
  return scipy.stats.spearmanr(rdm_f[iu], rdm_y[iu])[0] * 100


def _build(n, d, c, sep, seed, counts=None, offset=5.0):
  rng = np.random.default_rng(seed)
  y = np.arange(n) % c if counts is None else np.repeat(np.arange(c), counts)
  x = sep * rng.normal(size=(c, d))[y] + rng.normal(size=(n, d)) @ rng.normal(size=(d, d)) / 4
  return x + offset, y, c


CASES = {
  "n_gt_d": lambda: _build(60, 40, 4, 1.0, 0),  # k = 32 < D
  "n_lt_d": lambda: _build(40, 60, 3, 1.0, 1),  # N < D, k = 32
  "pair_class": lambda: _build(45, 20, 3, 1.0, 3, counts=[2, 21, 22]),  # k = D = 20
}


@pytest.mark.parametrize("case", sorted(CASES))
def test_matches_numpy_reference(x64, case):
  x, y, c = CASES[case]()
  want = parc_reference(x, y, c)
  assert 5 < want < 95, want
  np.testing.assert_allclose(float(scores.parc(x, y, num_classes=c)), want, rtol=1e-4)


def test_reference_label_rdm_round_off_splits_ties(x64):
  # 1 − np.corrcoef(one-hot) is 0 or 2.2e-16 for same-class pairs depending on the class when
  # C = 3 (the rounding of 1/3): spearmanr then ranks those pairs apart instead of as ties, and
  # the published code's value moves (here by ≈ 4%); with C = 4 the entries are exact.
  x, y, c = CASES["n_lt_d"]()
  assert c == 3
  exact, literal = parc_reference(x, y, c), parc_reference(x, y, c, literal_label_rdm=True)
  assert abs(literal - exact) > 0.01 * abs(exact)
  np.testing.assert_allclose(float(scores.parc(x, y, num_classes=c)), exact, rtol=1e-4)
  x4, y4, c4 = CASES["n_gt_d"]()
  assert c4 == 4
  assert parc_reference(x4, y4, c4, literal_label_rdm=True) == parc_reference(x4, y4, c4)


def test_pca_dim_option_and_ties(x64):
  x, y, c = CASES["n_gt_d"]()
  for dim in (3, 8):
    np.testing.assert_allclose(float(scores.parc(x, y, num_classes=c, pca_dim=dim)),
                               parc_reference(x, y, c, dim), rtol=1e-4)  # fmt: skip
  # Duplicated samples give tied RDM entries (0 for the copies, equal rows elsewhere).
  xd, yd = np.concatenate([x, x[:10]]), np.concatenate([y, y[:10]])
  np.testing.assert_allclose(float(scores.parc(xd, yd, num_classes=c)),
                             parc_reference(xd, yd, c), rtol=1e-4)  # fmt: skip


def test_degenerate_when_the_components_span_all_of_the_centred_space(x64):
  # N − 1 = 23 ≤ 32: the standardised coordinates are whitened, U Uᵀ = I − 11ᵀ/N for any
  # features. The kernel still follows the definition (float64); the score job stores it as
  # undefined (regimes).
  x, y, c = _build(24, 50, 3, 1.5, 2)
  np.testing.assert_allclose(float(scores.parc(x, y, num_classes=c)), parc_reference(x, y, c),
                             rtol=1e-4)  # fmt: skip
  assert "undefined: N - 1 = 23 <= min(pca_dim, D) = 32" in regimes.undefined_reason(
    "parc", n=24, d=50
  )
  assert regimes.undefined_reason("parc", n=24, d=50, options={"pca_dim": 16}) == ""
  assert regimes.undefined_reason("parc", n=40, d=60) == ""
  assert regimes.undefined_reason("parc", n=30, d=20) == ""  # k = D = 20 < N − 1


def test_rank_biserial_equals_scipy_spearman_with_ties(x64):
  rng = np.random.default_rng(0)
  values = np.round(rng.normal(size=300), 1)  # many ties
  flags = rng.random(300) < 0.3
  want = scipy.stats.spearmanr(values, flags.astype(float))[0]
  np.testing.assert_allclose(float(rank_biserial(values, flags)), want, rtol=1e-12)


def test_invariant_to_shift_and_scale(x64):
  x, y, c = CASES["n_lt_d"]()
  base = float(scores.parc(x, y, num_classes=c))
  np.testing.assert_allclose(float(scores.parc(x * 1e3 - 7, y, num_classes=c)), base, rtol=1e-9)


def test_batched_equals_one_by_one(x64):
  rng = np.random.default_rng(5)
  x, y, c = CASES["n_lt_d"]()
  models = np.stack([x, x + rng.normal(size=x.shape), x[:, ::-1] * 2.0])
  batched = scores.compute_batched(models, y, num_classes=c, names=["parc"], chunk_size=2)
  for i, m in enumerate(models):
    np.testing.assert_allclose(batched["parc"][i], float(scores.parc(m, y, num_classes=c)),
                               rtol=1e-9)  # fmt: skip


@pytest.mark.parametrize("scale", [1e-3, 1.0, 1e3])
@pytest.mark.parametrize("case", sorted(CASES))
def test_float32_with_large_offset_and_scale_equals_float64(case, scale):
  x, y, c = CASES[case]()
  low = ((x - 5.0 + 1e3) * scale).astype(np.float32)  # features + 1e3, rescaled
  got = scores.parc(low, y, num_classes=c)
  assert np.asarray(got).dtype == np.float32
  np.testing.assert_allclose(float(got), parc_reference(low, y, c), rtol=1e-3)


def test_x64_on_and_off(x64):
  x, y, c = CASES["pair_class"]()
  want = parc_reference(x, y, c)
  on64 = scores.parc(x, y, num_classes=c)
  on32 = scores.parc(x.astype(np.float32), y, num_classes=c)
  assert np.asarray(on64).dtype == np.float64 and np.asarray(on32).dtype == np.float32
  np.testing.assert_allclose(float(on64), want, rtol=1e-9)
  np.testing.assert_allclose(float(on32), want, rtol=1e-4)
  jax.config.update("jax_enable_x64", False)  # the fixture restores the setting
  off = scores.parc(x, y, num_classes=c)
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
  _one_line_error(lambda: scores.parc(nan, y, num_classes=c), "features contain NaN")
  _one_line_error(lambda: scores.parc(x, np.where(y == 3, -1, y), num_classes=c), "out of range")
  _one_line_error(lambda: scores.parc(x, y, num_classes=c, pca_dim=2),
                  "parc option pca_dim must be an integer pca_dim ≥ 3, got 2")  # fmt: skip
  # Every class a singleton: every pair is "different", Spearman undefined.
  _one_line_error(lambda: scores.parc(x[:4], np.arange(4), num_classes=4), "no class has 2")

"""The score API against adversarial inputs (issue 23): C = 200 classes with 1 or 2 samples each,
D = 1, D = 100,000 at N = 30, one feature value of 1e30 (and 1e39 given as float64 with
jax_enable_x64 off), labels as uint8 / bool / float and float labels that are not integers.

Each must give finite values (equal to float64 where float32 can hold them) or a one-line
ValueError from the eager checks (`jtransfer.scores.validation`) naming the problem; never a
silent NaN / Inf or a wrong finite number, never an error raised from inside JAX. Found here
and fixed: PARC returned a finite number from an all-NaN RDM where fewer than 2 PCA components
survive (D = 1, or one huge outlier: the NaNs were sorted as distinct values); the shrinkage
H-score was 0 for D = 1 (Ledoit–Wolf's δ is round-off there, so the shrinkage came out as 1;
sklearn sets it to 0); float64 values beyond float32's range with x64 off became Inf after the
checks (h_score and sum_of_squares then returned 0, knn_accuracy 1/3).
"""

import jax
import numpy as np
import pytest

from jtransfer import scores
from jtransfer.scores import regimes, registry

# The feature scores whose float32 values are held to float64 here (the registry may grow).
KNOWN = (
  "two_nn", "sum_of_squares", "rsa", "nc_score", "nc_score_eq2", "logme", "h_score",
  "h_score_shrinkage", "transrate", "gbc", "sfda", "parc", "knn_accuracy",
)  # fmt: skip


def _blobs(n_per_class, num_classes, d, seed=0):
  rng = np.random.default_rng(seed)
  labels = np.repeat(np.arange(num_classes), n_per_class)
  means = rng.normal(size=(num_classes, d))
  return means[labels] + rng.normal(size=(labels.size, d)), labels


def _one_line_check_error(excinfo, *words):
  """A ValueError on one line, raised by the eager checks, naming `words`."""
  message = str(excinfo.value)
  assert excinfo.type is ValueError and "\n" not in message, message
  assert excinfo.traceback[-1].path.name == "validation.py", excinfo.traceback[-1]
  for w in words:
    assert w in message, message


def _float64(fn):
  previous = jax.config.jax_enable_x64
  jax.config.update("jax_enable_x64", True)
  try:
    return fn()
  finally:
    jax.config.update("jax_enable_x64", previous)


def test_labels_as_uint8_bool_and_integral_floats_equal_integer_labels():
  x, y = _blobs(20, 3, 8)
  names = ["logme", "h_score", "knn_accuracy", "nc_score"]
  want = scores.compute(x, y, num_classes=3, names=names)
  for labels in (y.astype(np.uint8), y.astype(np.float32), y.astype(np.float64)):
    got = scores.compute(x, labels, num_classes=3, names=names)
    assert {k: float(v) for k, v in got.items()} == {k: float(v) for k, v in want.items()}
  two = y[:40] == 1  # classes 0 and 1 as False / True
  want = scores.compute(x[:40], two.astype(np.int64), num_classes=2, names=names)
  got = scores.compute(x[:40], two, num_classes=2, names=names)
  assert {k: float(v) for k, v in got.items()} == {k: float(v) for k, v in want.items()}


@pytest.mark.parametrize(
  "labels, words",
  [
    (np.repeat(np.arange(3), 20) + 0.5, ["labels must be integers", "non-integral"]),
    (np.where(np.arange(60) == 7, np.nan, np.repeat(np.arange(3.0), 20)), ["non-integral"]),
    (np.repeat(np.arange(3), 20).astype(np.uint8) + 250, ["labels out of range", "[250, 252]"]),
    (np.repeat(np.arange(3), 20).astype(str), ["labels must be integers", "dtype <U"]),
  ],
  ids=["halves", "nan", "uint8_out_of_range", "strings"],
)
def test_labels_that_are_not_class_indices_are_one_line_errors(labels, words):
  x, _ = _blobs(20, 3, 8)
  with pytest.raises(ValueError) as e:
    scores.compute(x, labels, num_classes=3, names=["logme", "h_score"])
  _one_line_check_error(e, *words)
  with pytest.raises(ValueError) as e:
    scores.logme(x, labels, num_classes=3)
  _one_line_check_error(e, *words)


def test_one_feature_dimension():
  """D = 1: the shrinkage H-score is the H-score at ddof 0/1 (no shrinkage, as sklearn); PARC
  and RSA (a Pearson across 1 coordinate is 0/0) are refused in one line."""
  x, y = _blobs(20, 3, 1)
  h = float(scores.h_score(x, y, num_classes=3))
  shrunk = float(scores.h_score_shrinkage(x, y, num_classes=3))
  assert h > 0.1  # classes that separate
  np.testing.assert_allclose(shrunk, h * 60 / 59, rtol=1e-5)  # was 0.0
  with pytest.raises(ValueError) as e:
    scores.parc(x, y, num_classes=3)  # was a finite -25.18 from an all-NaN RDM
  _one_line_check_error(e, "parc is not finite", "fewer than 2 components")
  with pytest.raises(ValueError) as e:
    scores.rsa(x, y, num_classes=3)
  _one_line_check_error(e, "constant feature rows")


def test_a_float64_value_beyond_float32_is_refused_when_x64_is_off():
  x, y = _blobs(20, 3, 8)
  x[5, 3] = 1e39
  assert not jax.config.jax_enable_x64
  for fn in (scores.h_score, scores.sum_of_squares, scores.knn_accuracy):  # were 0, 0, 1/3
    with pytest.raises(ValueError) as e:
      fn(x, y, num_classes=3)
    _one_line_check_error(e, "features hold values up to 1e+39", "float32", "jax_enable_x64")
  with pytest.raises(ValueError) as e:
    scores.compute(x, y, num_classes=3)
  _one_line_check_error(e, "beyond float32's range")
  # x64 on: computed in float64, where the value fits.
  assert np.isfinite(float(_float64(lambda: scores.h_score(x, y, num_classes=3))))


def test_one_huge_feature_value_is_float64_exact_or_refused():
  """One entry of 1e30 (fits float32; its square does not): the scores that read normalised
  features agree with float64, the others say what went wrong, in one line."""
  x, y = _blobs(20, 3, 8)
  x[5, 3] = 1e30
  names = ["sum_of_squares", "nc_score", "logme", "h_score", "sfda", "knn_accuracy"]
  got = scores.compute(x.astype(np.float32), y, num_classes=3, names=names)
  want = _float64(lambda: scores.compute(x, y, num_classes=3, names=names))
  for name in names:
    np.testing.assert_allclose(float(got[name]), float(want[name]), rtol=1e-4, err_msg=name)
  # Everything but the outlier is below float32's resolution next to it: one direction left.
  for fn, words in (
    (scores.parc, ["fewer than 2 components"]),  # was a finite -25.18
    (scores.rsa, ["rsa is not finite"]),
    (scores.transrate, ["transrate is not finite", "rescale"]),
  ):
    with pytest.raises(ValueError) as e:
      fn(x.astype(np.float32), y, num_classes=3)
    _one_line_check_error(e, *words)


def _rsa_numpy(x, y):
  """Float64 reference: 1 − Pearson between samples, mean over different − same-class pairs."""
  rdm = 1 - np.corrcoef(np.asarray(x, np.float64))
  same = y[:, None] == y[None, :]
  return rdm[~same].mean() - rdm[same & ~np.eye(len(y), dtype=bool)].mean()


def test_rsa_with_one_huge_value_is_exact_in_float64():
  """With x64 on, one 1e30 entry leaves every other sample ~1e-30 of the common pattern; the
  expanded ‖a + b‖² cancelled to a negative number there (was "rsa is not finite")."""
  x, y = _blobs(20, 3, 8)
  x[5, 3] = 1e30
  got = _float64(lambda: float(scores.rsa(x, y, num_classes=3)))
  np.testing.assert_allclose(got, _rsa_numpy(x, y), rtol=1e-9)


def test_rsa_samples_near_and_far_from_the_common_pattern():
  """Rows on both sides of the kernel's switch (‖b_i‖ vs ‖a‖): a strong common pattern, half the
  samples scaled down to 1e-6 of it, others anti-aligned with it."""
  rng = np.random.default_rng(3)
  x, y = _blobs(15, 3, 32)
  pattern = 50 * rng.normal(size=32)
  x = x + pattern
  x[::2] *= 1e-6
  x[1::6] = -x[1::6]
  want = _rsa_numpy(x, y)
  np.testing.assert_allclose(
    _float64(lambda: float(scores.rsa(x, y, num_classes=3))), want, rtol=1e-9
  )
  np.testing.assert_allclose(
    float(scores.rsa(x.astype(np.float32), y, num_classes=3)), want, rtol=2e-4
  )


def test_two_hundred_classes_with_two_samples_each():
  x, y = _blobs(2, 200, 16)
  got = scores.compute(x, y, num_classes=200, names=["logme", "h_score", "parc", "knn_accuracy"])
  assert all(np.isfinite(float(v)) for v in got.values()), got
  with pytest.raises(ValueError) as e:
    scores.nleep(x, y, num_classes=200)
  _one_line_check_error(e, "components_per_class × C = 1000", "N = 400")
  with pytest.raises(ValueError) as e:  # one sample per class
    scores.rsa(*_blobs(1, 200, 16), num_classes=200)
  _one_line_check_error(e, "rsa needs at least 2 samples per class")


_ADVERSARIES = {
  "c200_two_each": lambda: (*_blobs(2, 200, 16), 200),
  "c200_one_each": lambda: (*_blobs(1, 200, 16), 200),
  "d1": lambda: (*_blobs(20, 3, 1), 3),
  "d100k_n30": lambda: (*_blobs(10, 3, 100_000), 3),
  "outlier_1e30": lambda: _outlier(),
}


def _outlier():
  x, y = _blobs(20, 3, 8)
  x[5, 3] = 1e30
  return x, y, 3


@pytest.mark.slow  # every registered feature score on five adversaries, float32 and float64
@pytest.mark.parametrize("case", sorted(_ADVERSARIES))
def test_every_score_is_finite_and_float64_close_or_a_one_line_error(case):
  x, y, c = _ADVERSARIES[case]()
  x32 = x.astype(np.float32)
  names = registry.names(every=True)
  outcomes = {}
  for name in names:
    try:
      outcomes[name] = float(scores.compute(x32, y, num_classes=c, names=[name])[name])
    except ValueError as e:
      assert "\n" not in str(e), (name, str(e))
      outcomes[name] = str(e)
    assert not isinstance(outcomes[name], float) or np.isfinite(outcomes[name]), name
  values = [n for n in names if isinstance(outcomes[n], float)]
  assert values, outcomes
  undefined = {n for n in values if regimes.undefined_reason(n, n=len(y), d=x.shape[1])}
  # atol: TransRate at D = 1 is a difference of log-dets, 8e-5 off float64 on a value of 0.02.
  for name in sorted(set(values) & set(KNOWN) - undefined):
    want = _float64(lambda n=name: float(scores.compute(x, y, num_classes=c, names=[n])[n]))
    np.testing.assert_allclose(outcomes[name], want, rtol=2e-3, atol=3e-4, err_msg=name)

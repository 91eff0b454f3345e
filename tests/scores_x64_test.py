"""float32 features under jax_enable_x64: every score runs, stays float32 and agrees with float64.

A kernel whose loop carry mixes a float32 array with a float64 NumPy scalar changes dtype when
x64 is on (LogME's bisection and golden-section loops did: a TypeError from the scan)."""

import numpy as np

from jtransfer import scores


def _case():
  rng = np.random.default_rng(0)
  labels = np.repeat(np.arange(4), 50)
  means = rng.normal(size=(4, 32))
  features = means[labels] + rng.normal(size=(200, 32))
  return features, labels


def test_float32_features_with_x64_on_give_float32_scores_equal_to_float64(x64):
  features, labels = _case()
  got = scores.compute(features.astype(np.float32), labels, num_classes=4)
  want = scores.compute(features, labels, num_classes=4)
  assert "logme" in got and len(got) == len(want)
  for name, value in got.items():
    assert np.asarray(value).dtype == np.float32, name
    np.testing.assert_allclose(float(value), float(want[name]), rtol=1e-3, atol=1e-6, err_msg=name)


def test_logme_alone_with_x64_on(x64):
  features, labels = _case()
  got = scores.compute(features.astype(np.float32), labels, num_classes=4, names=["logme"])
  want = scores.compute(features, labels, num_classes=4, names=["logme"])
  np.testing.assert_allclose(float(got["logme"]), float(want["logme"]), rtol=1e-4)

"""The extra FSDD tasks of `jtransfer.data.audio_tasks` and the AUROC of `analysis.auroc`."""

import itertools

import numpy as np
import pytest
from references import pairwise_auroc
from scipy import stats

from jtransfer.analysis import auroc as auroc_lib
from jtransfer.data import audio_tasks, registry


def _load(name, split, data_dir):
  return registry.load(name, split, data_dir=str(data_dir))


def _row_set(x):
  return {row.tobytes() for row in x}


# -- noise source ---------------------------------------------------------------------------


@pytest.mark.parametrize("split", ["train", "test"])
def test_noise_labels_equal_fsdd_and_clips_are_uniform(split, data_dir):
  x, y = _load("fsdd_noise", split, data_dir)
  _, y_ref = _load("fsdd_digit_spk0123", split, data_dir)
  np.testing.assert_array_equal(y, y_ref)
  assert x.dtype == np.float32 and x.shape == (len(y_ref), 8000)
  a = 0.25  # the documented amplitude: U[-0.25, 0.25)
  assert x.min() >= -a and x.max() < a
  flat = x.astype(np.float64).ravel()
  # Moments of U[-a, a): mean 0, variance a^2 / 3 (millions of draws: tight tolerances).
  assert abs(flat.mean()) < 5 * np.sqrt(a**2 / 3 / flat.size)
  assert flat.var() == pytest.approx(a**2 / 3, rel=5e-3)
  sample = flat[:: max(1, flat.size // 20_000)]
  assert stats.kstest(sample, stats.uniform(loc=-a, scale=2 * a).cdf).pvalue > 1e-3
  # i.i.d.: neighbouring samples are uncorrelated (no hidden structure in time).
  lag1 = np.corrcoef(x[:50, :-1].ravel(), x[:50, 1:].ravel())[0, 1]
  assert abs(lag1) < 0.01


def test_noise_is_deterministic_and_seeded(data_dir):
  a1, _ = audio_tasks.noise_split("test", seed=1, data_dir=str(data_dir))
  a2, _ = audio_tasks.noise_split("test", seed=1, data_dir=str(data_dir))
  b, _ = audio_tasks.noise_split("test", seed=2, data_dir=str(data_dir))
  train, _ = audio_tasks.noise_split("train", seed=1, data_dir=str(data_dir))
  np.testing.assert_array_equal(a1, a2)
  assert not np.array_equal(a1, b)
  assert not np.array_equal(a1, train[: len(a1)])
  # The registered task is seed 1, drawn from default_rng([1, split_id]).
  ref = np.random.default_rng([1, 1]).uniform(-0.25, 0.25, size=a1.shape).astype(np.float32)
  np.testing.assert_array_equal(a1, ref)


def test_noise_rejects_unknown_split():
  with pytest.raises(ValueError, match="unknown split"):
    audio_tasks.noise_clips(3, seed=0, split="validation")


# -- ladders --------------------------------------------------------------------------------

# Documented sizes: 4 source speakers x 45 train takes = 180 train / 20 test clips per digit.
EXPECTED = {
  "fsdd_digit_c2": (2, 180, 20),
  "fsdd_digit_c5": (5, 180, 20),
  "fsdd_digit_c10": (10, 180, 20),
  "fsdd_digit_spk0123_n10": (10, 10, 20),
  "fsdd_digit_spk0123_n45": (10, 45, 20),
  "fsdd_digit_spk0123_n180": (10, 180, 20),
}


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_ladder_counts(name, data_dir):
  classes, per_train, per_test = EXPECTED[name]
  assert registry.get(name).num_classes == classes
  assert audio_tasks.LADDER_COUNTS[name] == (classes * per_train, classes * per_test)
  for split, per in (("train", per_train), ("test", per_test)):
    x, y = _load(name, split, data_dir)
    np.testing.assert_array_equal(np.bincount(y, minlength=classes), [per] * classes)
    assert len(x) == classes * per


def test_ladders_draw_on_source_speakers_only(data_dir):
  target = _row_set(
    np.concatenate([_load("fsdd_digit_spk45", s, data_dir)[0] for s in ("train", "test")])
  )
  for name in [*EXPECTED, "fsdd_digit_0_4_spk0123"]:
    x, _ = _load(name, "train", data_dir)
    assert not _row_set(x) & target, name


def test_class_ladder_is_the_first_k_digits(data_dir):
  full_x, full_y = _load("fsdd_digit_spk0123", "train", data_dir)
  for k in audio_tasks.CLASS_LADDER:
    x, y = _load(f"fsdd_digit_c{k}", "train", data_dir)
    keep = full_y < k
    np.testing.assert_array_equal(x, full_x[keep])
    np.testing.assert_array_equal(y, full_y[keep])


def test_sample_ladder_is_nested(data_dir):
  sets = [
    _row_set(_load(f"fsdd_digit_spk0123_n{n}", "train", data_dir)[0])
    for n in audio_tasks.SAMPLE_LADDER
  ]
  for small, big in itertools.pairwise(sets):
    assert small < big


def test_zero_vs_rest_target(data_dir):
  for split, (neg, pos) in (("train", (810, 90)), ("test", (90, 10))):
    x, y = _load("fsdd_zero_vs_rest_spk45", split, data_dir)
    x_digit, digit = _load("fsdd_digit_spk45", split, data_dir)
    np.testing.assert_array_equal(np.bincount(y, minlength=2), [neg, pos])
    np.testing.assert_array_equal(x, x_digit)
    np.testing.assert_array_equal(y, (digit == 0).astype(np.int32))


# -- AUROC ----------------------------------------------------------------------------------


@pytest.mark.parametrize("seed", range(5))
def test_auroc_equals_pairwise_reference(seed):
  rng = np.random.default_rng(seed)
  n = 200 + 37 * seed
  y = (rng.random(n) < 0.2 + 0.1 * seed).astype(int)
  # Rounded scores: many ties, within and across classes.
  s = np.round(rng.normal(size=n) + 0.8 * y, 1)
  assert auroc_lib.auroc(s, y) == pytest.approx(pairwise_auroc(s, y), abs=1e-12)


def test_auroc_closed_cases():
  y = np.array([0, 0, 1, 0, 1, 1])
  s = np.array([0.1, 0.2, 0.7, 0.3, 0.8, 0.9])
  assert auroc_lib.auroc(s, y) == 1.0
  assert auroc_lib.auroc(-s, y) == 0.0
  assert auroc_lib.auroc(np.full(6, 0.4), y) == 0.5
  # Invariant to any strictly increasing transform of the scores.
  rng = np.random.default_rng(0)
  s2, y2 = rng.normal(size=50), rng.integers(0, 2, 50)
  assert auroc_lib.auroc(np.exp(3 * s2), y2) == pytest.approx(auroc_lib.auroc(s2, y2), abs=1e-15)


def test_auroc_bad_input():
  with pytest.raises(ValueError, match="both classes"):
    auroc_lib.auroc([0.1, 0.2], [1, 1])
  with pytest.raises(ValueError, match="NaN"):
    auroc_lib.auroc([0.1, np.nan], [0, 1])
  with pytest.raises(ValueError, match="0 or 1"):
    auroc_lib.auroc([0.1, 0.2, 0.3], [0, 1, 2])
  with pytest.raises(ValueError, match="equal length"):
    auroc_lib.auroc([0.1, 0.2], [0, 1, 1])
  with pytest.raises(ValueError, match="empty"):
    auroc_lib.auroc([], [])


def test_positive_probability_is_softmax_class_1():
  rng = np.random.default_rng(1)
  z = rng.normal(size=(20, 2)) * 30  # large gaps: the naive exp would overflow in float32
  e = np.exp(z - z.max(axis=1, keepdims=True))
  np.testing.assert_allclose(auroc_lib.positive_probability(z), e[:, 1] / e.sum(1), rtol=1e-12)
  with pytest.raises(ValueError, match="two-class"):
    auroc_lib.positive_probability(np.zeros((4, 3)))

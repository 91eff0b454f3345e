"""Every bad input is a ValueError naming the problem, raised before any kernel runs."""

import numpy as np
import pytest

import jtransfer.scores as scores
from jtransfer.scores import registry

LABELLED = [
  n for n, s in registry.REGISTRY.items() if s.needs_features and s.needs_labels and s.available()
]
GEOMETRIC = ["sum_of_squares", "rsa", "nc_score", "nc_score_eq2", "knn_accuracy"]


def _good(n=24, d=8, c=3, seed=0):
  rng = np.random.default_rng(seed)
  return rng.normal(size=(n, d)), np.arange(n) % c


def _call(name, x, y, c):
  """The public function and `compute` for one score, each must raise."""
  fn = registry.get(name).fn
  yield lambda: fn(x) if name == "two_nn" else fn(x, y, num_classes=c)
  yield lambda: scores.compute(x, y, num_classes=c, names=[name])


def _bad_inputs():
  x, y = _good()
  nan, inf = x.copy(), x.copy()
  nan[3, 2] = np.nan
  inf[5, 1] = np.inf
  singleton = y.copy()
  singleton[singleton == 2] = 1
  singleton[0] = 2  # class 2 has one sample
  return {
    "NaN": (nan, y, 3, "NaN"),
    "Inf": (inf, y, 3, "Inf"),
    "label too big": (x, np.where(y == 2, 3, y), 3, "out of range"),
    "negative label": (x, np.where(y == 2, -1, y), 3, "out of range"),
    "labels wrong shape": (x, y[:-1], 3, "labels must have shape"),
    "labels 2-d": (x, y[:, None], 3, "labels must have shape"),
    "float labels": (x, y + 0.5, 3, "integers"),
    "num_classes mismatch": (x, y, 5, "num_classes=5 does not match"),
    "empty": (np.zeros((0, 8)), np.zeros((0,), int), 3, "empty"),
    "features 1-d": (x[:, 0], y, 3, "shape"),
  }, (x, singleton, 3)


BAD, SINGLETON = _bad_inputs()


@pytest.mark.parametrize("case", list(BAD))
@pytest.mark.parametrize("name", GEOMETRIC)
def test_bad_inputs_raise(name, case):
  x, y, c, message = BAD[case]
  for call in _call(name, x, y, c):
    with pytest.raises(ValueError, match=message):
      call()


@pytest.mark.parametrize("case", ["NaN", "label too big", "num_classes mismatch", "empty"])
@pytest.mark.parametrize("name", [n for n in LABELLED if n not in GEOMETRIC])
def test_bad_inputs_raise_for_other_feature_scores(name, case):
  x, y, c, message = BAD[case]
  for call in _call(name, x, y, c):
    with pytest.raises(ValueError, match=message):
      call()


def test_singleton_class_where_needed():
  x, y, c = SINGLETON
  need_two = [n for n in LABELLED if registry.get(n).min_per_class >= 2]
  assert {"sum_of_squares", "rsa", "nc_score", "nc_score_eq2"} <= set(need_two)
  for name in need_two:
    for call in _call(name, x, y, c):
      with pytest.raises(ValueError, match=f"{name} needs at least 2 samples per class"):
        call()
  with pytest.raises(ValueError, match="rsa needs at least 2 samples per class"):
    scores.compute(x, y, num_classes=c, names=["two_nn", "rsa"])
  # kNN accuracy is defined with a singleton class (it is never predicted correctly).
  assert 0 <= float(scores.knn_accuracy(x, y, num_classes=c)) <= 1


def test_two_nn_needs_three_points():
  with pytest.raises(ValueError, match="two_nn needs at least 3 samples"):
    scores.two_nn(np.eye(2))
  with pytest.raises(ValueError, match="two_nn needs at least 3 samples"):
    scores.compute(np.eye(2), None, num_classes=None)
  # Enough points, but all exact duplicates or ties: nothing left to fit.
  with pytest.raises(ValueError, match="fewer than 3 points left"):
    scores.two_nn(np.repeat(np.eye(3), 2, axis=0))
  with pytest.raises(ValueError, match="fewer than 3 points left"):
    scores.compute_batched(np.repeat(np.eye(3), 2, axis=0)[None], None, num_classes=None)


def test_constant_rows_rsa():
  x, y = _good()
  x[4] = 1.5
  for call in _call("rsa", x, y, 3):
    with pytest.raises(ValueError, match="rsa: 1 constant feature rows"):
      call()
  xb = np.stack([_good(seed=1)[0], x])
  with pytest.raises(ValueError, match=r"\[\[1, 4\]\]"):  # model 1, sample 4
    scores.compute_batched(xb, y, num_classes=3, names=["rsa"])
  # Other scores are fine with a constant row.
  assert np.isfinite(float(scores.sum_of_squares(x, y, num_classes=3)))


def test_source_probs_and_batched_shapes():
  x, y = _good()
  with pytest.raises(ValueError, match=r"shape \[M, N, D\]"):
    scores.compute_batched(x, y, num_classes=3)
  with pytest.raises(ValueError, match="needs source_probs"):
    scores.compute(x, y, num_classes=3, names=["nce"])
  bad = np.full((24, 4), 0.3)
  with pytest.raises(ValueError, match="sum to 1"):
    scores.compute(x, y, num_classes=3, names=["leep"], source_probs=bad)
  with pytest.raises(ValueError, match="has 23 rows"):
    scores.compute(x, y, num_classes=3, names=["two_nn", "leep"],
                   source_probs=np.full((23, 4), 0.25))  # fmt: skip
  with pytest.raises(ValueError, match="2 models but features has 1"):
    scores.compute_batched(x[None], y, num_classes=3, names=["two_nn", "leep"],
                           source_probs=np.full((2, 24, 4), 0.25))  # fmt: skip
  with pytest.raises(ValueError, match="k ≤ N − 1"):
    scores.compute(x, y, num_classes=3, names=["knn_accuracy"], options={"knn_accuracy": {"k": 24}})
  with pytest.raises(ValueError, match="unknown score 'foo'; valid scores: two_nn"):
    scores.compute(x, y, num_classes=3, names=["foo"])

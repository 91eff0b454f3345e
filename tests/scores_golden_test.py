"""Every default feature score against a stored table of its values before the issue-27 rewrite.

The table `tests/data/scores_golden.json` holds, for a few small probes, the value of every
default feature score computed by the code before the rewrite (main at 5f6aa2f), float64 and
float32. Rewrites of a kernel (a cheaper exact form) must keep the float64 values within 1e-6
relative and the float32 values within their float32 agreement with float64. SFDA's stored
float64 values are themselves checked against the float64 NumPy transcription of the reference
(tests/scores_sfda_test.py), so the table is anchored to an independent reference there.

Regenerate (only with the code the table is meant to freeze, e.g. main on PYTHONPATH):
  PYTHONPATH=/work/main .venv/bin/python tests/scores_golden_test.py --write
"""

import json
import pathlib
import sys

import numpy as np
import pytest

TABLE = pathlib.Path(__file__).resolve().parent / "data" / "scores_golden.json"


def _relu(n, d, c, seed, scale=1.0, sep=0.7):
  """Post-ReLU features with class structure (the benchmarks' probe), times `scale`."""
  rng = np.random.default_rng(seed)
  y = np.arange(n) % c
  x = np.maximum(rng.normal(size=(n, d)) + sep * rng.normal(size=(c, d))[y], 0)
  return scale * x, y, c


def _uneven(n, d, c):
  x, _, _ = _relu(n, d, c, 4)
  y = np.repeat(np.arange(c), [10, 20, 40, 70])
  rng = np.random.default_rng(5)
  return x + 0.7 * rng.normal(size=(c, d))[y], y, c


CASES = {
  # N < D, unit-scale features: SFDA's posterior saturates (λ at its floor), score 1
  "relu_n_lt_d": lambda: _relu(120, 300, 6, 0),
  # N < D, small features and weak classes: λ near 1, SFDA informative
  "relu_n_lt_d_small": lambda: _relu(120, 300, 6, 1, scale=0.02, sep=0.03),
  # N > D (the Gram route, k = D)
  "relu_n_gt_d": lambda: _relu(400, 48, 8, 2),
  # N > D, small features
  "relu_n_gt_d_small": lambda: _relu(400, 48, 8, 3, scale=0.05),
  # N < D, uneven classes (10, 20, 40, 70 samples)
  "uneven": lambda: _uneven(140, 200, 4),
}


def _default_features():
  from jtransfer.scores import registry

  return [n for n in registry.names(labels=True) if registry.REGISTRY[n].needs_features]


def _values(dtype):
  import jtransfer.scores as scores

  out = {}
  for case, build in CASES.items():
    x, y, c = build()
    y = np.asarray(y, np.int32)
    got = scores.compute(x.astype(dtype), y, num_classes=c, names=_default_features())
    out[case] = {k: float(v) for k, v in got.items()}
  return out


def _write():
  import jax

  jax.config.update("jax_enable_x64", True)
  f64 = _values(np.float64)
  jax.config.update("jax_enable_x64", False)
  f32 = _values(np.float32)
  TABLE.write_text(json.dumps({"float64": f64, "float32": f32}, indent=1, sort_keys=True) + "\n")


def _table():
  return json.loads(TABLE.read_text())


def test_float64_values_equal_the_stored_table(x64):
  table = _table()["float64"]
  got = _values(np.float64)
  for case, want in table.items():
    for name, value in want.items():
      np.testing.assert_allclose(got[case][name], value, rtol=1e-6, err_msg=f"{case} {name}")


def test_float32_values_equal_the_stored_table():
  table = _table()["float32"]
  got = _values(np.float32)
  for case, want in table.items():
    for name, value in want.items():
      np.testing.assert_allclose(got[case][name], value, rtol=1e-4, atol=1e-6,
                                 err_msg=f"{case} {name}")  # fmt: skip


@pytest.mark.parametrize("case", sorted(CASES))
def test_stored_sfda_equals_the_numpy_reference(case):
  from scores_sfda_test import sfda_reference

  x, y, c = CASES[case]()
  want = sfda_reference(x, y, c)
  np.testing.assert_allclose(_table()["float64"][case]["sfda"], want, rtol=1e-8)


def test_the_cases_cover_saturated_and_informative_sfda():
  sfda = {case: v["sfda"] for case, v in _table()["float64"].items()}
  assert sfda["relu_n_lt_d"] == 1.0
  assert sfda["relu_n_lt_d_small"] < 0.999 and sfda["relu_n_gt_d"] < 0.999


if __name__ == "__main__":
  if sys.argv[1:] != ["--write"]:
    sys.exit("usage: PYTHONPATH=<the code to freeze> python tests/scores_golden_test.py --write")
  _write()

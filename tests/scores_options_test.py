"""One validation path: compute, compute_batched, the single functions and the CLI reject the
same bad options and inputs with the same one-line error (issue 11 item 2)."""

import pathlib
import subprocess
import sys

import jax.numpy as jnp
import numpy as np
import pytest

import jtransfer.scores as scores
from jtransfer.scores import table

ROOT = pathlib.Path(__file__).resolve().parents[1]


def _data(n=24, d=6, c=3):
  rng = np.random.default_rng(0)
  y = np.arange(n) % c
  return (rng.normal(size=(n, d)) + 3 * rng.normal(size=(c, d))[y]).astype(np.float32), y


def _paths(name, x, y, c, options):
  """Every way to ask for one score with `options`: compute, compute_batched, the function."""
  one = options.get(name, {})
  fn = getattr(scores, name)
  yield lambda: scores.compute(x, y, num_classes=c, names=[name], options=options)
  yield lambda: scores.compute_batched(x[None], y, num_classes=c, names=[name], options=options)
  yield lambda: fn(x, **one) if name == "two_nn" else fn(x, y, num_classes=c, **one)


def _raises_one_line(call, message):
  with pytest.raises(ValueError, match=message) as info:
    call()
  assert "\n" not in str(info.value)


@pytest.mark.parametrize(
  "name, option, value, message",
  [
    ("two_nn", "fraction", 1.5, r"two_nn option fraction must be a finite number in \(0, 1\]"),
    ("two_nn", "fraction", 0, r"in \(0, 1\], got 0"),
    ("gbc", "pca_dim", -3, "gbc option pca_dim must be an integer pca_dim ≥ 1, got -3"),
    ("gbc", "pca_dim", 2.5, "pca_dim must be an integer"),
    ("gbc", "gaussian", "full", "unknown gbc option gaussian='full'"),
    ("transrate", "eps", -1, r"transrate option eps must be a finite number in \(0, ∞\), got -1"),
    ("transrate", "eps", float("inf"), "eps must be a finite number"),
    ("knn_accuracy", "k", 0, "k ≤ N − 1 = 23, got 0"),
    ("knn_accuracy", "k", 2.0, "must be an integer"),
    ("logme", "schedule", "fast", "unknown logme option schedule='fast'"),
  ],
)
def test_bad_options_same_error_everywhere(name, option, value, message):
  x, y = _data()
  for call in _paths(name, x, y, 3, {name: {option: value}}):
    _raises_one_line(call, message)


def test_bad_inputs_named():
  x, y = _data()
  for call in _paths("rsa", x, y.astype(str), 3, {}):
    _raises_one_line(call, "labels must be integers .class indices., got dtype <U")
  for call in _paths("rsa", x, y, 4.7, {}):
    _raises_one_line(call, "num_classes must be a positive integer, got 4.7")
  for call in _paths("rsa", x, y, True, {}):
    _raises_one_line(call, "num_classes must be a positive integer, got True")
  _raises_one_line(lambda: scores.compute(x, y, num_classes=3, names=[]), "names is empty")
  _raises_one_line(lambda: scores.compute_batched(x[None], y, num_classes=3, names=[]),
                   "names is empty")  # fmt: skip
  _raises_one_line(lambda: scores.compute(x.astype(complex), y, num_classes=3),
                   "features must be a real numeric array, got dtype complex128")  # fmt: skip
  _raises_one_line(lambda: scores.compute(x, y, num_classes=3, names=["leep"]),
                   "score 'leep' needs source_probs")  # fmt: skip
  # an integral float is a valid class count
  assert float(scores.rsa(x, y, num_classes=3.0)) == float(scores.rsa(x, y, num_classes=3))


@pytest.mark.parametrize("dtype", [np.float16, jnp.bfloat16])
def test_low_precision_features_are_computed_in_float32(dtype):
  x, y = _data()
  low = x.astype(dtype)
  got = scores.compute(low, y, num_classes=3)
  want = scores.compute(low.astype(np.float32), y, num_classes=3)
  for name, value in got.items():
    assert value.dtype == jnp.float32, name
    assert float(value) == float(want[name]), name
  assert float(scores.logme(low, y, num_classes=3)) == float(want["logme"])


def test_feature_sets_missing_inputs(tmp_path):
  x, y = _data()
  np.savez(tmp_path / "nolabels.npz", features=x)
  np.savez(tmp_path / "noprobs.npz", features=x, labels=y)
  sets = table.load_feature_sets([tmp_path / "nolabels.npz", tmp_path / "noprobs.npz"])
  skipped = {}
  results = table.score_feature_sets(sets, skipped=skipped)
  assert sorted(results["nolabels"]) == ["etran_energy", "two_nn"]  # the label-free scores
  assert "leep" not in results["noprobs"] and "logme" in results["noprobs"]
  note = skipped["nolabels"]
  assert (
    note.startswith("nolabels: skipped sum_of_squares, rsa,") and "(no labels in the file)" in note
  )
  assert "leep, nce (no source_probs and labels in the file)" in note
  assert skipped["noprobs"] == "noprobs: skipped leep, nce (no source_probs in the file)"
  with pytest.raises(ValueError, match="feature set 'nolabels': score 'rsa' needs labels"):
    table.score_feature_sets(sets, names=["two_nn", "rsa"])
  np.savez(tmp_path / "strlabels.npz", features=x, labels=y.astype(str))
  with pytest.raises(ValueError, match="labels must be integers"):
    table.score_feature_sets(table.load_feature_sets([tmp_path / "strlabels.npz"]))


@pytest.mark.slow  # runs the CLI in subprocesses
def test_cli_one_line_errors_and_notes(tmp_path):
  x, y = _data()
  np.savez(tmp_path / "noprobs.npz", features=x, labels=y)
  np.savez(tmp_path / "nolabels.npz", features=x)
  cli = [sys.executable, str(ROOT / "launch" / "score_features.py"), "--features"]
  run = lambda *args: subprocess.run(
    [*cli, *args], capture_output=True, text=True, cwd=tmp_path, timeout=600, check=False
  )  # noqa: E731
  bad = run(str(tmp_path / "noprobs.npz"), "--scores", "leep")
  assert bad.returncode != 0
  assert bad.stderr.strip().splitlines()[-1] == (
    "error: feature set 'noprobs': score 'leep' needs source_probs, which the file does not have"
  )
  ok = run(str(tmp_path / "nolabels.npz"))
  assert ok.returncode == 0, ok.stderr[-2000:]
  assert "note: nolabels: skipped sum_of_squares, rsa," in ok.stdout


def test_non_finite_results_are_named_errors():
  x, y = _data()
  for call in _paths("transrate", x * 1e20, y, 3, {}):
    _raises_one_line(call, r"transrate is not finite.*: \(scale of the features\)².*overflows")
  # every class holds the same 8 samples: equal class means, zero between-class distance
  same = np.tile(x[:8], (3, 1))
  labels = np.repeat(np.arange(3), 8)
  for call in _paths("nc_score", same, labels, 3, {}):
    _raises_one_line(call, "nc_score is not finite.*all class means coincide")
  # the scale-invariant scores do not overflow at 1e20 (features are normalised before Grams)
  big = scores.compute(x * 1e20, y, num_classes=3, names=["logme", "h_score_shrinkage", "rsa"])
  ref = scores.compute(x, y, num_classes=3, names=["logme", "h_score_shrinkage", "rsa"])
  for name, value in big.items():
    np.testing.assert_allclose(float(value), float(ref[name]), rtol=1e-5, err_msg=name)

"""End to end: .npz feature sets -> launch/score_features.py -> table, CSV and JSON."""

import csv
import json
import pathlib
import subprocess
import sys

import numpy as np
import pytest

from jtransfer.scores import registry

ROOT = pathlib.Path(__file__).resolve().parents[1]


def _ref_sum_of_squares(x, y):
  ssw = sum(((x[y == c] - x[y == c].mean(0)) ** 2).sum() for c in np.unique(y))
  return ssw / ((x - x.mean(0)) ** 2).sum()


def _ref_leep(probs, y, c):
  joint = np.stack([probs[y == k].sum(0) for k in range(c)]) / len(y)  # [C, Cs]
  cond = joint / joint.sum(0, keepdims=True)
  return np.mean(np.log((probs * cond[y]).sum(1)))


def _set(rng, n=30, c=3, cs=5):
  y = np.arange(n) % c
  x = rng.normal(size=(n, 4, 4, 2)) + rng.normal(size=(c, 4, 4, 2))[y]
  logits = rng.normal(size=(n, cs))
  probs = np.exp(logits) / np.exp(logits).sum(1, keepdims=True)
  return x.astype(np.float32), y, probs.astype(np.float32)


@pytest.mark.slow  # runs the CLI in a subprocess
def test_score_features_end_to_end(tmp_path):
  rng = np.random.default_rng(0)
  a, b1, b2 = _set(rng), _set(rng), _set(rng)
  np.savez(tmp_path / "a.npz", features=a[0], labels=a[1], source_probs=a[2])
  np.savez(tmp_path / "b.npz", **{
    "s1/features": b1[0], "s1/labels": b1[1], "s1/source_probs": b1[2],
    "s2/features": b2[0], "s2/labels": b2[1], "s2/source_probs": b2[2],
    "unlabelled/features": b2[0],
  })  # fmt: skip
  prefix = tmp_path / "out" / "scores"
  proc = subprocess.run(
    [sys.executable, str(ROOT / "launch" / "score_features.py"), "--features",
     str(tmp_path / "a.npz"), str(tmp_path / "b.npz"), "--output", str(prefix)],
    capture_output=True, text=True, cwd=tmp_path, timeout=600, check=False,
  )  # fmt: skip
  assert proc.returncode == 0, proc.stderr[-3000:]
  lines = proc.stdout.splitlines()
  header = lines[0].split()
  assert header[:3] == ["feature", "set", "two_nn"]
  assert "rsa ↑" in lines[0] and "sum_of_squares ↓" in lines[0] and "leep ↑" in lines[0]
  assert [ln.split()[0] for ln in lines[2:6]] == ["a", "s1", "s2", "unlabelled"]
  assert "↑ higher is better, ↓ lower is better" in proc.stdout

  doc = json.loads((tmp_path / "out" / "scores.json").read_text())
  assert doc["higher_is_better"]["two_nn"] is False and doc["higher_is_better"]["leep"] is True
  # no labels: only the label-free scores apply (TWO-NN, ETran's energy term)
  assert sorted(doc["scores"]["unlabelled"]) == ["etran_energy", "two_nn"]
  # Every default score (registry.names: N-LEEP only by name), LEEP and NCE from source_probs.
  n_default = len(registry.names(features=True, labels=True, source_probs=True))
  assert n_default == 21 and len(doc["scores"]["a"]) == n_default
  for name, (x, y, probs) in {"a": a, "s1": b1, "s2": b2}.items():
    x64 = x.reshape(len(x), -1).astype(np.float64)
    np.testing.assert_allclose(doc["scores"][name]["sum_of_squares"], _ref_sum_of_squares(x64, y),
                               rtol=1e-4)  # fmt: skip
    np.testing.assert_allclose(doc["scores"][name]["leep"],
                               _ref_leep(probs.astype(np.float64), y, 3), rtol=1e-4)  # fmt: skip
  with open(tmp_path / "out" / "scores.csv") as f:
    rows = list(csv.DictReader(f))
  assert len(rows) == 3 * n_default + 2  # the unlabelled set: two_nn and etran_energy
  for row in rows:
    assert float(row["value"]) == doc["scores"][row["feature_set"]][row["score"]]
    assert row["higher_is_better"] == str(doc["higher_is_better"][row["score"]])


def test_bad_file_is_a_clear_error(tmp_path):
  from jtransfer.scores import table

  np.savez(tmp_path / "bad.npz", feats=np.zeros((3, 2)))
  with pytest.raises(ValueError, match="unexpected key 'feats'"):
    table.load_feature_sets([tmp_path / "bad.npz"])
  with pytest.raises(ValueError, match="not found"):
    table.load_feature_sets([tmp_path / "missing.npz"])

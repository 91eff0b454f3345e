"""configs/thesis_vgg.py:tiny end to end, by its documented commands: import torchvision-layout
VGG-16 weights, then score, fine-tune and evaluate on an image folder."""

import os
import pathlib
import subprocess
import sys

import pytest

from jtransfer.cli import overrides as config_cli
from jtransfer.store import results

REPO = pathlib.Path(__file__).resolve().parents[1]
thesis_vgg = config_cli.load_module(REPO / "configs" / "thesis_vgg.py")


def _run(args, cwd, env):
  out = subprocess.run(
    [sys.executable, *args], cwd=cwd, env=env, capture_output=True, text=True, timeout=1200
  )
  assert out.returncode == 0, f"{args[0]} failed:\n{out.stdout[-3000:]}\n{out.stderr[-5000:]}"
  return out.stdout


def test_tiny_config_matches_its_sources():
  c = thesis_vgg.get_config("tiny")
  assert [e["source"] for e in c.imports] == ["tiny_a", "tiny_b"]
  assert c.score.targets == c.finetune.targets == ["custom3d_tiny"]
  full = thesis_vgg.get_config()
  assert full.finetune.modes == ["last_block", "full"] and full.finetune.optimizer == "sgd"
  assert {e["arch"] for e in full.imports} == {"vgg16"}


@pytest.mark.slow
def test_thesis_vgg_tiny_end_to_end(tmp_path):
  # The fixtures, by the command the config's docstring names.
  env = {**os.environ, "JTRANSFER_QUIET": "1", "PYTHONPATH": str(REPO),
         "JTRANSFER_CACHE_DIR": str(tmp_path / "cache")}  # fmt: skip
  _run([str(REPO / "scripts" / "make_vgg_tiny_fixtures.py")], tmp_path, env)
  assert "scripts/make_vgg_tiny_fixtures.py" in thesis_vgg.__doc__
  config = f"--config={REPO / 'configs' / 'thesis_vgg.py'}:tiny"
  wd = tmp_path / "runs" / "thesis_vgg_tiny"
  _run([str(REPO / "launch" / "import_zoo.py"), config, f"--workdir={wd}"], tmp_path, env)
  out = _run(
    [str(REPO / "launch" / "sweep.py"), config, f"--workdir={wd}",
     "--stages=score,finetune,evaluate"], tmp_path, env,
  )  # fmt: skip
  ckpts = results.load(wd, "checkpoints")
  assert sorted(ckpts["source"]) == ["tiny_a", "tiny_b"]
  scores = results.load(wd, "scores")
  taps = {"pool1", "pool2", "pool3", "pool4", "pool5", "fc6", "fc7", "logits"}
  assert taps <= set(scores["layer"])
  assert {"leep", "logme", "two_nn", "rsa", "knn_accuracy"} <= set(scores["score"])
  assert scores.groupby(["source"]).size().to_dict().keys() == {"tiny_a", "tiny_b"}
  leep = scores[scores.score == "leep"]["value"]
  assert len(leep) == 2 and (leep < 0).all()  # LEEP is a mean log-likelihood: below 0
  ft = results.load(wd, "finetune")
  assert {"tiny_a", "tiny_b", "random_init", "scratch"} <= set(ft["source"])
  assert {"last_block", "full"} <= set(ft["mode"])
  assert set(ft.loc[ft["mode"] == "last_block", "frozen_layers"]) == {12}  # 13 convs, last trains
  report = wd / "report.md"
  assert report.is_file() and "custom3d_tiny" in report.read_text()
  assert "report" in out

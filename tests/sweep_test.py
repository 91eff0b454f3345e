"""End to end: the tiny variant of the thesis sweep produces every table, figure and the report."""

import pathlib
import sys

import pytest

from jtransfer import results, sweep

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parents[1]))
from configs import thesis_cnn  # noqa: E402


@pytest.mark.slow
def test_tiny_sweep_end_to_end(tmp_path, data_dir):
  c = thesis_cnn.get_config("tiny").to_dict()
  report = sweep.run(
    workdir=tmp_path,
    sources=c["sources"],
    pretrain={**c["pretrain"], "show_progress": False},
    score=c["score"],
    finetune=c["finetune"],
    evaluate=c["evaluate"],
    data_dir=str(data_dir),
  )
  ckpts = results.load(tmp_path, "checkpoints")
  scores = results.load(tmp_path, "scores")
  ft = results.load(tmp_path, "finetune")
  # 2 sources x 2 seeds, every scheduled step of a 12-step run (0, 1, 3, 10 and the epochs).
  assert set(ckpts["source"]) == {"mnist", "mnist_noise"}
  assert set(ckpts["seed"]) == {0, 1}
  assert {0, 1, 3, 10} <= set(ckpts["step"])
  # Every checkpoint scored at every tap of the CNN with the feature scores and baselines.
  assert set(scores["layer"]) >= {"conv1", "pool1", "conv2", "pool2", "fc1"}
  assert {"rsa", "two_nn", "logme", "leep", "knn_accuracy", "checkpoint_index"} <= set(
    scores["score"]
  )
  scored = scores.groupby(["source", "seed", "step"]).size()
  assert len(scored) == len(ckpts)
  # Fine-tune curves for every checkpoint plus the scratch baseline, at the log schedule.
  assert "scratch" in set(ft["source"])
  assert {0, 1, 3, 10} <= set(ft["ft_step"])
  assert report is not None and pathlib.Path(report).is_file()
  text = pathlib.Path(report).read_text()
  assert "Spearman" in text or "spearman" in text
  figures = list((tmp_path / "figures").glob("*.png"))
  assert len(figures) >= 4

  # A rerun with the same workdir skips every finished unit and leaves the tables unchanged.
  n_rows = (len(ckpts), len(scores), len(ft))
  sweep.run(
    workdir=tmp_path,
    sources=c["sources"],
    pretrain={**c["pretrain"], "show_progress": False},
    score=c["score"],
    finetune=c["finetune"],
    evaluate=c["evaluate"],
    stages=("pretrain", "score", "finetune"),
    data_dir=str(data_dir),
  )
  again = tuple(len(results.load(tmp_path, t)) for t in ("checkpoints", "scores", "finetune"))
  assert again == n_rows


def _record_workdir(workdir):
  """A report function for the hook test: leaves a file behind and returns its path."""
  path = pathlib.Path(workdir) / "recorded.txt"
  path.write_text(str(workdir))
  return path


def test_reports_are_resolved_before_any_stage_and_run_after_evaluate(tmp_path, monkeypatch):
  calls = []
  monkeypatch.setattr("jtransfer.analysis.run", lambda workdir, **kw: calls.append("evaluate"))
  no_stage = dict(sources=[], pretrain={}, score={}, finetune={}, evaluate={})
  sweep.run(
    workdir=tmp_path,
    stages=("evaluate",),
    reports=["tests.sweep_test:_record_workdir"],
    **no_stage,
  )
  assert calls == ["evaluate"]
  assert (tmp_path / "recorded.txt").read_text() == str(tmp_path)
  # A bad name fails before any work (the evaluate stage is never reached).
  for name, match in (
    ("tests.sweep_test", "package.module:function"),
    ("tests.no_such_module:plot", "cannot import"),
    ("tests.sweep_test:no_such_function", "no function 'no_such_function'"),
  ):
    with pytest.raises(ValueError, match=match):
      sweep.run(workdir=tmp_path / "bad", stages=("evaluate",), reports=[name], **no_stage)
    assert calls == ["evaluate"] and not (tmp_path / "bad").exists()


def test_study_configs_name_reports_that_exist():
  from configs import audio_nc, audio_scale

  for config in (audio_scale.get_config("quick"), audio_nc.get_config("quick")):
    for name in config.reports:
      assert callable(sweep.resolve_report(name))

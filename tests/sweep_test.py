"""End to end: the tiny variant of the thesis sweep produces every table, figure and the report,
with the same numbers as before the jobs layer was rebuilt (issue 12)."""

import pathlib

import numpy as np
import pandas as pd
import pytest

from jtransfer import studies
from jtransfer.cli import overrides as config_cli
from jtransfer.jobs import sweep
from jtransfer.store import results

CONFIGS = pathlib.Path(__file__).resolve().parents[1] / "configs"
thesis_cnn = config_cli.load_module(CONFIGS / "thesis_cnn.py")

_TABLES = ("checkpoints", "scores", "finetune")
_BEFORE = pathlib.Path(__file__).parent / "data" / "tiny_sweep_before"


def _run_tiny(workdir, data_dir, **kw):
  # Seeds and fine-tune members stacked over the devices ("devices"), the layout the stored
  # tables below were written with ("auto" on CPU is now "sequential": the same training up to
  # float summation order, which tests/train_pretrain_test.py and finetune_test.py compare).
  c = thesis_cnn.get_config("tiny").to_dict()
  plan = sweep.plan(
    workdir=workdir,
    sources=c["sources"],
    pretrain={**c["pretrain"], "show_progress": False, "seed_parallel": "devices"},
    score=c["score"],
    finetune={**c["finetune"], "seed_parallel": "devices"},
    evaluate=c["evaluate"],
    data_dir=str(data_dir),
    **kw,
  )
  return sweep.run(plan)


@pytest.fixture(scope="module")
def tiny(tmp_path_factory, data_dir):
  """One tiny sweep for the tests below: (workdir, report path, its tables as first written)."""
  workdir = tmp_path_factory.mktemp("tiny_sweep")
  report = _run_tiny(workdir, data_dir)
  return workdir, report, {t: results.load(workdir, t) for t in _TABLES}


@pytest.mark.slow
def test_tiny_sweep_end_to_end(tiny, data_dir):
  workdir, report, tables = tiny
  ckpts, scores, ft = (tables[t] for t in _TABLES)
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
  figures = list((workdir / "figures").glob("*.png"))
  assert len(figures) >= 4

  # A rerun with the same workdir skips every finished unit and leaves the tables unchanged.
  n_rows = (len(ckpts), len(scores), len(ft))
  _run_tiny(workdir, data_dir, stages=("pretrain", "score", "finetune"))
  again = tuple(len(results.load(workdir, t)) for t in _TABLES)
  assert again == n_rows


# The tables the tiny sweep wrote with the code from before issue 12's changes (the same run as
# `tiny`: configs/thesis_cnn.py:tiny through sweep.run, 8 fake CPU devices), cut to the columns
# that define values. Columns and tables added since (metrics, val_*, failures, ...) are not
# compared.
_KEYS = {
  "checkpoints": ["source", "arch", "seed", "step"],
  "scores": ["source", "arch", "seed", "step", "target", "probe", "layer", "score"],
  "finetune": ["source", "arch", "seed", "step", "target", "mode", "frozen_layers"]
  + ["ft_seed", "ft_step"],
}
# Training and fine-tuning code did not change arithmetic: the same programs on the same
# (deterministic) CPU backend give the same bits, so their tolerance is float32 rounding only.
_TRAIN_TOL = dict(rtol=1e-6, atol=1e-7)
# Feature scores were made more accurate in float32 this round (features centred before the Gram
# forms, RSA rewritten, TransRate through log1p), so they move in the last digits. Largest
# relative changes measured against the stored tables: gbc 3.9e-4 (|values| ~1e-2, abs 2.6e-5),
# logme 2.0e-5, rsa 1.3e-5, the others <= 1.3e-6; checkpoint_index, param_count, knn_accuracy,
# leep, nce unchanged. The three largest gbc changes all moved towards a float64 recomputation
# from the same features (errors 5.9e-6, 1.7e-6, 3.2e-6 before; 1.4e-6, 2.9e-7, 2.6e-8 now).
# 1e-3 relative leaves room for that and still catches a changed formula;
# the scores whose code did not change keep the training tolerance.
_SCORE_TOL = dict(rtol=1e-3, atol=1e-6)
_UNCHANGED_SCORES = ("checkpoint_index", "param_count", "knn_accuracy", "leep", "nce")


def _tolerance(table, merged):
  """rtol, atol for each row of `merged`."""
  if table != "scores":
    return _TRAIN_TOL["rtol"], _TRAIN_TOL["atol"]
  same = merged["score"].isin(_UNCHANGED_SCORES).to_numpy()
  return tuple(np.where(same, _TRAIN_TOL[k], _SCORE_TOL[k]) for k in ("rtol", "atol"))


def _compare(table, before, after):
  keys = _KEYS[table]
  assert not after.duplicated(keys).any(), f"{table}: duplicate keys"
  if table == "scores":
    # Scores added since the tables were stored (SFDA, PARC: issue 24) have no old value.
    after = after[after["score"].isin(set(before["score"]))]
  merged = before.merge(after, on=keys, how="outer", suffixes=("_before", ""), indicator=True)
  missing = merged[merged["_merge"] != "both"]
  assert missing.empty, f"{table}: rows only on one side:\n{missing[keys + ['_merge']]}"
  for col in (c for c in before.columns if c not in keys):
    was, now = merged[f"{col}_before"], merged[col]
    rtol, atol = _tolerance(table, merged)
    close = np.isclose(now, was, rtol=rtol, atol=atol, equal_nan=True)
    if table == "scores":
      # LogME ("converged") now returns the global maximum of the evidence over t = α/β; before,
      # the local maximum with the largest t. Where they differ (post-ReLU layers dominated by
      # the features' mean: pool2 here, up to 10 % higher) the new value can only be higher,
      # since both are maxima of the same function. tests/scores_spectral_test.py checks the new
      # value against a numerical maximisation in float64.
      close |= (merged["score"] == "logme").to_numpy() & (now.to_numpy() >= was.to_numpy())
      # The H-score where N - 1 <= D is now stored undefined (jtransfer.scores.regimes): the
      # tiny probe has fewer samples than features at every layer, and the old value there is
      # the closed form C - 1 = 9 for the 10-class targets, nothing else.
      undefined = (merged["score"] == "h_score").to_numpy() & now.isna().to_numpy()
      assert np.array_equal(was.to_numpy()[undefined], np.full(undefined.sum(), 9.0))
      close |= undefined
    diff = merged.loc[~close, keys + [f"{col}_before", col]]
    assert close.all(), f"{table}.{col} differs:\n{diff}"


@pytest.mark.slow
@pytest.mark.parametrize("table", _TABLES)
def test_tiny_sweep_tables_match_those_from_before_the_rebuild(tiny, table):
  before = pd.read_csv(_BEFORE / f"{table}.csv")
  after = tiny[2][table]
  # checkpoint_index is now written from the zoo record rather than recomputed from the
  # pre-training schedule; its rows are compared like the others (same keys, same value), which
  # checks that the record gives the index the schedule gave.
  if table == "scores":  # scores registered since (issue 24: sfda, parc, nleep) have no rows before
    after = after[after["score"].isin(set(before["score"]))]
  _compare(table, before, after)


def test_studies_are_checked_before_any_stage_and_run_in_the_evaluate_stage(tmp_path, monkeypatch):
  calls = []
  monkeypatch.setattr(
    "jtransfer.studies.write_report", lambda workdir, config: calls.append(config) or []
  )
  no_stage = dict(sources=[], pretrain={}, score={}, finetune={}, evaluate=None)
  sweep.run(sweep.plan(workdir=tmp_path, stages=("evaluate",), studies=["gradual"], **no_stage))
  # evaluate None: the study alone; the config is recorded for `python -m jtransfer report`.
  assert [(c.evaluate, c.studies) for c in calls] == [(None, ("gradual",))]
  assert studies.recorded(tmp_path) == calls[0]
  # Neither a standard report nor a study: no evaluate call at all.
  sweep.run(sweep.plan(workdir=tmp_path, stages=("evaluate",), **no_stage))
  assert len(calls) == 1
  # A bad name fails before any work (the evaluate stage is never reached).
  with pytest.raises(ValueError, match="^studies: unknown studies 'plot'"):
    sweep.plan(workdir=tmp_path / "bad", stages=("evaluate",), studies=["plot"], **no_stage)
  assert len(calls) == 1 and not (tmp_path / "bad").exists()


def test_study_configs_name_studies_that_exist():
  named = {}
  for name in ("audio_scale", "audio_nc", "gradual_transfer", "thesis_cnn"):
    config = config_cli.load(f"{CONFIGS / name}.py:quick")
    named[name] = tuple(config.studies)
    assert all(callable(m.report) for m in studies.resolve(config.studies))
  assert named == {
    "audio_scale": ("audio_scale",),
    "audio_nc": ("neural_collapse",),
    "gradual_transfer": ("gradual",),
    "thesis_cnn": ("thesis",),
  }

"""The zoo contract: one record per checkpoint, one selection, the disk as the truth, and
corrupt checkpoints recorded as failures instead of scored."""

import dataclasses
import pathlib
import shutil

import jax
import numpy as np
import pytest
from checkpointing_test import flip_bytes
from score_job_test import PER_CLASS, SYNTH, register_synth
from stage_calls import run_job

from jtransfer.analysis import report
from jtransfer.jobs import score as score_job
from jtransfer.models import functional
from jtransfer.store import checkpointing, results, zoo

ARCH = "cnn_tiny"


def _entry(source="mnist", seed=0, step=3, **kw):
  base = dict(source=source, arch=ARCH, seed=seed, step=step, num_classes=10,
              model_kwargs={}, index=2, epoch=step / 10, metrics={"test_acc": 0.5})  # fmt: skip
  return zoo.Entry(**{**base, **kw})


def _params(num_classes=10, seed=0):
  return jax.tree.map(np.asarray, functional.init(ARCH, num_classes=num_classes, seed=seed)[1])


def test_written_record_reads_back_with_path_and_content_hash(tmp_path):
  params = _params()
  written = zoo.write_entry(tmp_path, _entry(), params)
  path = checkpointing.checkpoint_path(tmp_path, "mnist", ARCH, 0, 3).absolute()
  assert written.path == str(path)
  assert written.content_hash == checkpointing.tree_hash(params)
  read = zoo.read_entry(path)
  assert read == written
  assert dataclasses.replace(read, path=None, content_hash=None) == _entry()
  # The record rebuilds the model: its abstract params have the saved shapes.
  _, abstract, _ = functional.abstract_init(
    read.arch, num_classes=read.num_classes, **read.model_kwargs
  )
  assert jax.tree.map(lambda s: s.shape, abstract) == jax.tree.map(np.shape, params)
  # An imported checkpoint says where it came from.
  origin = {"file": "w.pth", "file_sha256": "ab" * 32, "original_keys": {"fc.weight": "head"}}
  imp = zoo.write_entry(
    tmp_path, _entry(seed=7, step=0, index=0, origin=zoo.IMPORTED, imported_from=origin), params
  )
  assert zoo.read_entry(imp.path).imported_from == origin
  with pytest.raises(ValueError, match="imported_from"):
    _entry(origin=zoo.IMPORTED)
  with pytest.raises(ValueError, match="lacks"):
    _entry(origin=zoo.IMPORTED, imported_from={"file": "w.pth"})
  with pytest.raises(ValueError, match="origin"):
    _entry(origin="downloaded")
  with pytest.raises(ValueError, match="num_classes and model_kwargs"):
    zoo.write_entry(tmp_path, _entry(seed=9, model_kwargs=None), params)


def test_select_filters_sorts_and_names_unreadable_checkpoints(tmp_path):
  for source, seed, step in [("mnist", 1, 3), ("mnist", 0, 10), ("fashion_mnist", 0, 0)]:
    zoo.write_entry(tmp_path, _entry(source, seed, step), _params())
  got = zoo.select(tmp_path)
  assert [e.key[::2] for e in got] == [("fashion_mnist", 0), ("mnist", 0), ("mnist", 1)]
  assert [e.step for e in zoo.select(tmp_path, sources=["mnist"], seeds=[0])] == [10]
  assert zoo.select(tmp_path, steps=[99]) == []
  # Explicit items: a directory, a dict (zoo layout by default), an Entry.
  explicit = zoo.select(tmp_path, [got[2].path, {"source": "mnist", "arch": ARCH, "seed": 0,
                                                  "step": 10}, got[0]])  # fmt: skip
  assert [e.key for e in explicit] == [e.key for e in got]
  with pytest.raises(ValueError, match="listed twice"):
    zoo.select(tmp_path, [got[0], got[0].path])
  with pytest.raises(ValueError, match="records"):
    zoo.select(tmp_path, [{"source": "mnist", "arch": ARCH, "seed": 5, "step": 10,
                           "path": got[1].path}])  # fmt: skip
  # A damaged step directory is an error naming it, never a silently shorter zoo.
  bad = pathlib.Path(got[1].path)
  (bad / "meta" / "metadata").unlink()
  with pytest.raises(ValueError, match=f"zoo checkpoint {bad} is incomplete"):
    zoo.select(tmp_path)


def test_a_checkpoint_without_a_record_is_refused_naming_migrate(tmp_path):
  odd = checkpointing.save(tmp_path / "elsewhere", _params())
  with pytest.raises(ValueError, match="python -m jtransfer migrate WORKDIR"):
    zoo.select(tmp_path, [str(odd)])


def test_shared_model_kwargs_refuses_a_mix():
  a, b = _entry(model_kwargs={"width": 2}), _entry(seed=1, model_kwargs={"width": 4})
  assert zoo.shared_model_kwargs([a], ARCH) == {"width": 2}
  assert zoo.shared_model_kwargs([a, b], ARCH, fit=lambda kw: {}) == {}
  with pytest.raises(ValueError, match="different model_kwargs"):
    zoo.shared_model_kwargs([a, b], ARCH)


# -- corrupt checkpoints in the jobs ----------------------------------------------------------


def _write_zoo(workdir, keys):
  for k, (source, seed, step) in enumerate(keys):
    zoo.write_entry(workdir, _entry(source, seed, step, index=k), _params(seed=100 + k))


def test_score_job_records_a_corrupt_checkpoint_and_scores_the_rest(tmp_path):
  register_synth()
  keys = [("mnist", 0, 0), ("mnist", 0, 3), ("mnist", 1, 0)]
  bad_key = keys[1]
  corrupt, clean = tmp_path / "corrupt", tmp_path / "clean"
  _write_zoo(corrupt, keys)
  _write_zoo(clean, keys)
  shutil.rmtree(checkpointing.checkpoint_path(clean, *bad_key[:1], ARCH, *bad_key[1:]))
  bad_path = checkpointing.checkpoint_path(corrupt, bad_key[0], ARCH, *bad_key[1:]).absolute()
  flip_bytes(bad_path)
  kw = dict(target=SYNTH, probe_per_class=PER_CLASS, layers=("pool2",),
            scores=["logme", "knn_accuracy", "checkpoint_index"], show_progress=False)  # fmt: skip
  summary = run_job(score_job, workdir=corrupt, **kw)
  assert (summary["scored"], summary["failed"]) == (2, 1)
  got = results.load(corrupt, "scores")
  assert bad_key not in set(zip(got.source, got.seed, got.step, strict=True))
  failed = results.load(corrupt, "failures")
  assert len(failed) == 1
  row = failed.iloc[0]
  assert (row.job, row.source, row.seed, row.step, row.target) == ("score", *bad_key, SYNTH)
  assert f"checkpoint {bad_path} is corrupt" in row.error
  # The others score as they do in a zoo without the corrupt one.
  run_job(score_job, workdir=clean, **kw)
  want = results.load(clean, "scores")
  cols = ["source", "seed", "step", "layer", "score"]
  np.testing.assert_allclose(
    got.sort_values(cols).value.to_numpy(), want.sort_values(cols).value.to_numpy(), rtol=1e-5
  )
  assert got.value.notna().all() and len(got) == len(want) == 2 * 3
  # The report lists it.
  doc = report.Doc()
  report.failures_section(doc, corrupt)
  text = doc.markdown()
  assert "Failed checkpoints" in text and "is corrupt" in text
  empty = report.Doc()
  report.failures_section(empty, clean)
  assert empty.markdown().strip() == ""
  # A rerun tries it again (still corrupt: still one failure, still not scored); repaired, it
  # is scored and its failure is forgotten.
  assert run_job(score_job, workdir=corrupt, **kw)["failed"] == 1
  shutil.rmtree(bad_path)
  zoo.write_entry(corrupt, _entry(*bad_key, index=1), _params(seed=101))
  assert run_job(score_job, workdir=corrupt, **kw)["scored"] == 1
  assert results.load(corrupt, "failures").empty


def test_finetune_records_a_corrupt_checkpoint_and_trains_the_rest(tmp_path, data_dir):
  from jtransfer.jobs import finetune

  _write_zoo(tmp_path, [("mnist", 0, 0), ("mnist", 0, 3)])
  bad = checkpointing.checkpoint_path(tmp_path, "mnist", ARCH, 0, 3).absolute()
  flip_bytes(bad)
  summary = run_job(finetune,
    workdir=tmp_path, target="mnist", batch_size=16, train_examples=32, eval_examples=32,
    eval_batch_size=32, duration={"steps": 2}, baselines=False, show_progress=False,
    data_dir=data_dir,
  )  # fmt: skip
  assert summary["failed"] == 1 and summary["members"] == 1
  ft = results.load(tmp_path, "finetune")
  assert set(zip(ft.seed, ft.step, strict=True)) == {(0, 0)}
  (row,) = results.load(tmp_path, "failures").itertuples()
  assert (row.job, row.step, row.target) == ("finetune", 3, "mnist")
  assert f"checkpoint {bad} is corrupt" in row.error


# -- the zoo on disk is the truth ---------------------------------------------------------------


@pytest.mark.slow
def test_a_lost_store_is_rebuilt_from_the_zoo(tmp_path, data_dir):
  """The tiny sweep, its results.sqlite deleted, run again: every checkpoint is found."""
  from jtransfer.cli import overrides as config_cli
  from jtransfer.jobs import sweep

  thesis_cnn = config_cli.load_module(
    pathlib.Path(__file__).resolve().parents[1] / "configs" / "thesis_cnn.py"
  )

  c = thesis_cnn.get_config("tiny").to_dict()
  kw = dict(sources=c["sources"], pretrain={**c["pretrain"], "show_progress": False},
            score=c["score"], finetune=c["finetune"], evaluate=c["evaluate"],
            data_dir=str(data_dir))  # fmt: skip
  sweep.run(sweep.plan(workdir=tmp_path, **kw))
  before = {t: results.load(tmp_path, t) for t in ("checkpoints", "scores")}
  assert len(before["checkpoints"]) == 20  # 2 sources x 2 seeds x steps 0, 1, 3, 10, 12
  for p in tmp_path.glob("results.sqlite*"):
    p.unlink()
  report_path = sweep.run(sweep.plan(workdir=tmp_path, **kw))
  after = {t: results.load(tmp_path, t) for t in ("checkpoints", "scores")}
  assert len(after["checkpoints"]) == 20 and len(after["scores"]) == len(before["scores"])
  key = ["source", "arch", "seed", "step"]
  for t in ("checkpoints",):
    cols = key + ["epoch", "path", "train_acc", "test_acc", "train_loss", "test_loss"]
    a, b = (d[t].sort_values(key)[cols].reset_index(drop=True) for d in (before, after))
    assert a.equals(b)
  cols = [*key, "target", "probe", "layer", "score"]
  a, b = (d["scores"].sort_values(cols).reset_index(drop=True) for d in (before, after))
  assert a[cols].equals(b[cols])
  np.testing.assert_allclose(a.value, b.value, rtol=1e-5, equal_nan=True)
  assert "pre-train checkpoints: 5" in pathlib.Path(report_path).read_text()

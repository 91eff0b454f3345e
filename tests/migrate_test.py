"""The workdir format: new workdirs are stamped, older ones refused naming the migrate command,
and `python -m jtransfer migrate` turns them into ones the jobs read, with the same tables."""

import json
import pathlib
import shutil
import sqlite3

import jax
import numpy as np
import pandas as pd
import pytest

from jtransfer import analysis
from jtransfer.cli import main as cli
from jtransfer.jobs import migrate
from jtransfer.models import functional
from jtransfer.store import checkpointing, results, zoo
from jtransfer.store import workdir as workdir_files

ARCH = "cnn_tiny"
MIGRATE = "python -m jtransfer migrate"


def _params(num_classes=10, seed=0):
  return jax.tree.map(np.asarray, functional.init(ARCH, num_classes=num_classes, seed=seed)[1])


def _refused(fn, *args):
  with pytest.raises(workdir_files.WorkdirFormatError, match=f"has format 1.*`{MIGRATE} "):
    fn(*args)


def test_a_new_workdir_is_stamped_and_other_formats_are_refused(tmp_path):
  results.Store(tmp_path / "new").close()
  assert json.loads((tmp_path / "new" / "format.json").read_text()) == {"format": 3}
  assert workdir_files.format_of(tmp_path / "new") == workdir_files.FORMAT == 3
  assert workdir_files.format_of(tmp_path / "empty") is None  # nothing there yet
  (tmp_path / "newer").mkdir()
  (tmp_path / "newer" / "format.json").write_text('{"format": 4}')
  for fn in (results.Store, workdir_files.check_format, migrate.migrate):
    with pytest.raises(workdir_files.WorkdirFormatError, match="format 4, newer than"):
      fn(tmp_path / "newer")
  (tmp_path / "empty").mkdir()
  with pytest.raises(ValueError, match="nothing to migrate"):
    migrate.migrate(tmp_path / "empty")
  assert migrate.migrate(tmp_path / "new") == [f"{tmp_path / 'new'} is already format 3"]


def _old_store(workdir: pathlib.Path) -> None:
  """A store as the first releases wrote it: finetune without the AUROC and validation columns,
  and the no-layer scores under "" (one key also under the marker "-", written later)."""
  workdir.mkdir(parents=True, exist_ok=True)
  old = [c for c in results.COLUMNS["finetune"] if not c.endswith("_auroc") and "val_" not in c]
  with sqlite3.connect(workdir / results.MAIN_FILE) as conn:
    key = results.KEYS["finetune"]
    conn.execute(f"CREATE TABLE finetune ({', '.join(old)}, PRIMARY KEY ({', '.join(key)}))")
    row = dict(source="mnist", arch="cnn", seed=0, step=1, target="usps", mode="full",
               frozen_layers=0, ft_seed=0, ft_step=3, ft_epoch=0.5, test_acc=0.75,
               test_loss=0.5, created_at=1.0)  # fmt: skip
    conn.execute(f"INSERT INTO finetune ({', '.join(row)}) VALUES ({', '.join('?' * len(row))})",
                 list(row.values()))  # fmt: skip
    key = results.KEYS["scores"]
    conn.execute(
      f"CREATE TABLE scores ({', '.join(results.COLUMNS['scores'])}, "
      f"PRIMARY KEY ({', '.join(key)}))"
    )
    base = dict(source="mnist", arch="cnn", seed=0, step=1, target="usps", probe="train")
    for score, layer, value in (("leep", "", 1.0), ("leep", "-", 2.0), ("nce", "", 3.0)):
      r = dict(base, layer=layer, score=score, value=value, created_at=1.0)
      conn.execute(f"INSERT INTO scores ({', '.join(r)}) VALUES ({', '.join('?' * len(r))})",
                   list(r.values()))  # fmt: skip


def test_an_old_store_is_refused_then_migrated(tmp_path, capsys):
  _old_store(tmp_path)
  _refused(results.load, tmp_path, "finetune")
  _refused(results.Store, tmp_path)
  _refused(lambda w: workdir_files.locked(w, "score").__enter__(), tmp_path)
  assert cli.main(["migrate", str(tmp_path)]) == 0
  out = capsys.readouterr().out
  assert "finetune.test_auroc added" in out and "1 score rows' layer '' -> '-'" in out
  df = results.load(tmp_path, "finetune")
  assert df.test_acc.tolist() == [0.75] and df[["test_auroc", "val_acc"]].isna().all().all()
  s = results.load(tmp_path, "scores")
  # The key held twice keeps the marker's row; the other moves to the marker.
  assert s[["score", "layer", "value"]].values.tolist() == [["leep", "-", 2.0], ["nce", "-", 3.0]]
  with results.Store(tmp_path) as store:  # a writer can fill the new columns
    store.add_finetune([{**df.iloc[0].to_dict(), "ft_step": 4, "test_auroc": 0.625}])
  assert results.load(tmp_path, "finetune").test_auroc.tolist()[1] == 0.625


def test_old_checkpoints_get_the_record_they_were_read_with(tmp_path):
  """Saved by the pre-training of before the record: its row as extra, kwargs in config.json."""
  path = checkpointing.checkpoint_path(tmp_path, "mnist", ARCH, 2, 30)
  row = dict(source="mnist", arch=ARCH, seed=2, step=30, epoch=3.0, test_acc=0.25,
             path=str(path.relative_to(tmp_path)))  # fmt: skip
  params = _params()
  checkpointing.save(path, params, extra=row)
  digest = checkpointing.content_hash(path)
  config = [{"job": "pretrain", "config": {"source": "mnist", "arch": ARCH,
                                           "model_kwargs": {"width": 3}}}]  # fmt: skip
  (tmp_path / "config.json").write_text(json.dumps(config))
  # Written by the first importers (record fields and provenance in the saved extra).
  imp_path = checkpointing.checkpoint_path(tmp_path, "imagenet", ARCH, 0, 0)
  provenance = {"format": "torch", "file": "/w.pth", "file_sha256": "cd" * 32,
                "original_keys": {"fc.weight": "head"}}  # fmt: skip
  checkpointing.save(imp_path, _params(num_classes=7), extra=dict(
    source="imagenet", arch=ARCH, seed=0, step=0, epoch=None, num_classes=7,
    model_kwargs={"width": 2}, provenance=provenance))  # fmt: skip
  _refused(zoo.select, tmp_path)
  lines = migrate.migrate(tmp_path)
  assert sum("zoo record written" in line for line in lines) == 2
  e, imp = zoo.select(tmp_path, sources=["mnist"])[0], zoo.select(tmp_path, sources=["imagenet"])[0]
  # 30 steps = 3 epochs: 10 steps per epoch, schedule 0, 1, 3, 10 (1 epoch), 30 (3 epochs).
  assert (e.num_classes, e.model_kwargs, e.index, e.epoch) == (10, {"width": 3}, 4, 3.0)
  assert e.metrics == {"test_acc": 0.25} and e.origin == zoo.TRAINED
  assert (imp.num_classes, imp.model_kwargs, imp.index, imp.origin) == (
    7, {"width": 2}, 0, zoo.IMPORTED)  # fmt: skip
  assert imp.imported_from == provenance
  # The same arrays, the same content hash; no file of the rewrite left beside it.
  assert e.content_hash == digest
  jax.tree.map(np.testing.assert_array_equal, checkpointing.restore(path), params)
  assert sorted(p.name for p in path.parent.iterdir()) == ["30"]
  assert migrate.migrate(tmp_path) == [f"{tmp_path} is already format 3"]


def test_legacy_index_is_the_thesis_schedule_position():
  steps = [0, 1, 3, 10, 30, 100, 300, 938, 2814, 9380, 28140, 93800]  # MNIST, batch 64
  for i, step in enumerate(steps):
    assert migrate.legacy_index(step, step / 938) == i
  # Off-schedule final step of a short run (spe 10: 0, 1, 3, 10, 30) comes after the last one.
  assert migrate.legacy_index(50, 50 / 10) == 5
  # Without an epoch: the position among the run's checkpoints.
  assert migrate.legacy_index(7, None, [0, 2, 9]) == 2


def test_a_rewrite_stopped_between_its_two_renames_is_put_back(tmp_path):
  path = checkpointing.save(tmp_path / "zoo" / "s" / ARCH / "seed_0" / "5", _params())
  aside = migrate._backup(path)
  path.rename(aside)  # killed after moving the old one aside, before the new one came in
  assert migrate._recover(path) == path and checkpointing.exists(path) and not aside.exists()


FIXTURE = pathlib.Path(__file__).parent / "data" / "workdir_format1"


@pytest.mark.skipif(not FIXTURE.is_dir(), reason="no format-1 fixture")
def test_a_workdir_of_format_1_reads_the_same_after_migrate(tmp_path):
  """A workdir written by the last unversioned jtransfer (commit 065e4b5: the thesis tiny sweep
  cut to one source, seed and target, cnn_tiny, 3 steps; its store, zoo, config.json and two
  of its analysis tables): refused, migrated, then the same tables and zoo records."""
  workdir = tmp_path / "wd"
  shutil.copytree(FIXTURE, workdir)
  before = {}
  with sqlite3.connect(workdir / results.MAIN_FILE) as conn:
    for table in ("checkpoints", "scores", "finetune"):
      before[table] = pd.read_sql(f"SELECT * FROM {table}", conn)
  records = {
    p: checkpointing.read_extra(p)[zoo.RECORD_KEY] for p, _ in zoo.checkpoint_dirs(workdir)
  }
  _refused(results.load, workdir, "scores")
  _refused(zoo.select, workdir)
  _refused(lambda w: workdir_files.locked(w, "score").__enter__(), workdir)
  migrate.migrate(workdir)
  for table, was in before.items():
    now = results.load(workdir, table)
    keys = list(results.KEYS[table])
    now = now[list(was.columns)]
    pd.testing.assert_frame_equal(  # NULL as NaN in float columns, as the store reads them
      now.sort_values(keys).reset_index(drop=True),
      was.astype(now.dtypes.to_dict()).sort_values(keys).reset_index(drop=True),
    )
  entries = zoo.select(workdir)
  assert len(entries) == len(records) > 0
  assert {pathlib.Path(e.path): e.record() for e in entries} == records
  # The evaluate stage's tables equal those the unversioned jtransfer wrote from this store.
  analysis.run(analysis.EvaluateConfig(n_boot=0, focus_layer="pool2", with_figures=False), workdir)
  for name in ("analysis_ground_truth.csv", "analysis_correlations.csv"):
    pd.testing.assert_frame_equal(pd.read_csv(workdir / name), pd.read_csv(FIXTURE / name))


def _done_keys(workdir) -> dict[str, set[str]]:
  done = results.load(workdir, "done")
  return {job: set(g["key"]) for job, g in done.groupby("job")}


def _extra(workdir, key: str):
  """The stored extra of the pre-training marker `key`, as the file holds it."""
  with sqlite3.connect(workdir / results.MAIN_FILE) as conn:
    query = "SELECT extra FROM done WHERE job = 'pretrain' AND key = ?"
    return conn.execute(query, (key,)).fetchone()[0]


def test_migrate_rewrites_string_done_markers_as_key_tuples(tmp_path):
  """The format-1 fixture's pre-training markers are strings ("mnist/cnn_tiny/seed_0/step_3");
  after migrate every marker of every job is the canonical key of its tuple, as the jobs read
  them, and the store rows they carry are kept."""
  from jtransfer.jobs import pretrain  # noqa: PLC0415

  workdir = tmp_path / "wd"
  shutil.copytree(FIXTURE, workdir)
  with sqlite3.connect(workdir / results.MAIN_FILE) as conn:
    was = dict(conn.execute("SELECT key, extra FROM done WHERE job = 'pretrain'").fetchall())
  assert sorted(was) == [f"mnist/cnn_tiny/seed_0/step_{s}" for s in (0, 1, 3)]
  lines = migrate.migrate(workdir)
  assert "format 2 -> 3: results.sqlite: 3 done markers rewritten as key tuples" in lines
  keys = _done_keys(workdir)
  want = {results.key_str(pretrain.done_key("mnist", "cnn_tiny", 0, s)) for s in (0, 1, 3)}
  assert keys["pretrain"] == want
  assert all(k.startswith("[") for ks in keys.values() for k in ks)
  for step in (0, 1, 3):
    new = results.key_str(pretrain.done_key("mnist", "cnn_tiny", 0, step))
    assert _extra(workdir, new) == was[f"mnist/cnn_tiny/seed_0/step_{step}"]
  # A format-2 workdir holding both shapes of one marker (migrated before this step existed,
  # then rerun): one marker left, the new one; an unknown shape is one line naming it.
  (workdir / "format.json").write_text('{"format": 2}')
  with sqlite3.connect(workdir / results.MAIN_FILE) as conn:
    conn.execute("INSERT INTO done (job, key, extra) VALUES ('pretrain', ?, '{}')",
                 ("mnist/cnn_tiny/seed_0/step_3",))  # fmt: skip
  assert migrate.migrate(workdir)[0].endswith("1 done markers rewritten as key tuples")
  assert _done_keys(workdir)["pretrain"] == want
  new = results.key_str(pretrain.done_key("mnist", "cnn_tiny", 0, 3))
  assert _extra(workdir, new) == was["mnist/cnn_tiny/seed_0/step_3"]
  (workdir / "format.json").write_text('{"format": 2}')
  with sqlite3.connect(workdir / results.MAIN_FILE) as conn:
    conn.execute("INSERT INTO done (job, key, extra) VALUES ('score', 'what/is/this', NULL)")
  with pytest.raises(ValueError, match="^done marker 'what/is/this' of job 'score' has no known"):
    migrate.migrate(workdir)

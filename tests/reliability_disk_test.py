"""A full disk while a checkpoint, the results store, an export or the analysis tables are written
(issue 23), simulated: SQLite's max_page_count (SQLite then answers SQLITE_FULL, as on a full
disk) and writes monkeypatched to write part of a file and raise OSError(ENOSPC). Nothing
half-written is read back as good, and the rerun completes. (The image-folder decode cache:
tests/reliability_images_test.py.)

Before: the store's rollback after SQLITE_FULL raised "cannot rollback - no transaction is
active", hiding the real error (SQLite had rolled back already); an export or an analysis table
interrupted mid-file stayed at its final name, half written.
"""

import errno
import sqlite3

import numpy as np
import pandas as pd
import pytest

from jtransfer.store import checkpointing, results
from jtransfer.store import workdir as workdir_files


def _rows(unit, k, width=1):
  return [
    dict(source="s", arch="a", seed=unit, step=0, target="t", probe="p",
         layer=f"{'l' * width}{i}", score="x", value=unit * 1000.0 + i)
    for i in range(k)
  ]  # fmt: skip


def test_a_full_database_keeps_the_unit_out_and_the_rerun_completes_it(tmp_path):
  with results.Store(tmp_path) as store:
    store.mark_done("score", "u0", {"scores": _rows(0, 5)})
    pages = store.conn.execute("PRAGMA page_count").fetchone()[0]
    store.conn.execute(f"PRAGMA max_page_count = {pages + 2}")  # the disk is full from here
    with pytest.raises(sqlite3.OperationalError, match="database or disk is full"):
      store.mark_done("score", "u1", {"scores": _rows(1, 2000, width=200)})
    assert not store.conn.in_transaction
    assert store.done_keys("score") == {"u0"}
  scores = results.load(tmp_path, "scores")
  assert sorted(scores["seed"].unique()) == [0] and len(scores) == 5  # no row of unit 1
  with results.Store(tmp_path) as store:  # the rerun, space freed
    assert not store.is_done("score", "u1")
    store.mark_done("score", "u1", {"scores": _rows(1, 2000, width=200)})
  assert results.load(tmp_path, "done")["key"].tolist() == ["u0", "u1"]
  assert len(results.load(tmp_path, "scores")) == 2005
  with sqlite3.connect(tmp_path / results.MAIN_FILE) as conn:
    assert conn.execute("PRAGMA integrity_check").fetchone() == ("ok",)


def _params(seed):
  rng = np.random.default_rng(seed)
  return {"backbone": {"w": rng.standard_normal((64, 64), np.float32)},
          "head": {"b": rng.standard_normal(10).astype(np.float32)}}  # fmt: skip


def test_a_checkpoint_save_on_a_full_disk_leaves_no_checkpoint_and_the_rerun_saves_it(
  tmp_path, monkeypatch
):
  """The disk fills while orbax writes its commit marker, the last file before the rename:
  params and metadata are all in the tmp directory, and still nothing reads as a checkpoint."""
  from orbax.checkpoint._src.path import async_path, atomicity

  real = async_path.write_text

  async def enospc_at_the_commit(path, text, **kwargs):
    if path.name != atomicity.COMMIT_SUCCESS_FILE:
      return await real(path, text, **kwargs)
    await real(path, text[: len(text) // 2], **kwargs)
    raise OSError(errno.ENOSPC, "No space left on device", str(path))

  path = tmp_path / "zoo" / "7"
  monkeypatch.setattr(async_path, "write_text", enospc_at_the_commit)
  with pytest.raises(OSError, match="No space left"):
    checkpointing.save(path, _params(0), extra={"step": 7})
  (tmp,) = (tmp_path / "zoo").iterdir()  # the tmp directory, whole but for its marker
  assert tmp.name.startswith("7.orbax-checkpoint-tmp") and any(tmp.iterdir())
  assert not checkpointing.exists(path) and checkpointing.complete_steps(tmp_path / "zoo") == []
  with pytest.raises(FileNotFoundError, match="no checkpoint"):
    checkpointing.restore(path)
  monkeypatch.setattr(async_path, "write_text", real)
  checkpointing.save(path, _params(0), extra={"step": 7})  # the rerun: no overwrite needed
  assert checkpointing.complete_steps(tmp_path / "zoo") == [7]
  got = checkpointing.restore(path)
  np.testing.assert_array_equal(got["backbone"]["w"], _params(0)["backbone"]["w"])
  assert checkpointing.read_extra(path) == {"step": 7}
  assert [p.name for p in (tmp_path / "zoo").iterdir()] == ["7"]  # the tmp directory is gone


def _full_disk_on_call(monkeypatch, n):
  """DataFrame.to_csv writes half its text and raises ENOSPC on its n-th call from now."""
  real = pd.DataFrame.to_csv
  calls = []

  def to_csv(self, path, *args, **kwargs):
    calls.append(path)
    if len(calls) != n:
      return real(self, path, *args, **kwargs)
    text = real(self, None, *args, **kwargs)
    with open(path, "w") as f:
      f.write(text[: len(text) // 2])
    raise OSError(errno.ENOSPC, "No space left on device", str(path))

  monkeypatch.setattr(pd.DataFrame, "to_csv", to_csv)
  return real


def _files(folder):
  return {p.name: p.read_bytes() for p in sorted(folder.iterdir())}


def test_an_export_on_a_full_disk_keeps_the_old_tables_whole(tmp_path, monkeypatch):
  with results.Store(tmp_path) as store:
    store.mark_done("score", "u0", {"scores": _rows(0, 50)})
  out = tmp_path / "export"
  results.export(tmp_path, out)
  before = _files(out)
  with results.Store(tmp_path) as store:
    store.mark_done("score", "u1", {"scores": _rows(1, 50)})
  real = _full_disk_on_call(monkeypatch, 2)  # the scores table
  with pytest.raises(OSError, match="No space left"):
    results.export(tmp_path, out)
  after = _files(out)
  assert set(after) == set(before)  # no tmp file left
  assert after["scores.csv"] == before["scores.csv"]  # the old table, whole
  monkeypatch.setattr(pd.DataFrame, "to_csv", real)
  results.export(tmp_path, out)  # the rerun
  assert len(pd.read_csv(out / "scores.csv")) == 100


def test_analysis_tables_on_a_full_disk_are_old_or_whole(tmp_path, monkeypatch):
  from analysis_report_test import _synthetic

  from jtransfer import analysis

  ck, sc, ft = _synthetic(np.random.default_rng(0))
  with results.Store(tmp_path) as s:
    s.add_rows("checkpoints", ck.to_dict("records"))
    s.add_rows("scores", sc.to_dict("records"))
    s.add_rows("finetune", ft.to_dict("records"))
  run = dict(n_boot=0, with_figures=False)
  analysis.run(analysis.EvaluateConfig(**run), tmp_path)
  want = {k: v for k, v in _files(tmp_path).items() if k.startswith("analysis_")}
  for name in want:
    (tmp_path / name).unlink()
  real = _full_disk_on_call(monkeypatch, 3)
  with pytest.raises(OSError, match="No space left"):
    analysis.run(analysis.EvaluateConfig(**run), tmp_path)
  got = {k: v for k, v in _files(tmp_path).items() if k.startswith(("analysis_", ".analysis"))}
  assert len(got) == 2 and all(got[k] == want[k] for k in got)  # the first two, whole
  monkeypatch.setattr(pd.DataFrame, "to_csv", real)
  analysis.run(analysis.EvaluateConfig(**run), tmp_path)  # the rerun
  got = {k: v for k, v in _files(tmp_path).items() if k.startswith(("analysis_", ".analysis"))}
  assert got == want


def test_replaced_whole_keeps_the_old_file_when_the_write_fails(tmp_path):
  path = tmp_path / "table.csv"
  path.write_text("old, whole\n")
  with pytest.raises(OSError), workdir_files.replaced_whole(path) as tmp:
    tmp.write_text("new, ha")
    raise OSError(errno.ENOSPC, "No space left on device")
  assert path.read_text() == "old, whole\n" and [p.name for p in tmp_path.iterdir()] == [path.name]


def test_a_full_disk_at_the_command_line_is_one_line_and_exit_2(tmp_path, monkeypatch, capsys):
  """`python -m jtransfer export` on a full disk: one line naming the file and what to do (was
  an OSError traceback); the traceback with --verbose."""
  from jtransfer.cli import main as cli

  with results.Store(tmp_path) as store:
    store.mark_done("score", "u0", {"scores": _rows(0, 50)})
  _full_disk_on_call(monkeypatch, 1)
  with pytest.raises(SystemExit) as e:
    cli.main(["export", str(tmp_path), "--format", "csv"])
  assert e.value.code == 2
  err = capsys.readouterr().err.strip()
  assert "\n" not in err and "Traceback" not in err, err
  assert "jtransfer export: error: no space left on the device writing " in err, err
  assert "rerun" in err and str(tmp_path / "export") in err, err
  _full_disk_on_call(monkeypatch, 1)
  with pytest.raises(OSError, match="No space left"):
    cli.main(["--verbose", "export", str(tmp_path), "--format", "csv"])


@pytest.mark.parametrize(
  "raised, words",
  [
    (OSError(errno.ENOSPC, "No space left on device", "/w/ckpt/x"), ["writing /w/ckpt/x"]),
    # orbax and other writers wrap the OSError: it is found in the chain.
    ("wrapped", ["no space left on the device writing /w/a.tmp"]),
    (sqlite3.OperationalError("database or disk is full"), ["results database"]),
    (OSError(errno.EROFS, "Read-only file system", "/ro/w"), ["cannot write /ro/w", "writable"]),
  ],
)
def test_exit_on_tells_a_full_or_read_only_disk_in_one_line(raised, words, capsys):
  from jtransfer import errors

  if raised == "wrapped":
    try:
      raise OSError(errno.ENOSPC, "No space left on device", "/w/a.tmp")
    except OSError as cause:
      raised = RuntimeError("checkpoint save failed")
      raised.__cause__ = cause
  with pytest.raises(SystemExit) as e, errors.exit_on("prog"):
    raise raised
  assert e.value.code == 2
  err = capsys.readouterr().err.strip()
  assert err.startswith("prog: error: ") and "\n" not in err, err
  for w in words:
    assert w in err, err


def test_exit_on_keeps_the_traceback_of_other_os_errors():
  from jtransfer import errors

  with pytest.raises(OSError, match="I/O"), errors.exit_on("prog"):
    raise OSError(errno.EIO, "I/O error", "/w/x")


def test_a_really_full_disk_during_an_array_write_then_a_retry_in_the_same_process(tmp_path):
  """A real full file system (a 2 MB tmpfs; needs root, skipped elsewhere): tensorstore fails
  mid-array with a ValueError naming errno 28, nothing reads as a checkpoint, the command line
  says it in one line, and once space is freed the same process saves and restores it."""
  import subprocess

  from jtransfer import errors

  mnt = tmp_path / "tiny"
  mnt.mkdir()
  if subprocess.run(["mount", "-t", "tmpfs", "-o", "size=2M", "tmpfs", str(mnt)],
                    capture_output=True).returncode != 0:  # fmt: skip
    pytest.skip("cannot mount a small tmpfs here (not root)")
  try:
    (mnt / "filler").write_bytes(b"\0" * 1_850_000)
    rng = np.random.default_rng(0)
    params = {"backbone": {"w": rng.normal(size=(300, 300)).astype(np.float32)}}  # 360 KB
    path = mnt / "zoo" / "7"
    with pytest.raises(Exception) as e:
      checkpointing.save(path, params, extra={"step": 7})
    message = errors.storage_message(e.value)
    assert message and message.startswith("no space left on the device writing "), e.value
    assert str(mnt / "zoo") in message and "\n" not in message
    assert not checkpointing.exists(path) and checkpointing.complete_steps(mnt / "zoo") == []
    (mnt / "filler").unlink()
    checkpointing.save(path, params, extra={"step": 7})
    np.testing.assert_array_equal(
      checkpointing.restore(path)["backbone"]["w"], params["backbone"]["w"]
    )
    assert [p.name for p in (mnt / "zoo").iterdir()] == ["7"]
  finally:
    subprocess.run(["umount", str(mnt)], check=False)

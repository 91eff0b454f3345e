"""The results store: keys, atomic units, shards, concurrent writers, and kill -9 mid-job."""

import math
import os
import pathlib
import signal
import sqlite3
import subprocess
import sys
import textwrap

import numpy as np
import pandas as pd
import pytest

from jtransfer.store import results

REPO = pathlib.Path(__file__).resolve().parents[1]


def _score_rows(unit: int, k: int) -> list[dict]:
  return [
    dict(source="mnist", arch="cnn", seed=unit, step=0, target="fmnist", probe="p50",
         layer=f"l{i}", score="logme", value=unit * 1000.0 + i)
    for i in range(k)
  ]  # fmt: skip


def _ft_row(ft_step: int, acc: float) -> dict:
  key = dict(source="mnist", arch="cnn", seed=0, step=300, target="fmnist", mode="frozen")
  return dict(key, frozen_layers=2, ft_seed=1, ft_step=ft_step, test_acc=acc, test_loss=1 - acc)


def test_round_trip_types_and_nan(tmp_path):
  with results.Store(tmp_path) as store:
    store.add_checkpoint(source="mnist", arch="cnn", seed=np.int64(3), step=938,
                         epoch=np.float32(1.0), path=tmp_path / "zoo", train_acc=0.25,
                         test_acc=float("nan"), extra={"lr": 1e-4})  # fmt: skip
  df = results.load(tmp_path, "checkpoints")
  assert len(df) == 1
  row = df.iloc[0]
  assert (row.source, row.arch, row.seed, row.step) == ("mnist", "cnn", 3, 938)
  assert row.epoch == 1.0 and row.train_acc == 0.25
  assert math.isnan(row.test_acc) and math.isnan(row.train_loss)  # NaN and unset -> NaN
  assert row.path == str(tmp_path / "zoo")
  assert row.extra == '{"lr": 0.0001}'
  assert df["seed"].dtype == np.int64 and df["test_acc"].dtype == np.float64


def test_accepts_numpy_and_jax_scalars(tmp_path):
  import jax.numpy as jnp

  with results.Store(tmp_path) as store:
    store.add_finetune([dict(_ft_row(jnp.int32(4), jnp.float32(0.75)), test_loss=np.float16(2))])
    with pytest.raises(ValueError, match="integer"):
      store.add_finetune([_ft_row(float("nan"), 0.5)])
    with pytest.raises(ValueError, match="scalar"):
      store.add_finetune([_ft_row(5, np.zeros(2))])
  df = results.load(tmp_path, "finetune")
  assert df["ft_step"].tolist() == [4] and df["test_acc"].tolist() == [0.75]
  assert df["test_loss"].tolist() == [2.0]


def test_replace_and_ignore_on_the_key(tmp_path):
  with results.Store(tmp_path) as store:
    store.add_finetune([_ft_row(0, 0.1), _ft_row(1, 0.2)])
    store.add_finetune([_ft_row(1, 0.9)])  # replace (default)
    store.add_finetune([_ft_row(0, 0.5)], on_conflict="ignore")
    assert store.keys("finetune") == {
      ("mnist", "cnn", 0, 300, "fmnist", "frozen", 2, 1, 0),
      ("mnist", "cnn", 0, 300, "fmnist", "frozen", 2, 1, 1),
    }
  df = results.load(tmp_path, "finetune")
  assert df["ft_step"].tolist() == [0, 1]
  assert df["test_acc"].tolist() == [0.1, 0.9]


def test_bad_rows_fail_clearly(tmp_path):
  with results.Store(tmp_path) as store:
    with pytest.raises(ValueError, match="unknown column"):
      store.add_checkpoint(source="m", arch="a", seed=0, step=0, test_accuracy=0.5)
    with pytest.raises(ValueError, match="missing key column 'step'"):
      store.add_checkpoint(source="m", arch="a", seed=0)
    with pytest.raises(ValueError, match="must be an integer"):
      store.add_checkpoint(source="m", arch="a", seed=0, step=1.5)
    with pytest.raises(ValueError, match="valid tables"):
      store.add_rows("nope", [])
    assert store.keys("checkpoints") == set()
  with pytest.raises(ValueError, match="valid tables"):
    results.load(tmp_path, "nope")
  with pytest.raises(FileNotFoundError, match="no results store"):
    results.load(tmp_path / "empty", "scores")


def test_mark_done_is_one_transaction(tmp_path):
  with results.Store(tmp_path) as store:
    store.mark_done("score", ("mnist", 0, 0), {"scores": _score_rows(0, 3)})
    bad = _score_rows(1, 3)
    bad[2]["value"] = "not a number"  # fails after two rows were prepared
    with pytest.raises(ValueError):
      store.mark_done("score", ("mnist", 1, 0), {"scores": bad})
    # A failure inside an explicit transaction rolls back rows written before it.
    with pytest.raises(RuntimeError), store.transaction():
      store.add_scores(_score_rows(2, 3))
      raise RuntimeError("boom")
    assert store.is_done("score", ["mnist", 0, 0])  # tuple and list give the same key
    assert not store.is_done("score", ("mnist", 1, 0))
    assert store.done_keys("score") == {results.key_str(("mnist", 0, 0))}
  df = results.load(tmp_path, "scores")
  assert sorted(df["seed"].unique()) == [0]
  assert df["value"].tolist() == [0.0, 1.0, 2.0]


def test_shards_merge_at_read_time(tmp_path):
  with results.Store(tmp_path) as main, results.Store(tmp_path, shard="host1") as shard:
    main.add_scores(_score_rows(0, 2))
    shard.add_scores(_score_rows(1, 2))
    rows = _score_rows(0, 1)
    rows[0]["value"] = -5.0
    shard.add_scores(rows)  # same key as a main-file row, written later: wins
    shard.mark_done("score", "u1")
    assert main.is_done("score", "u1") and main.done_keys("score") == {"u1"}
    assert len(main.keys("scores")) == 4
  assert sorted(p.name for p in results.shard_paths(tmp_path)) == [
    "results.host1.sqlite",
    "results.sqlite",
  ]
  df = results.load(tmp_path, "scores")
  assert len(df) == 4
  got = dict(zip(zip(df.seed, df.layer, strict=True), df.value, strict=True))
  assert got == {(0, "l0"): -5.0, (0, "l1"): 1.0, (1, "l0"): 1000.0, (1, "l1"): 1001.0}
  with pytest.raises(ValueError, match="shard name"):
    results.Store(tmp_path, shard="a/b")


def test_export_csv_and_parquet(tmp_path, monkeypatch):
  with results.Store(tmp_path) as store:
    store.add_scores(_score_rows(0, 3))
  paths = results.export(tmp_path, tmp_path / "out", fmt="csv")
  assert [p.name for p in paths] == ["checkpoints.csv", "scores.csv", "finetune.csv"]
  back = pd.read_csv(tmp_path / "out" / "scores.csv")
  assert back["value"].tolist() == [0.0, 1.0, 2.0] and back["layer"].tolist() == ["l0", "l1", "l2"]
  assert len(pd.read_csv(tmp_path / "out" / "finetune.csv")) == 0
  if _has_pyarrow():
    results.export(tmp_path, tmp_path / "pq", fmt="parquet")
    assert pd.read_parquet(tmp_path / "pq" / "scores.parquet")["value"].tolist() == [0.0, 1.0, 2.0]
  monkeypatch.setitem(sys.modules, "pyarrow", None)  # import now fails
  with pytest.raises(ImportError, match="pyarrow"):
    results.export(tmp_path, tmp_path / "pq2", fmt="parquet")
  with pytest.raises(ValueError, match="fmt"):
    results.export(tmp_path, tmp_path / "x", fmt="xlsx")


def _has_pyarrow() -> bool:
  try:
    import pyarrow  # noqa: F401
  except ImportError:
    return False
  return True


# A job in a subprocess: units of K score rows + a done marker per unit, skipping done units.
# With HANG_AT >= 0 it writes half of that unit's rows inside an open transaction, says so, and
# waits to be killed.
_JOB = textwrap.dedent(
  """
  import sys, time
  from jtransfer.store import results

  workdir, units, k, hang_at, shard = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), \\
      int(sys.argv[4]), (sys.argv[5] or None)
  store = results.Store(workdir, shard=shard)
  for u in range(units):
    if store.is_done("score", f"u{u}"):
      continue
    rows = [dict(source="s", arch="a", seed=u, step=0, target="t", probe="p", layer=f"l{i}",
                 score="x", value=u * 1000.0 + i) for i in range(k)]
    if u == hang_at:
      with store.transaction():
        store.add_scores(rows[: k // 2])
        print("HANG", flush=True)
        time.sleep(120)
    store.mark_done("score", f"u{u}", {"scores": rows})
    print("DONE", u, flush=True)
  """
)


def _start(tmp_path, units, k, hang_at=-1, shard=""):
  script = tmp_path / "job.py"
  script.write_text(_JOB)
  env = dict(os.environ, PYTHONPATH=str(REPO))
  return subprocess.Popen(
    [sys.executable, str(script), str(tmp_path / "wd"), str(units), str(k), str(hang_at), shard],
    stdout=subprocess.PIPE,
    text=True,
    env=env,
  )


def _kill_when(proc, line_prefix: str) -> list[str]:
  seen = []
  for line in proc.stdout:
    seen.append(line.strip())
    if line.startswith(line_prefix):
      os.kill(proc.pid, signal.SIGKILL)
      break
  proc.communicate(timeout=60)  # reaps it and closes the pipe
  assert proc.returncode == -signal.SIGKILL, seen
  return seen


def _check_complete_units(workdir, k) -> set[int]:
  """Every marker has exactly its k rows with the right values; no rows without a marker."""
  done = results.load(workdir, "done")
  scores = results.load(workdir, "scores")
  units = {int(key[1:]) for key in done["key"]}
  assert set(scores["seed"]) == units  # no orphan rows from an unfinished unit
  for u, group in scores.groupby("seed"):
    assert sorted(group["value"]) == [u * 1000.0 + i for i in range(k)]
  # The primary key forbids duplicates; check the file itself agrees.
  conn = sqlite3.connect(workdir / "results.sqlite")
  assert conn.execute("PRAGMA integrity_check").fetchone() == ("ok",)
  conn.close()
  return units


@pytest.mark.slow  # SIGKILLs a subprocess
def test_kill_mid_transaction_then_resume(tmp_path):
  units, k = 8, 6
  proc = _start(tmp_path, units, k, hang_at=5)
  seen = _kill_when(proc, "HANG")
  assert seen == ["DONE 0", "DONE 1", "DONE 2", "DONE 3", "DONE 4", "HANG"]
  workdir = tmp_path / "wd"
  assert _check_complete_units(workdir, k) == {0, 1, 2, 3, 4}
  # Resume: finishes units 5..7 only, skipping those already done.
  proc = _start(tmp_path, units, k)
  out, _ = proc.communicate(timeout=120)
  assert proc.returncode == 0
  assert out.split() == ["DONE", "5", "DONE", "6", "DONE", "7"]
  assert _check_complete_units(workdir, k) == set(range(units))
  assert len(results.load(workdir, "scores")) == units * k


@pytest.mark.slow  # SIGKILLs a subprocess
def test_kill_at_an_arbitrary_moment_then_resume(tmp_path):
  units, k = 150, 50
  proc = _start(tmp_path, units, k)
  _kill_when(proc, "DONE 30")  # the writer is busy with unit 31 or later
  workdir = tmp_path / "wd"
  assert len(_check_complete_units(workdir, k)) >= 31
  proc = _start(tmp_path, units, k)
  proc.communicate(timeout=240)
  assert proc.returncode == 0
  assert _check_complete_units(workdir, k) == set(range(units))
  assert len(results.load(workdir, "scores")) == units * k


@pytest.mark.slow  # two subprocesses
def test_two_processes_share_one_file_without_losing_rows(tmp_path):
  # Two writers on the same results.sqlite, each doing all units (the same keys): the lock
  # serialises them and every unit ends complete exactly once.
  units, k = 60, 20
  procs = [_start(tmp_path, units, k) for _ in range(2)]
  for proc in procs:
    proc.communicate(timeout=240)
    assert proc.returncode == 0
  workdir = tmp_path / "wd"
  assert _check_complete_units(workdir, k) == set(range(units))
  assert len(results.load(workdir, "scores")) == units * k

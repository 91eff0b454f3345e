"""The results store: one SQLite database per workdir, written by every job, read by analysis.

  store = results.Store(workdir)                       # <workdir>/results.sqlite
  store.add_checkpoint(source="mnist", arch="cnn", seed=0, step=300, epoch=0.32, path=...,
                       train_acc=.9, test_acc=.9, train_loss=.3, test_loss=.3)
  if not store.is_done("finetune", unit_key):
    store.mark_done("finetune", unit_key, {"finetune": rows})   # rows + marker, one transaction
  store.close()
  df = results.load(workdir, "scores")                 # pandas, all shards of the workdir

Durability. Every write is one SQLite transaction (`BEGIN IMMEDIATE` ... `COMMIT`) in WAL mode
with `synchronous=NORMAL`: a process killed at any moment (even `kill -9`) leaves a database
that opens and holds exactly the committed transactions; a half-written transaction is rolled
back by SQLite on the next open. Put the rows of one unit of work and its `done(job, key)`
marker in the same `mark_done` call and a resumed job can trust the marker. (`NORMAL` can lose
the last commits on a power cut / OS crash, never on a process crash; pass
`synchronous="FULL"` if that matters.)

Keys. Each table has a primary key (`KEYS`); all key columns are NOT NULL (SQLite treats NULLs
as distinct, which would let duplicates in). Writing a row whose key exists replaces it
(`on_conflict="replace"`, the default: reruns are idempotent) or keeps the old one
(`on_conflict="ignore"`). Unknown column names are a `ValueError`; free-form extras go in the
`extra` argument / column (JSON).

Concurrency. One `Store` (one connection) per process, used from one thread.
- Many processes on one host may share `results.sqlite`: SQLite serialises writers and waits up
  to `busy_timeout_s` for the lock; no row is lost.
- Many hosts (a pod, or any network filesystem, where SQLite locking and WAL's shared memory are
  not reliable) must not share a file: each process writes its own shard,
  `Store(workdir, shard=f"host{jax.process_index()}")` -> `<workdir>/results.host3.sqlite`.
  `load`, `done_keys`, `is_done` and `keys` read the main file and every shard; when two files
  hold the same key, the row written last (`created_at`) wins.
"""

from __future__ import annotations

import contextlib
import json
import math
import os
import pathlib
import re
import sqlite3
import time
from collections.abc import Iterable, Iterator, Mapping, Sequence
from typing import Any

import numpy as np

from jtransfer.store import workdir as workdir_files

MAIN_FILE = "results.sqlite"
# The layer of a score that depends on no tap (LEEP, NCE, the checkpoint baselines); stores
# written before the marker existed hold "" there, so readers accept both.
NO_LAYER = "-"
LAYERLESS = (NO_LAYER, "")
_SHARD_RE = re.compile(r"^results\.([A-Za-z0-9_\-]+)\.sqlite$")

# name -> (columns with SQLite types, primary key). Key columns are NOT NULL.
_SCHEMA: dict[str, tuple[tuple[tuple[str, str], ...], tuple[str, ...]]] = {
  "checkpoints": (
    (
      ("source", "TEXT"),
      ("arch", "TEXT"),
      ("seed", "INTEGER"),
      ("step", "INTEGER"),
      ("epoch", "REAL"),
      ("path", "TEXT"),
      ("train_acc", "REAL"),
      ("test_acc", "REAL"),
      ("train_loss", "REAL"),
      ("test_loss", "REAL"),
      ("extra", "TEXT"),
      ("created_at", "REAL"),
    ),
    ("source", "arch", "seed", "step"),
  ),
  "scores": (
    (
      ("source", "TEXT"),
      ("arch", "TEXT"),
      ("seed", "INTEGER"),
      ("step", "INTEGER"),
      ("target", "TEXT"),
      ("probe", "TEXT"),
      ("layer", "TEXT"),
      ("score", "TEXT"),
      ("value", "REAL"),
      ("seconds", "REAL"),
      ("extra", "TEXT"),
      ("created_at", "REAL"),
    ),
    ("source", "arch", "seed", "step", "target", "probe", "layer", "score"),
  ),
  "finetune": (
    (
      ("source", "TEXT"),
      ("arch", "TEXT"),
      ("seed", "INTEGER"),
      ("step", "INTEGER"),
      ("target", "TEXT"),
      ("mode", "TEXT"),
      ("frozen_layers", "INTEGER"),
      ("ft_seed", "INTEGER"),
      ("ft_step", "INTEGER"),
      ("ft_epoch", "REAL"),
      ("test_acc", "REAL"),
      ("test_loss", "REAL"),
      ("train_acc", "REAL"),
      ("train_loss", "REAL"),
      # Binary targets only: the ROC area of the positive-class logit margin (else NULL).
      ("test_auroc", "REAL"),
      ("train_auroc", "REAL"),
      # With a validation split held out of the target's train split (else NULL).
      ("val_acc", "REAL"),
      ("val_loss", "REAL"),
      ("val_auroc", "REAL"),
      ("extra", "TEXT"),
      ("created_at", "REAL"),
    ),
    ("source", "arch", "seed", "step", "target", "mode", "frozen_layers", "ft_seed", "ft_step"),
  ),
  # Training curves (`jtransfer.store.tracking`): one scalar per (job, unit, step, name), e.g. unit
  # "mnist/cnn/seed_0" of pretrain, name "train/loss" at step 30.
  "metrics": (
    (
      ("job", "TEXT"),
      ("unit", "TEXT"),
      ("step", "INTEGER"),
      ("name", "TEXT"),
      ("value", "REAL"),
      ("created_at", "REAL"),
    ),
    ("job", "unit", "step", "name"),
  ),
  # Checkpoints a job could not use (e.g. corrupt: content hash mismatch), per job and target;
  # cleared when the job later succeeds on them.
  "failures": (
    (
      ("job", "TEXT"),
      ("source", "TEXT"),
      ("arch", "TEXT"),
      ("seed", "INTEGER"),
      ("step", "INTEGER"),
      ("target", "TEXT"),
      ("path", "TEXT"),
      ("error", "TEXT"),
      ("extra", "TEXT"),
      ("created_at", "REAL"),
    ),
    ("job", "source", "arch", "seed", "step", "target"),
  ),
  # Completion markers: a job marks a whole unit of work (e.g. one fine-tune run) done in the
  # same transaction as its rows.
  "done": (
    (("job", "TEXT"), ("key", "TEXT"), ("extra", "TEXT"), ("created_at", "REAL")),
    ("job", "key"),
  ),
}

TABLES: tuple[str, ...] = tuple(_SCHEMA)
KEYS: dict[str, tuple[str, ...]] = {t: key for t, (_, key) in _SCHEMA.items()}
COLUMNS: dict[str, tuple[str, ...]] = {
  t: tuple(c for c, _ in cols) for t, (cols, _) in _SCHEMA.items()
}
TYPES: dict[str, dict[str, str]] = {t: dict(cols) for t, (cols, _) in _SCHEMA.items()}


def key_str(key: Any) -> str:
  """The canonical string for a `done` key: strings as they are, anything else as sorted JSON.

  `("mnist", 0, 300)`, `["mnist", 0, 300]` give the same key; dicts are order-independent.
  """
  if isinstance(key, str):
    return key
  try:
    return json.dumps(_plain(key), sort_keys=True, separators=(",", ":"))
  except TypeError as e:
    raise ValueError(f"done key must be a str or JSON-serialisable, got {key!r}") from e


def _plain(value: Any) -> Any:
  """NumPy scalars / arrays and tuples -> plain Python (sqlite3 and json reject NumPy types)."""
  if isinstance(value, np.generic):
    return value.item()
  if isinstance(value, np.ndarray):
    if value.ndim == 0:
      return value.item()
    raise ValueError(f"expected a scalar, got an array of shape {value.shape}")
  if isinstance(value, tuple | list):
    return [_plain(v) for v in value]
  if isinstance(value, Mapping):
    return {str(k): _plain(v) for k, v in value.items()}
  if hasattr(value, "__fspath__"):
    return os.fspath(value)
  if hasattr(value, "__array__") and not isinstance(value, str):  # e.g. a 0-d jax.Array
    return _plain(np.asarray(value))
  return value


def _cell(table: str, column: str, value: Any) -> Any:
  value = _plain(value)
  kind = TYPES[table][column]
  if column == "extra":
    if value is None or isinstance(value, str):
      return value
    return json.dumps(value, sort_keys=True)
  if value is None:
    return None
  if kind == "INTEGER":
    bad = isinstance(value, bool) or not isinstance(value, int | float)
    if bad or not math.isfinite(value) or value != int(value):
      raise ValueError(f"{table}.{column} must be an integer, got {value!r}")
    return int(value)
  if kind == "REAL":
    if isinstance(value, bool) or not isinstance(value, int | float):
      raise ValueError(f"{table}.{column} must be a number, got {value!r}")
    # sqlite3 stores NaN as NULL; pandas reads NULL in a REAL column back as NaN.
    return None if math.isnan(value) else float(value)
  if not isinstance(value, str):
    raise ValueError(f"{table}.{column} must be a string, got {value!r}")
  return value


def _check_table(table: str) -> None:
  if table not in _SCHEMA:
    raise ValueError(f"unknown results table {table!r}; valid tables: {', '.join(TABLES)}")


def _row_values(table: str, row: Mapping[str, Any], now: float) -> tuple:
  unknown = sorted(set(row) - set(COLUMNS[table]))
  if unknown:
    raise ValueError(
      f"unknown column(s) {unknown} for table {table!r}; valid: {', '.join(COLUMNS[table])} "
      "(put free-form values in `extra`)"
    )
  values = []
  for column in COLUMNS[table]:
    value = _cell(table, column, row.get(column))
    if column == "created_at" and value is None:
      value = now
    if value is None and column in KEYS[table]:
      raise ValueError(f"{table} row is missing key column {column!r}: {dict(row)!r}")
    values.append(value)
  return tuple(values)


def _create_sql(table: str) -> str:
  cols, key = _SCHEMA[table]
  defs = [f"{c} {t}{' NOT NULL' if c in key else ''}" for c, t in cols]
  return f"CREATE TABLE IF NOT EXISTS {table} ({', '.join(defs)}, PRIMARY KEY ({', '.join(key)}))"


def _select_all(conn: sqlite3.Connection, table: str) -> list[tuple]:
  """Every row of `table` in the schema's column order."""
  return list(conn.execute(f"SELECT {', '.join(COLUMNS[table])} FROM {table}"))


def shard_paths(workdir: str | os.PathLike) -> list[pathlib.Path]:
  """Every store file of a workdir: `results.sqlite` first, then the shards, sorted."""
  workdir = pathlib.Path(workdir)
  paths = []
  if (workdir / MAIN_FILE).is_file():
    paths.append(workdir / MAIN_FILE)
  if workdir.is_dir():
    paths += sorted(p for p in workdir.iterdir() if _SHARD_RE.match(p.name) and p.is_file())
  return paths


def _connect(path: pathlib.Path, *, busy_timeout_s: float, create: bool) -> sqlite3.Connection:
  if not create:
    # mode=rw, not ro: never creates the file, but may recover the WAL a killed writer left.
    conn = sqlite3.connect(
      f"file:{path.resolve().as_posix()}?mode=rw",
      uri=True,
      timeout=busy_timeout_s,
      isolation_level=None,
    )
  else:
    conn = sqlite3.connect(path, timeout=busy_timeout_s, isolation_level=None)
  conn.execute(f"PRAGMA busy_timeout = {int(busy_timeout_s * 1000)}")
  return conn


class Store:
  """The writer for one workdir (main file, or the shard `results.<shard>.sqlite`)."""

  def __init__(
    self,
    workdir: str | os.PathLike,
    *,
    shard: str | None = None,
    busy_timeout_s: float = 600.0,
    synchronous: str = "NORMAL",
  ):
    self.workdir = pathlib.Path(workdir)
    if shard is not None and not re.fullmatch(r"[A-Za-z0-9_\-]+", shard):
      raise ValueError(f"shard name must match [A-Za-z0-9_-]+, got {shard!r}")
    if synchronous not in ("NORMAL", "FULL"):
      raise ValueError(f"synchronous must be 'NORMAL' or 'FULL', got {synchronous!r}")
    workdir_files.ensure_format(self.workdir)  # refuses an old workdir; stamps a new one
    self.path = self.workdir / (MAIN_FILE if shard is None else f"results.{shard}.sqlite")
    self._busy_timeout_s = busy_timeout_s
    self._conn: sqlite3.Connection | None = _connect(
      self.path, busy_timeout_s=busy_timeout_s, create=True
    )
    self._in_txn = False
    self._enable_wal()
    self._conn.execute(f"PRAGMA synchronous = {synchronous}")
    with self.transaction():
      for table in TABLES:
        self._conn.execute(_create_sql(table))

  def _enable_wal(self) -> None:
    # Switching a new file to WAL needs an exclusive lock, and SQLite answers "database is
    # locked" at once (busy_timeout does not apply) when another process is opening the same
    # new file: retry until busy_timeout_s.
    deadline = time.monotonic() + self._busy_timeout_s
    while True:
      try:
        self._conn.execute("PRAGMA journal_mode = WAL")
        return
      except sqlite3.OperationalError as e:
        if "locked" not in str(e) or time.monotonic() > deadline:
          raise
        time.sleep(0.05)

  # -- plumbing -----------------------------------------------------------------------------

  @property
  def conn(self) -> sqlite3.Connection:
    if self._conn is None:
      raise ValueError(f"results store {self.path} is closed")
    return self._conn

  def close(self) -> None:
    if self._conn is not None:
      self._conn.close()
      self._conn = None

  def __enter__(self) -> Store:
    return self

  def __exit__(self, *exc) -> None:
    self.close()

  @contextlib.contextmanager
  def transaction(self) -> Iterator[sqlite3.Connection]:
    """One atomic write transaction; nested calls join the outer one."""
    if self._in_txn:
      yield self.conn
      return
    conn = self.conn
    # IMMEDIATE takes the write lock up front, so two writers never deadlock on an upgrade.
    conn.execute("BEGIN IMMEDIATE")
    self._in_txn = True
    try:
      yield conn
    except BaseException:
      # SQLite may have rolled back already (SQLITE_FULL: disk or database full, SQLITE_IOERR):
      # a ROLLBACK then fails with "no transaction is active" and hides the real error.
      if conn.in_transaction:
        conn.execute("ROLLBACK")
      raise
    else:
      conn.execute("COMMIT")
    finally:
      self._in_txn = False

  # -- writes -------------------------------------------------------------------------------

  def add_rows(
    self, table: str, rows: Iterable[Mapping[str, Any]], *, on_conflict: str = "replace"
  ) -> int:
    """Writes rows to `table` in one transaction; returns how many were given."""
    _check_table(table)
    if on_conflict not in ("replace", "ignore"):
      raise ValueError(f"on_conflict must be 'replace' or 'ignore', got {on_conflict!r}")
    now = time.time()
    values = [_row_values(table, row, now) for row in rows]
    cols = COLUMNS[table]
    sql = (
      f"INSERT OR {on_conflict.upper()} INTO {table} ({', '.join(cols)}) "
      f"VALUES ({', '.join('?' * len(cols))})"
    )
    with self.transaction() as conn:
      conn.executemany(sql, values)
    return len(values)

  def add_checkpoint(self, *, on_conflict: str = "replace", **row: Any) -> None:
    self.add_rows("checkpoints", [row], on_conflict=on_conflict)

  def add_scores(self, rows: Iterable[Mapping[str, Any]], *, on_conflict: str = "replace") -> int:
    return self.add_rows("scores", rows, on_conflict=on_conflict)

  def add_finetune(self, rows: Iterable[Mapping[str, Any]], *, on_conflict: str = "replace") -> int:
    return self.add_rows("finetune", rows, on_conflict=on_conflict)

  def mark_done(
    self,
    job: str,
    key: Any,
    rows_by_table: Mapping[str, Iterable[Mapping[str, Any]]] | None = None,
    *,
    extra: Any = None,
    on_conflict: str = "replace",
  ) -> None:
    """Writes `rows_by_table` and the marker `done(job, key)` in ONE transaction."""
    rows_by_table = dict(rows_by_table or {})
    for table in rows_by_table:
      _check_table(table)
      if table == "done":
        raise ValueError("write done markers with mark_done's job/key, not as rows")
    with self.transaction():
      for table, rows in rows_by_table.items():
        self.add_rows(table, rows, on_conflict=on_conflict)
      self.add_rows("done", [{"job": job, "key": key_str(key), "extra": extra}])

  def record_failure(
    self, job: str, checkpoint: Sequence[Any], *, target: str, path: str, error: str
  ) -> None:
    """Records that `job` could not use `checkpoint` (source, arch, seed, step) for `target`."""
    source, arch, seed, step = checkpoint
    row = dict(job=job, source=source, arch=arch, seed=seed, step=step, target=target,
               path=str(path), error=str(error))  # fmt: skip
    self.add_rows("failures", [row])

  def clear_failure(self, job: str, checkpoint: Sequence[Any], *, target: str) -> None:
    """Forgets a recorded failure of `job` on `checkpoint` for `target` (it worked this time)."""
    with self.transaction() as conn:
      conn.execute(
        "DELETE FROM failures WHERE job = ? AND source = ? AND arch = ? AND seed = ? "
        "AND step = ? AND target = ?",
        (job, *(_plain(v) for v in checkpoint), target),
      )

  # -- reads (this file and every other store file of the workdir) --------------------------

  def _query_all(self, sql: str, params: Sequence[Any] = ()) -> list[tuple]:
    out = list(self.conn.execute(sql, params))
    for path in shard_paths(self.workdir):
      if path.resolve() == self.path.resolve():
        continue
      out += _query_file(path, sql, params, self._busy_timeout_s)
    return out

  def is_done(self, job: str, key: Any) -> bool:
    return bool(
      self._query_all("SELECT 1 FROM done WHERE job = ? AND key = ?", (job, key_str(key)))
    )

  def done_keys(self, job: str) -> set[str]:
    """Canonical keys (see `key_str`) of every unit of `job` marked done in any store file."""
    return {k for (k,) in self._query_all("SELECT key FROM done WHERE job = ?", (job,))}

  def keys(self, table: str) -> set[tuple]:
    """The primary-key tuples present in `table` (all store files)."""
    _check_table(table)
    return set(self._query_all(f"SELECT {', '.join(KEYS[table])} FROM {table}"))


def _query_file(path: pathlib.Path, sql: str, params: Sequence[Any], timeout: float) -> list[tuple]:
  return _read_file(path, lambda conn: list(conn.execute(sql, params)), timeout)


def _read_file(path: pathlib.Path, read, timeout: float) -> list[tuple]:
  """`read(connection)` on a read connection to one store file, with the store's errors."""
  conn = _connect(path, busy_timeout_s=timeout, create=False)
  try:
    return read(conn)
  except sqlite3.OperationalError as e:
    if "no such table" in str(e):  # a shard created by a newer/older writer: nothing to read
      return []
    raise ValueError(f"cannot read results store {path}: {e}") from e
  finally:
    conn.close()


def load(workdir: str | os.PathLike, table: str):
  """`table` from every store file of `workdir` as one pandas DataFrame (latest row per key)."""
  import pandas as pd

  _check_table(table)
  paths = shard_paths(workdir)
  if not paths:
    raise FileNotFoundError(f"no results store in {workdir} (expected {MAIN_FILE} or shards)")
  workdir_files.check_format(workdir)
  cols = COLUMNS[table]
  frames = []
  for path in paths:
    rows = _read_file(path, lambda conn: _select_all(conn, table), 600.0)
    if rows:
      frames.append(pd.DataFrame.from_records(rows, columns=list(cols)))
  if not frames:
    return _empty_frame(table)
  df = pd.concat(frames, ignore_index=True)
  if len(frames) > 1:
    df = df.sort_values("created_at", kind="stable").drop_duplicates(list(KEYS[table]), keep="last")
  df = df.sort_values(list(KEYS[table]), kind="stable").reset_index(drop=True)
  return _typed(df, table)


def _empty_frame(table: str):
  import pandas as pd

  return _typed(pd.DataFrame({c: [] for c in COLUMNS[table]}), table)


def _typed(df, table: str):
  # REAL columns as float64 (NULL -> NaN); key INTEGER columns as int64 (never NULL); other
  # INTEGER columns nullable.
  for column, kind in TYPES[table].items():
    if kind == "REAL":
      df[column] = df[column].astype("float64")
    elif kind == "INTEGER":
      df[column] = df[column].astype("int64" if column in KEYS[table] else "Int64")
    else:
      df[column] = df[column].astype("object")
  return df


def export(
  workdir: str | os.PathLike,
  out_dir: str | os.PathLike,
  *,
  fmt: str = "csv",
  tables: Sequence[str] = ("checkpoints", "scores", "finetune"),
) -> list[pathlib.Path]:
  """Writes each table to `out_dir/<table>.csv` or `.parquet`; returns the paths."""
  if fmt not in ("csv", "parquet"):
    raise ValueError(f"fmt must be 'csv' or 'parquet', got {fmt!r}")
  if fmt == "parquet":
    try:
      import pyarrow  # noqa: F401
    except ImportError as e:
      raise ImportError(
        "Parquet export needs pyarrow: pip install 'jtransfer[parquet]' (or use fmt='csv')"
      ) from e
  out_dir = pathlib.Path(out_dir)
  out_dir.mkdir(parents=True, exist_ok=True)
  written = []
  for table in tables:
    df = load(workdir, table)
    path = out_dir / f"{table}.{fmt}"
    # A kill or a full disk never leaves half a table.
    with workdir_files.replaced_whole(path) as tmp:
      if fmt == "csv":
        df.to_csv(tmp, index=False)
      else:
        df.to_parquet(tmp, index=False)
    written.append(path)
  return written

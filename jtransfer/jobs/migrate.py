"""`python -m jtransfer migrate WORKDIR`: upgrades an older workdir to the format the jobs read.

The jobs read one format (`workdir.FORMAT`) and refuse any other with one line naming this
command, so every upgrade lives here, out of their way. Format 1 (no `format.json`) to 2:

- every store file gets the columns added since it was made (NULL) and the no-layer marker
  `results.NO_LAYER` where it held "";
- every checkpoint without a zoo record (in the zoo tree or listed in the store's `checkpoints`
  table) gets one, derived from its saved pre-training row and store row, the dataset registry
  (num_classes), the pre-training entries of `config.json` (model_kwargs, default none) and the
  thesis schedule (index). The checkpoint is written anew beside the old one and swapped in: the
  same arrays, the same content hash;
Format 2 to 3 (one done-key shape): every done marker written as a string by older pre-training
(`mnist/cnn/seed_0/step_3`) becomes the canonical key of its tuple (`results.key_str` of
`(source, arch, seed, step)`), as every job writes and reads them now.

`format.json` is written last, so a migration stopped half-way is simply run again.

It runs under the workdir's lock: never beside a job.
"""

from __future__ import annotations

import json
import logging
import os
import pathlib
import re
import shutil
import sqlite3
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from jtransfer.store import checkpointing, results, zoo
from jtransfer.store import workdir as workdir_files

log = logging.getLogger(__name__)


def migrate(workdir: str | os.PathLike) -> list[str]:
  """Upgrades `workdir` to `workdir.FORMAT`; returns one line per change made."""
  workdir = pathlib.Path(workdir)
  if not workdir.is_dir():
    raise FileNotFoundError(f"no workdir at {workdir}")
  version = workdir_files.format_of(workdir)
  if version is None:
    raise ValueError(f"{workdir} holds no results store and no zoo: nothing to migrate")
  if version > workdir_files.FORMAT:
    workdir_files.check_format(workdir)  # raises, naming both versions
  if version == workdir_files.FORMAT:
    return [f"{workdir} is already format {version}"]
  done = []
  with workdir_files.locked(workdir, "migrate", check=False):
    for v in range(version, workdir_files.FORMAT):
      done += [f"format {v} -> {v + 1}: {line}" for line in _STEPS[v](workdir)]
    workdir_files.write_format(workdir)
  return [*done, f"{workdir} is now format {workdir_files.FORMAT}"]


# -- format 1 -> 2 ----------------------------------------------------------------------------


def _from_1(workdir: pathlib.Path) -> list[str]:
  lines = [line for path in results.shard_paths(workdir) for line in _upgrade_store(path)]
  return lines + _add_zoo_records(workdir)


def _upgrade_store(path: pathlib.Path) -> list[str]:
  """Adds the columns an older store lacks and writes the no-layer marker, in one transaction."""
  lines = []
  conn = sqlite3.connect(path, isolation_level=None, timeout=600.0)
  try:
    conn.execute("BEGIN IMMEDIATE")
    for table in results.TABLES:
      have = {row[1] for row in conn.execute(f"PRAGMA table_info({table})")}
      if not have:
        continue  # the store creates it on first open
      for column, sql_type in results.TYPES[table].items():
        if column not in have:
          conn.execute(f"ALTER TABLE {table} ADD COLUMN {column} {sql_type}")
          lines.append(f"{path.name}: {table}.{column} added")
    if "layer" in {row[1] for row in conn.execute("PRAGMA table_info(scores)")}:
      # A key may hold both ("" from before the marker, "-" since): the marker's row stays.
      n = conn.execute(
        "UPDATE OR IGNORE scores SET layer = ? WHERE layer = ''", (results.NO_LAYER,)
      ).rowcount
      conn.execute("DELETE FROM scores WHERE layer = ''")
      if n:
        lines.append(f"{path.name}: {n} score rows' layer '' -> {results.NO_LAYER!r}")
    conn.execute("COMMIT")
  except BaseException:
    conn.execute("ROLLBACK")
    raise
  finally:
    conn.close()
  return lines


def _add_zoo_records(workdir: pathlib.Path) -> list[str]:
  """Writes a record into every checkpoint that lacks one (see the module docstring)."""
  rows = _store_rows(workdir)
  paths = {key: path for path, key in zoo.checkpoint_dirs(workdir)}
  for key, row in rows.items():
    if key not in paths and row.get("path"):
      path = pathlib.Path(row["path"])
      path = path if path.is_absolute() else workdir / path
      if checkpointing.exists(path):
        paths[key] = path
  runs: dict[tuple, list[int]] = {}
  for key in paths:
    runs.setdefault(key[:3], []).append(key[3])
  kwargs = _config_model_kwargs(workdir)
  lines = []
  for key, path in sorted(paths.items()):
    path = _recover(pathlib.Path(path))
    extra = checkpointing.read_extra(path)
    if zoo.RECORD_KEY in extra:
      continue
    where = dict(zip(("source", "arch", "seed", "step"), key, strict=True))
    entry = legacy_entry({**where, **rows.get(key, {}), **extra}, path, kwargs, runs[key[:3]])
    _rewrite(path, entry)
    lines.append(f"{path}: zoo record written")
  return lines


def legacy_entry(
  row: Mapping[str, Any],
  path: pathlib.Path,
  config_kwargs: Mapping[tuple[str, str], dict] | None = None,
  known_steps: Sequence[int] = (),
) -> zoo.Entry:
  """The record of a checkpoint saved before records existed, from its saved row (and store
  row); `config_kwargs`: {(source, arch): model_kwargs} of the workdir's config.json."""
  missing = [k for k in ("source", "arch", "seed", "step") if row.get(k) is None]
  if missing:
    raise ValueError(
      f"checkpoint {path} has no zoo record and its metadata lacks {missing}: it was not "
      "written by jtransfer's pre-training; describe it with jtransfer.store.zoo.write_entry"
    )
  source, arch, step = str(row["source"]), str(row["arch"]), int(row["step"])
  epoch = _finite_or_none(row.get("epoch"))
  nc = row.get("num_classes")
  if nc is None:
    from jtransfer import data as datasets  # noqa: PLC0415 (the registry, only when needed)

    if source not in datasets.names():
      raise ValueError(
        f"checkpoint {path}: its number of classes is not saved and {source!r} is no "
        "registered dataset: register it (or its image folder) and migrate again"
      )
    nc = datasets.get(source).num_classes
  kwargs = row.get("model_kwargs")
  if kwargs is None:
    kwargs = dict((config_kwargs or {}).get((source, arch), {}))
  provenance = row.get("provenance")  # written by importers before the record existed
  return zoo.Entry(
    source=source,
    arch=arch,
    seed=int(row["seed"]),
    step=step,
    num_classes=int(nc),
    model_kwargs=dict(kwargs),
    index=legacy_index(step, epoch, known_steps),
    epoch=epoch,
    origin=zoo.TRAINED if provenance is None else zoo.IMPORTED,
    imported_from=None
    if provenance is None
    else {**dict.fromkeys(zoo.IMPORT_FIELDS), **provenance},
    metrics={
      k: float(row[k]) for k in zoo.INDEX_METRICS if _finite_or_none(row.get(k)) is not None
    },
  )


def legacy_index(step: int, epoch: float | None, known_steps: Sequence[int] = ()) -> int | None:
  """Position of `step` in its run's schedule: from the thesis schedule when the epoch gives the
  steps per epoch (the position does not depend on the run's length), else its position among
  `known_steps` (None when those are not given)."""
  from jtransfer.train import schedule  # noqa: PLC0415

  if step == 0:
    return 0
  if epoch:
    spe = round(step / epoch)
    if spe >= 1:
      return sum(s < step for s in schedule.log_checkpoint_steps(spe, step))
  if not known_steps:
    return None
  return sorted(set(known_steps) | {step}).index(step)


def _finite_or_none(value) -> float | None:
  try:
    value = float(value)
  except (TypeError, ValueError):
    return None
  return value if value == value and abs(value) != float("inf") else None


def _config_model_kwargs(workdir: pathlib.Path) -> dict[tuple[str, str], dict]:
  """{(source, arch): model_kwargs} from the pre-training entries of `<workdir>/config.json`."""
  path = workdir / "config.json"
  if not path.exists():
    return {}
  entries = json.loads(path.read_text() or "[]")
  out = {}
  for item in entries if isinstance(entries, list) else [entries]:
    c = item.get("config", {})
    if item.get("job") == "pretrain" and "source" in c and "arch" in c:
      out[(c["source"], c["arch"])] = dict(c.get("model_kwargs") or {})
  return out


def _store_rows(workdir: pathlib.Path) -> dict[tuple, dict[str, Any]]:
  """{key: row} of the store's `checkpoints` table, without empty cells (read directly: the
  store refuses an unmigrated workdir)."""
  out: dict[tuple, dict[str, Any]] = {}
  cols = results.COLUMNS["checkpoints"]
  for path in results.shard_paths(workdir):
    conn = sqlite3.connect(f"file:{path.resolve().as_posix()}?mode=ro", uri=True)
    try:
      have = {row[1] for row in conn.execute("PRAGMA table_info(checkpoints)")}
      names = [c for c in cols if c in have]
      if not have:
        continue
      for values in conn.execute(f"SELECT {', '.join(names)} FROM checkpoints"):
        r = dict(zip(names, values, strict=True))
        row = {k: v for k, v in r.items() if k not in ("extra", "created_at") and v is not None}
        out[(r["source"], r["arch"], int(r["seed"]), int(r["step"]))] = row
    finally:
      conn.close()
  return out


def _backup(path: pathlib.Path) -> pathlib.Path:
  return path.with_name(f".{path.name}.before-migrate")


def _recover(path: pathlib.Path) -> pathlib.Path:
  """Puts back a checkpoint a killed `_rewrite` left moved aside."""
  old = _backup(path)
  if old.exists():
    if checkpointing.exists(path):
      shutil.rmtree(old)
    else:
      shutil.rmtree(path, ignore_errors=True)
      os.replace(old, path)
  return path


def _rewrite(path: pathlib.Path, entry: zoo.Entry) -> None:
  """Saves the checkpoint's arrays with `entry`'s record beside it, then swaps it in."""
  tree = checkpointing.restore(path)
  digest = checkpointing.content_hash(path)
  new = path.with_name(f".{path.name}.migrating")
  shutil.rmtree(new, ignore_errors=True)
  checkpointing.save(new, tree, extra={zoo.RECORD_KEY: entry.record()}, process_local=True)
  if digest is not None and checkpointing.content_hash(new) != digest:
    shutil.rmtree(new)
    raise ValueError(f"checkpoint {path}: the rewritten arrays hash differently; left as it was")
  os.replace(path, _backup(path))
  os.replace(new, path)
  shutil.rmtree(_backup(path))


# -- format 2 -> 3 ----------------------------------------------------------------------------

_OLD_PRETRAIN_KEY = re.compile(
  r"^(?P<source>[^/]+)/(?P<arch>[^/]+)/seed_(?P<seed>\d+)/step_(?P<step>\d+)$"
)


def canonical_key(job: str, key: str) -> str:
  """The canonical done key of a marker `key` of `job` (unchanged when it is one already)."""
  if key.startswith("["):
    return key
  m = _OLD_PRETRAIN_KEY.match(key)
  if job == "pretrain" and m:
    return results.key_str((m["source"], m["arch"], int(m["seed"]), int(m["step"])))
  raise ValueError(f"done marker {key!r} of job {job!r} has no known shape; cannot migrate it")


def _from_2(workdir: pathlib.Path) -> list[str]:
  lines = []
  for path in results.shard_paths(workdir):
    conn = sqlite3.connect(path)
    try:
      with conn:
        tables = {r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type='table'")}
        rows = conn.execute("SELECT job, key FROM done").fetchall() if "done" in tables else []
        old = [(job, key, canonical_key(job, key)) for job, key in rows]
        old = [r for r in old if r[1] != r[2]]
        for job, key, new in old:  # the new key wins where both are there
          conn.execute(
            "UPDATE OR IGNORE done SET key = ? WHERE job = ? AND key = ?", (new, job, key)
          )
          conn.execute("DELETE FROM done WHERE job = ? AND key = ?", (job, key))
    finally:
      conn.close()
    if old:
      lines.append(f"{path.name}: {len(old)} done markers rewritten as key tuples")
  return lines


_STEPS: dict[int, Callable[[pathlib.Path], list[str]]] = {1: _from_1, 2: _from_2}

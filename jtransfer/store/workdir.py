"""What every job keeps in its run directory besides results: the format version, the config
log, a log file and the lock that keeps a second job out while one runs.

Format. `<workdir>/format.json` holds the version of the workdir's layout (`FORMAT`), written
before the first store or zoo write (`ensure_format`). A workdir without it that already holds a
store or a zoo predates the versions (format 1); it and any other older one are refused (by the
lock, the store and the zoo) with one line naming `python -m jtransfer migrate WORKDIR`, which
upgrades it (`jtransfer.jobs.migrate`): the jobs read one format only.

Lock. `locked(workdir, job)` (or the `holds_lock(job)` decorator on a job's `run`) takes an
exclusive `flock` on `<workdir>/.lock` and writes who holds it (host, pid, job, since when,
process count) into the file. A second job on the same workdir stops at once with
`WorkdirInUseError` naming the holder. The kernel releases a flock when its process dies, so a
lock left by a killed job (`kill -9`, OOM) never blocks the next run; the stale holder text is
simply overwritten. Re-entrant within one process (the sweep runs its stages in one process).
On network filesystems Linux maps flock to NFS byte-range locks (NFSv4: held across hosts).

Several processes of one job (`jax.distributed`, sharing the workdir, each writing its own
store shard): only process 0 takes the lock (the processes of one job must not exclude each
other, and every job has a process 0, so two jobs always meet there); its outcome is broadcast
to every process, so all of them go on together or all stop with the error.
"""

from __future__ import annotations

import contextlib
import dataclasses
import datetime
import fcntl
import functools
import json
import logging
import os
import pathlib
import socket
from collections.abc import Callable, Iterator, Mapping
from typing import Any

LOCK_FILE = ".lock"
FORMAT_FILE = "format.json"
FORMAT = 3  # this jtransfer's workdir format; 1 = no format.json (before versions existed)
_held: dict[str, list] = {}  # lock path -> [fd, depth] of the locks this process holds


class WorkdirInUseError(RuntimeError):
  """Another job holds the workdir's lock."""


class WorkdirFormatError(ValueError):
  """The workdir's format is not the one this jtransfer reads."""


def _has_state(workdir: pathlib.Path) -> bool:
  """Whether the workdir holds results or checkpoints (a new or empty one does not)."""
  if (workdir / "zoo").is_dir() and any((workdir / "zoo").iterdir()):
    return True
  return workdir.is_dir() and any(p.name.startswith("results.") for p in workdir.iterdir())


def format_of(workdir: str | os.PathLike) -> int | None:
  """The workdir's format version; None for a new or empty one (no store, no zoo)."""
  workdir = pathlib.Path(workdir)
  path = workdir / FORMAT_FILE
  if path.is_file():
    try:
      version = json.loads(path.read_text())["format"]
    except (ValueError, KeyError, TypeError) as e:
      raise WorkdirFormatError(f"{path} is not a jtransfer format record ({e})") from None
    if isinstance(version, bool) or not isinstance(version, int):
      raise WorkdirFormatError(f"{path}: format must be an integer, got {version!r}")
    return version
  return 1 if _has_state(workdir) else None


def check_format(workdir: str | os.PathLike) -> None:
  """Raises `WorkdirFormatError` (one line) unless the workdir is new or of format `FORMAT`."""
  version = format_of(workdir)
  if version is None or version == FORMAT:
    return
  if version > FORMAT:
    raise WorkdirFormatError(
      f"workdir {workdir} has format {version}, newer than this jtransfer's {FORMAT}: "
      "use the jtransfer that wrote it"
    )
  raise WorkdirFormatError(
    f"workdir {workdir} has format {version}, this jtransfer reads format {FORMAT}: "
    f"run `python -m jtransfer migrate {workdir}` first"
  )


def write_format(workdir: str | os.PathLike) -> None:
  """Records `FORMAT` in `<workdir>/format.json` (atomically)."""
  workdir = pathlib.Path(workdir)
  workdir.mkdir(parents=True, exist_ok=True)
  with replaced_whole(workdir / FORMAT_FILE) as tmp:
    tmp.write_text(json.dumps({"format": FORMAT}) + "\n")


def ensure_format(workdir: str | os.PathLike) -> None:
  """`check_format`, then stamps a new workdir with `FORMAT` (before anything else is written
  there, so that a workdir with state and no stamp is always an old one)."""
  check_format(workdir)
  if not (pathlib.Path(workdir) / FORMAT_FILE).is_file():
    write_format(workdir)


def _now() -> str:
  return datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds")


def _holder_text(path: pathlib.Path) -> str:
  try:
    info = json.loads(path.read_text() or "{}")
  except (OSError, ValueError):
    info = {}
  if not info:
    return "another process (it has not written its name yet)"
  return (
    f"job {info.get('job')!r} (pid {info.get('pid')} on host {info.get('host')}, "
    f"{info.get('processes', 1)} process(es), since {info.get('since')})"
  )


def _acquire_local(workdir: pathlib.Path, job: str, processes: int) -> str:
  """Takes the lock file's flock for this process (or deepens it); returns the lock path."""
  workdir.mkdir(parents=True, exist_ok=True)
  path = (workdir / LOCK_FILE).absolute()
  key = str(path)
  if key in _held:
    _held[key][1] += 1
    return key
  fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
  try:
    fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
  except BlockingIOError:
    os.close(fd)
    raise WorkdirInUseError(
      f"workdir {workdir} is in use by {_holder_text(path)}: wait for that job to finish or "
      f"use another workdir (lock file {path})"
    ) from None
  info = dict(job=job, host=socket.gethostname(), pid=os.getpid(), since=_now(),
              processes=processes)  # fmt: skip
  os.ftruncate(fd, 0)
  os.pwrite(fd, json.dumps(info).encode(), 0)
  _held[key] = [fd, 1]
  return key


def _release_local(key: str) -> None:
  entry = _held[key]
  entry[1] -= 1
  if entry[1] == 0:
    fd = entry[0]
    del _held[key]
    os.ftruncate(fd, 0)  # before unlocking: a new holder's text is never cut
    fcntl.flock(fd, fcntl.LOCK_UN)
    os.close(fd)


def _agree(ok: bool) -> bool:
  """Whether process 0 got the lock, as every process of a multi-process job sees it."""
  import jax

  if jax.process_count() == 1:
    return ok
  import numpy as np
  from jax.experimental import multihost_utils

  return bool(multihost_utils.broadcast_one_to_all(np.int32(ok)))


@contextlib.contextmanager
def locked(workdir: str | os.PathLike, job: str, *, check: bool = True) -> Iterator[None]:
  """Holds `<workdir>/.lock` for `job` while the block runs (see the module docstring); with
  `check`, refuses a workdir of another format (`check_format`)."""
  import jax

  workdir = pathlib.Path(workdir)
  key, error = None, None
  if jax.process_index() == 0:
    try:
      key = _acquire_local(workdir, job, jax.process_count())
      if check:
        check_format(workdir)
    except (WorkdirInUseError, WorkdirFormatError) as e:
      error = e
  try:
    if not _agree(error is None):
      raise error or WorkdirInUseError(
        f"workdir {workdir}: process 0 of this job could not lock it or refused its format "
        "(see its log)"
      )
    yield
  finally:
    if key is not None:
      _release_local(key)


def holds_lock(job: str) -> Callable:
  """Decorates a job's `run(*, workdir, ...)` so that it runs under `locked(workdir, job)`."""

  def decorate(fn: Callable) -> Callable:
    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
      if "workdir" not in kwargs:
        raise TypeError(f"{fn.__qualname__}() needs the keyword argument workdir")
      with locked(kwargs["workdir"], job):
        return fn(*args, **kwargs)

    return wrapper

  return decorate


@contextlib.contextmanager
def replaced_whole(path: str | os.PathLike) -> Iterator[pathlib.Path]:
  """Yields a tmp path beside `path` to write the new file to; renames it over `path` once the
  block ends, removes it if the block raises. A reader (or a rerun after `kill -9` or a full
  disk) finds the old file or the whole new one, never a part; a kill leaves at most a hidden
  `.<name>.<pid>.tmp` beside it."""
  path = pathlib.Path(path)
  tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
  try:
    yield tmp
    os.replace(tmp, path)
  except BaseException:
    tmp.unlink(missing_ok=True)
    raise


def config_record(config: Any) -> dict[str, Any]:
  """A JSON-ready dict of a config dataclass (paths as strings; a workdir left out):
  what `append_config` records of a job's config."""
  record = dataclasses.asdict(config) if dataclasses.is_dataclass(config) else dict(config)
  record.pop("workdir", None)
  return {k: (os.fspath(v) if isinstance(v, os.PathLike) else v) for k, v in record.items()}


def append_config(workdir: str | os.PathLike, job: str, config: Mapping[str, Any]) -> None:
  """Appends `{job, time, config}` to `<workdir>/config.json` (a JSON list), atomically."""
  path = pathlib.Path(workdir) / "config.json"
  entries = []
  if path.exists():
    loaded = json.loads(path.read_text() or "[]")
    entries = loaded if isinstance(loaded, list) else [loaded]
  now = datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds")
  entries.append({"job": job, "time": now, "config": config})
  with replaced_whole(path) as tmp:
    tmp.write_text(json.dumps(entries, indent=2, default=str))


def file_logging(workdir: str | os.PathLike, job: str, logger: logging.Logger) -> logging.Handler:
  """Sends `logger` to `<workdir>/logs/<job>.log`; remove the returned handler when done.

  When `logger` or a logger above it already writes that file (the sweep logs the whole package
  to score.log while the score job opens its own), its records reach the file through that
  handler: the returned one is a NullHandler, so no line is written twice.
  """
  logs = pathlib.Path(workdir) / "logs"
  logs.mkdir(parents=True, exist_ok=True)
  path = logs / f"{job}.log"
  if _writes_file(logger, path):
    handler = logging.NullHandler()
  else:
    handler = logging.FileHandler(path)
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(message)s"))
  logger.addHandler(handler)
  logger.setLevel(logging.INFO)
  return handler


def _writes_file(logger: logging.Logger, path: pathlib.Path) -> bool:
  """Whether a handler on `logger` or on an ancestor its records propagate to writes `path`."""
  target = os.path.abspath(path)
  current: logging.Logger | None = logger
  while current is not None:
    if any(getattr(h, "baseFilename", None) == target for h in current.handlers):
      return True
    current = current.parent if current.propagate else None
  return False

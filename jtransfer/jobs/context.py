"""Where a job runs (`Runtime`) and the context it runs in (`Context`).

A stage job is `run(config, runtime)`: `config` is the stage's frozen dataclass (what to compute:
its one schema), `runtime` says where and how (workdir, data dir, store shard, devices, progress
bar), which never changes a result. `build` splits a flat mapping (a study config's section) into
the two. Inside, the job opens one `Context`:

  with job.open_context(runtime, "score", config, logger=log) as ctx:
    mine = ctx.share(items)      # this process's deterministic share of the work
    done = ctx.done()            # {done key: marker extra} of the job, every store file
    ctx.store.mark_done(...)     # the process's own store shard (merged on read)
    ctx.record_config()          # appends the typed config to <workdir>/config.json (process 0)
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import logging
import os
import pathlib
from collections.abc import Iterator, Mapping, Sequence
from typing import Any

import jax

from jtransfer.store import results
from jtransfer.store import workdir as workdir_files


@dataclasses.dataclass(frozen=True)
class Runtime:
  """Where and how a job runs; nothing here changes what it computes.

  data_dir: the datasets (None: $JTRANSFER_DATA_DIR). store_shard: the store file this process
  writes (None: the main one, or `host<i>` under several processes). num_devices: use the first
  n local devices (None: all). first_process: work item 0 goes to this process (the sweep counts
  on across the sources of a zoo, so that short lists do not all land on process 0).
  """

  workdir: pathlib.Path
  data_dir: str | None = None
  store_shard: str | None = None
  num_devices: int | None = None
  show_progress: bool = True
  first_process: int = 0

  def __post_init__(self):
    object.__setattr__(self, "workdir", pathlib.Path(self.workdir))
    if self.data_dir is not None:
      object.__setattr__(self, "data_dir", os.fspath(self.data_dir))
    n = self.num_devices
    if n is not None and (isinstance(n, bool) or not isinstance(n, int) or n < 1):
      raise ValueError(f"num_devices must be an int >= 1 or None, got {n!r}")


# The runtime fields a study config's stage section may set (the sweep sets the others).
STAGE_RUNTIME = ("store_shard", "num_devices", "show_progress")


def runtime(where: Runtime | str | os.PathLike) -> Runtime:
  """`where` as a `Runtime` (a bare path: that workdir, every other field its default)."""
  return where if isinstance(where, Runtime) else Runtime(workdir=pathlib.Path(where))


def make_config(config_type: type, fields: Mapping[str, Any], *, what: str = "", also=()):
  """`config_type(**fields)`, with one-line errors that start with `what` ("pretrain (mnist)"):
  an unknown key (keys in `also` are let through, for the caller) or a value a check rejects."""
  names = {f.name for f in dataclasses.fields(config_type)}
  prefix = f"{what}: " if what else ""
  unknown = sorted(set(fields) - names - set(also))
  if unknown:
    valid = ", ".join(sorted(names | (set(also) & set(STAGE_RUNTIME))))
    raise ValueError(f"{prefix}unknown key {', '.join(map(repr, unknown))}; valid: {valid}")
  try:
    return config_type(**{k: v for k, v in fields.items() if k in names})
  except (TypeError, ValueError) as e:
    raise ValueError(f"{prefix}{e}") from None


def build(config_type: type, fields: Mapping[str, Any], *, what: str = "", **runtime_fields):
  """(config, Runtime) from one flat mapping of both (a study config's section, a test's
  keyword arguments), plus runtime fields the caller sets (workdir, data_dir, ...)."""
  run_names = [f.name for f in dataclasses.fields(Runtime)]
  config = make_config(config_type, fields, what=what, also=run_names)
  rt = {**{k: v for k, v in fields.items() if k in run_names}, **runtime_fields}
  try:
    return config, Runtime(**rt)
  except (TypeError, ValueError) as e:
    raise ValueError(f"{what}: {e}" if what else str(e)) from None


@dataclasses.dataclass
class Context:
  workdir: pathlib.Path
  job: str
  config: Any  # the job's frozen dataclass
  process_index: int
  process_count: int
  devices: tuple  # this process's devices the job may use
  store_shard: str | None
  runtime: Runtime | None = None
  _store: results.Store | None = None

  @property
  def store(self) -> results.Store:
    """This process's store shard, opened on first use (a job with nothing to do opens none)."""
    if self._store is None:
      self._store = results.Store(self.workdir, shard=self.store_shard)
    return self._store

  @property
  def data_dir(self) -> str | None:
    return None if self.runtime is None else self.runtime.data_dir

  @property
  def show_progress(self) -> bool:
    return True if self.runtime is None else self.runtime.show_progress

  def share(self, items: Sequence, *, first_process: int | None = None) -> list:
    """This process's share of `items`: every `process_count`-th, item 0 going to process
    `first_process` (default: the runtime's)."""
    if first_process is None:
      first_process = 0 if self.runtime is None else self.runtime.first_process
    start = (self.process_index - first_process) % self.process_count
    return list(items)[start :: self.process_count]

  def done(self) -> dict[str, Any]:
    """{done key: its marker's extra (None: none)} of this job over every store file: the one
    way the jobs read their markers. Keys are `results.key_str` of the job's done-key tuple."""
    if not results.shard_paths(self.workdir):
      return {}
    done = results.load(self.workdir, "done")
    done = done[done["job"] == self.job]
    return {
      k: json.loads(e) if isinstance(e, str) else None
      for k, e in zip(done["key"], done["extra"], strict=True)
    }

  def record_config(self) -> None:
    """Appends the config to `<workdir>/config.json`, from process 0 only."""
    if self.process_index == 0:
      workdir_files.append_config(self.workdir, self.job, workdir_files.config_record(self.config))

  def close(self) -> None:
    if self._store is not None:
      self._store.close()
      self._store = None


def default_shard(store_shard: str | None, process_index: int, process_count: int) -> str | None:
  """The store shard a process writes: the one asked for, else `host<i>` when several run."""
  if store_shard:
    return store_shard
  return f"host{process_index}" if process_count > 1 else None


@contextlib.contextmanager
def open_context(
  where: Runtime | str | os.PathLike,
  job: str,
  config: Any,
  *,
  logger: logging.Logger,
  num_devices: int | None = None,
) -> Iterator[Context]:
  """Creates the workdir, logs `logger` to `<workdir>/logs/<job>.log`, yields the context.

  where: the job's `Runtime` (or a workdir); num_devices: overrides the runtime's."""
  rt = runtime(where)
  if num_devices is not None:
    rt = dataclasses.replace(rt, num_devices=num_devices)
  path, num_devices, store_shard = rt.workdir, rt.num_devices, rt.store_shard
  path.mkdir(parents=True, exist_ok=True)
  local = jax.local_devices()
  devices = tuple(local[:num_devices] if num_devices else local)
  nproc, pid = jax.process_count(), jax.process_index()
  ctx = Context(
    workdir=path,
    job=job,
    config=config,
    process_index=pid,
    process_count=nproc,
    devices=devices,
    store_shard=default_shard(store_shard, pid, nproc),
    runtime=rt,
  )
  handler = workdir_files.file_logging(path, job, logger)
  try:
    yield ctx
  finally:
    ctx.close()
    logger.removeHandler(handler)
    handler.close()

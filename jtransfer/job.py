"""One context for a job run: workdir, log file, store shard, processes, devices, config record.

Pre-training, scoring and fine-tuning each open one `Context` around their work:

  with job.open_context(workdir, "score", config, store_shard=None, num_devices=None) as ctx:
    mine = ctx.share(items)      # this process's deterministic share of the work
    ctx.store.mark_done(...)     # the process's own store shard (merged on read)
    ctx.record_config()          # appends the typed config to <workdir>/config.json (process 0)

`config` is the job's frozen dataclass (its typed, validated parameters); the context records it
once, so `config.json` says what each run was asked to do.
"""

from __future__ import annotations

import contextlib
import dataclasses
import logging
import os
import pathlib
from collections.abc import Iterator, Sequence
from typing import Any

import jax

from jtransfer import results
from jtransfer import workdir as workdir_files


@dataclasses.dataclass
class Context:
  workdir: pathlib.Path
  job: str
  config: Any  # the job's frozen dataclass
  process_index: int
  process_count: int
  devices: tuple  # this process's devices the job may use
  store_shard: str | None
  _store: results.Store | None = None

  @property
  def store(self) -> results.Store:
    """This process's store shard, opened on first use (a job with nothing to do opens none)."""
    if self._store is None:
      self._store = results.Store(self.workdir, shard=self.store_shard)
    return self._store

  def share(self, items: Sequence, *, first_process: int = 0) -> list:
    """This process's share of `items`: every `process_count`-th, item 0 going to process
    `first_process` (a caller that splits several lists in turn passes where the last ended, so
    that short lists do not all land on process 0)."""
    start = (self.process_index - first_process) % self.process_count
    return list(items)[start :: self.process_count]

  def record_config(self) -> None:
    """Appends the config to `<workdir>/config.json`, from process 0 only."""
    if self.process_index == 0:
      workdir_files.append_config(self.workdir, self.job, config_record(self.config))

  def close(self) -> None:
    if self._store is not None:
      self._store.close()
      self._store = None


def config_record(config: Any) -> dict[str, Any]:
  """A JSON-ready dict of a config dataclass (paths as strings; workdir left out)."""
  record = dataclasses.asdict(config) if dataclasses.is_dataclass(config) else dict(config)
  record.pop("workdir", None)
  return {k: (os.fspath(v) if isinstance(v, os.PathLike) else v) for k, v in record.items()}


def default_shard(store_shard: str | None, process_index: int, process_count: int) -> str | None:
  """The store shard a process writes: the one asked for, else `host<i>` when several run."""
  if store_shard:
    return store_shard
  return f"host{process_index}" if process_count > 1 else None


@contextlib.contextmanager
def open_context(
  workdir: str | os.PathLike,
  job: str,
  config: Any,
  *,
  logger: logging.Logger,
  store_shard: str | None = None,
  num_devices: int | None = None,
) -> Iterator[Context]:
  """Creates the workdir, logs `logger` to `<workdir>/logs/<job>.log`, yields the context."""
  path = pathlib.Path(workdir)
  path.mkdir(parents=True, exist_ok=True)
  if num_devices is not None and num_devices < 1:
    raise ValueError(f"num_devices must be >= 1 or None, got {num_devices}")
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
  )
  handler = workdir_files.file_logging(path, job, logger)
  try:
    yield ctx
  finally:
    ctx.close()
    logger.removeHandler(handler)
    handler.close()

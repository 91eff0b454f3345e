"""Training curves that outlast the run: the results store's `metrics` table and TensorBoard.

  writer = tracking.MetricWriter(workdir, "pretrain", store)
  writer.scalars("mnist/cnn/seed_0", step=30, values={"train/loss": 0.7, "train/accuracy": 0.8})
  writer.flush()    # one store transaction for everything buffered; writer.close() at the end

Each value becomes a `metrics` row (job, unit, step, name, value) and a TensorBoard scalar
tagged `<name>` (`train/loss`, `eval/test_acc`) in the run `<job>/<unit>`, i.e. the folder
`<workdir>/tensorboard/<job>/<unit>/` (tensorboardX: no TensorFlow needed;
`tensorboard --logdir <workdir>/tensorboard`): one run per seed or fine-tune, so TensorBoard's
run selector overlays and filters them. `config(...)` writes the job's config as text in the
run `<job>`. Rows are buffered and written in one transaction per `flush`, so logging costs no
extra store commits per step. At most `MAX_OPEN_RUNS` event files are open at once (a fine-tune
job has hundreds of units); a run written to again gets a new event file in its folder, which
TensorBoard reads as one run.

Which steps to record: `record_steps` (1-2-5 log spacing plus every `every` steps and the last
step), so a short run still has its first steps and a long one stays small.
"""

from __future__ import annotations

import collections
import contextlib
import itertools
import json
import logging
import math
import os
import pathlib
import time
from collections.abc import Iterator, Mapping
from typing import Any

from jtransfer.store import results
from jtransfer.store import workdir as workdir_files

TENSORBOARD_DIR = "tensorboard"
MAX_OPEN_RUNS = 32
_OPENED = itertools.count()
_log = logging.getLogger("jtransfer.runtime.progress")


def record_steps(total_steps: int, every: int | None = None) -> frozenset[int]:
  """Steps in [0, total_steps) at 1, 2, 5 x 10^k (and 0), every `every`, and the last."""
  if total_steps <= 0:
    return frozenset()
  steps = {0, total_steps - 1}
  decade = 1
  while decade < total_steps:
    steps |= {m * decade for m in (1, 2, 5) if m * decade < total_steps}
    decade *= 10
  if every:
    steps |= set(range(0, total_steps, every))
  return frozenset(steps)


class MetricWriter:
  """Scalars of one job to the store's `metrics` table and to TensorBoard; see the module doc."""

  def __init__(
    self,
    workdir: str | os.PathLike,
    job: str,
    store: results.Store,
    *,
    tensorboard: bool = True,
    process_index: int = 0,
  ):
    self.job, self._store, self._rows = job, store, []
    self._root = pathlib.Path(workdir) / TENSORBOARD_DIR / job if tensorboard else None
    # One event file per process and run (hosts of a pod each write their own).
    self._suffix = f".p{process_index}"
    self._open: collections.OrderedDict[str, Any] = collections.OrderedDict()

  def _run(self, unit: str):
    """The open writer of run `<job>/<unit>` (opened, and the oldest closed, as needed)."""
    if unit in self._open:
      self._open.move_to_end(unit)
      return self._open[unit]
    from tensorboardX import SummaryWriter  # noqa: PLC0415  (only when used)

    if len(self._open) >= MAX_OPEN_RUNS:
      self._open.popitem(last=False)[1].close()
    logdir = self._root / unit if unit else self._root
    # Event file names carry only the second they were opened: a run reopened within it would
    # overwrite its first file without a counter in the name.
    suffix = f"{self._suffix}.{next(_OPENED)}"
    self._open[unit] = SummaryWriter(logdir=str(logdir), filename_suffix=suffix)
    return self._open[unit]

  def scalars(self, unit: str, step: int, values: Mapping[str, Any]) -> None:
    for name, value in values.items():
      value = float(value)
      self._rows.append(dict(job=self.job, unit=unit, step=int(step), name=name, value=value))
      if self._root is not None and math.isfinite(value):
        self._run(unit).add_scalar(name, value, int(step))

  def config(self, config: Mapping[str, Any]) -> None:
    """The job's config, as JSON text in the run `<job>` (TensorBoard's text tab)."""
    if self._root is not None:
      text = json.dumps(dict(config), indent=2, sort_keys=True, default=str)
      self._run("").add_text("config", f"```\n{text}\n```", 0)

  def flush(self) -> None:
    if self._rows:
      self._store.add_rows("metrics", self._rows)
      self._rows = []
    for writer in self._open.values():
      writer.flush()

  def close(self) -> None:
    self.flush()
    while self._open:
      self._open.popitem()[1].close()


def read_tensorboard(path: str | os.PathLike) -> dict[str, list[tuple[int, float]]]:
  """Every scalar of the event files under `path`: `<run>/<tag>` -> [(step, value), ...] in file
  order, the run being the event file's folder relative to `path` (none for files in `path`).

  Parses the TFRecord framing directly (8-byte length, 4-byte CRC, payload, 4-byte CRC) with
  tensorboardX's `Event` proto, so reading back needs no TensorFlow or TensorBoard either.
  """
  from tensorboardX.proto import event_pb2  # noqa: PLC0415

  out: dict[str, list[tuple[int, float]]] = {}
  root = pathlib.Path(path)
  files = sorted(root.rglob("events.out.tfevents.*")) if root.is_dir() else [root]
  for file in files:
    run = file.parent.relative_to(root).as_posix() if root.is_dir() else ""
    prefix = "" if run in ("", ".") else f"{run}/"
    data, pos = file.read_bytes(), 0
    while pos + 12 <= len(data):
      length = int.from_bytes(data[pos : pos + 8], "little")
      payload = data[pos + 12 : pos + 12 + length]
      pos += 12 + length + 4
      event = event_pb2.Event.FromString(payload)
      for value in event.summary.value:
        if value.HasField("simple_value"):
          out.setdefault(prefix + value.tag, []).append((event.step, value.simple_value))
  return out


@contextlib.contextmanager
def compile_note(bar, what: str, *, first: bool) -> Iterator[None]:
  """On the `first` call: a line before it (compiling `what`) and one after it with the time.

  A jitted call returns once it is compiled and dispatched, so the time is the compile's.
  """
  if not first:
    yield
    return
  note = bar.note if bar is not None else _log.info
  note(f"compiling the {what} ...")
  t0 = time.monotonic()
  yield
  note(f"{what} compiled in {time.monotonic() - t0:.1f} s")


class Profiler:
  """A `jax.profiler` trace of steps [start, start + num_steps) into `logdir` (0: off)."""

  def __init__(self, logdir: str | os.PathLike, start: int, num_steps: int):
    self.logdir, self.start, self.num_steps, self.active = (
      pathlib.Path(logdir),
      start,
      num_steps,
      False,
    )

  def step(self, step: int, state: Any) -> None:
    """Call before dispatching `step`; `state` is blocked on before the trace stops."""
    if self.num_steps > 0 and step == self.start and not self.active:
      import jax  # noqa: PLC0415

      self.logdir.mkdir(parents=True, exist_ok=True)
      jax.block_until_ready(state)
      jax.profiler.start_trace(str(self.logdir))
      self.active = True
    elif self.active and step == self.start + self.num_steps:
      self.stop(state)

  def stop(self, state: Any) -> None:
    if self.active:
      import jax  # noqa: PLC0415

      jax.block_until_ready(state)
      jax.profiler.stop_trace()
      self.active = False
      _log.info("profile of %d steps written to %s", self.num_steps, self.logdir)


@contextlib.contextmanager
def stage_log(workdir: str | os.PathLike, job: str) -> Iterator[None]:
  """Everything the `jtransfer` loggers say meanwhile also goes to `<workdir>/logs/<job>.log`
  (for the stages whose job does not keep its own log file: score, evaluate)."""
  logger = logging.getLogger("jtransfer")
  handler = workdir_files.file_logging(workdir, job, logger)
  try:
    yield
  finally:
    logger.removeHandler(handler)
    handler.close()

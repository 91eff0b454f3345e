"""Training curves that outlast the run: the results store's `metrics` table and TensorBoard.

  writer = tracking.MetricWriter(workdir, "pretrain", store)
  writer.scalars("mnist/cnn/seed_0", step=30, values={"train/loss": 0.7, "train/accuracy": 0.8})
  writer.flush()    # one store transaction for everything buffered; writer.close() at the end

Each value becomes a `metrics` row (job, unit, step, name, value) and a TensorBoard scalar
tagged `<unit>/<name>` in `<workdir>/tensorboard/<job>/` (tensorboardX: no TensorFlow needed;
`tensorboard --logdir <workdir>/tensorboard`). Rows are buffered and written in one transaction
per `flush`, so logging costs no extra store commits per step.

Which steps to record: `record_steps` (1-2-5 log spacing plus every `every` steps and the last
step), so a short run still has its first steps and a long one stays small.
"""

from __future__ import annotations

import contextlib
import logging
import math
import os
import pathlib
import time
from collections.abc import Iterator, Mapping
from typing import Any

from jtransfer import results
from jtransfer import workdir as workdir_files

TENSORBOARD_DIR = "tensorboard"
_log = logging.getLogger("jtransfer.progress")


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
    self._tb = None
    if tensorboard:
      from tensorboardX import SummaryWriter  # noqa: PLC0415  (only when used)

      logdir = pathlib.Path(workdir) / TENSORBOARD_DIR / job
      # One event file per process (hosts of a pod each write their own).
      self._tb = SummaryWriter(logdir=str(logdir), filename_suffix=f".p{process_index}")

  def scalars(self, unit: str, step: int, values: Mapping[str, Any]) -> None:
    for name, value in values.items():
      value = float(value)
      self._rows.append(dict(job=self.job, unit=unit, step=int(step), name=name, value=value))
      if self._tb is not None and math.isfinite(value):
        self._tb.add_scalar(f"{unit}/{name}", value, int(step))

  def flush(self) -> None:
    if self._rows:
      self._store.add_rows("metrics", self._rows)
      self._rows = []
    if self._tb is not None:
      self._tb.flush()

  def close(self) -> None:
    self.flush()
    if self._tb is not None:
      self._tb.close()
      self._tb = None


def read_tensorboard(path: str | os.PathLike) -> dict[str, list[tuple[int, float]]]:
  """Every scalar of the event files under `path`: tag -> [(step, value), ...] in file order.

  Parses the TFRecord framing directly (8-byte length, 4-byte CRC, payload, 4-byte CRC) with
  tensorboardX's `Event` proto, so reading back needs no TensorFlow or TensorBoard either.
  """
  from tensorboardX.proto import event_pb2  # noqa: PLC0415

  out: dict[str, list[tuple[int, float]]] = {}
  root = pathlib.Path(path)
  files = sorted(root.rglob("events.out.tfevents.*")) if root.is_dir() else [root]
  for file in files:
    data, pos = file.read_bytes(), 0
    while pos + 12 <= len(data):
      length = int.from_bytes(data[pos : pos + 8], "little")
      payload = data[pos + 12 : pos + 12 + length]
      pos += 12 + length + 4
      event = event_pb2.Event.FromString(payload)
      for value in event.summary.value:
        out.setdefault(value.tag, []).append((event.step, value.simple_value))
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

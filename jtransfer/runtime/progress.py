"""Progress bars that behave in CI: a tqdm bar on a terminal, periodic log lines otherwise.

  for step in progress(range(n), desc="pretrain"):
    ...
  bar = progress(total=n, desc="score"); bar.update(k); bar.set_postfix(loss=0.3); bar.close()

The bar is shown only when stderr is a TTY and `JTRANSFER_QUIET` is not set to 1. Otherwise
nothing is drawn and one `logging` INFO line (count, rate, ETA, postfix) is written at most
every `log_every_s` seconds, plus one at the end, so CI logs stay short but show the job is
alive. The rate and ETA count from the first `update`, so a first step that compiles does not
skew them. `note(text)` prints one line either way (e.g. "compiling the train step ...").
"""

from __future__ import annotations

import logging
import os
import sys
import time
from collections.abc import Iterable, Iterator
from typing import Any

import tqdm

_log = logging.getLogger("jtransfer.runtime.progress")


def quiet() -> bool:
  """True when bars should not be drawn (`JTRANSFER_QUIET=1` or stderr not a terminal)."""
  if os.environ.get("JTRANSFER_QUIET", "") not in ("", "0"):
    return True
  return not (hasattr(sys.stderr, "isatty") and sys.stderr.isatty())


class Progress:
  """An iterable/updatable progress reporter; see the module docstring."""

  def __init__(
    self,
    iterable: Iterable | None = None,
    *,
    total: int | None = None,
    desc: str = "",
    unit: str = "it",
    log_every_s: float = 60.0,
    logger: logging.Logger | None = None,
  ):
    if total is None and iterable is not None and hasattr(iterable, "__len__"):
      total = len(iterable)
    self.iterable, self.total, self.desc, self.unit = iterable, total, desc, unit
    self.n = 0
    self._log_every_s = log_every_s
    self._logger = logger or _log
    self._postfix: dict[str, Any] = {}
    self._start = self._last_log = time.monotonic()
    self._first: tuple[float, int] | None = None  # (time, count) at the first update
    self._closed = False
    self._bar = None
    if not quiet():
      self._bar = tqdm.tqdm(total=total, desc=desc, unit=unit, dynamic_ncols=True, leave=True)

  def __iter__(self) -> Iterator:
    if self.iterable is None:
      raise ValueError("this Progress was made without an iterable; call update() instead")
    try:
      for item in self.iterable:
        yield item
        self.update(1)
    finally:
      self.close()

  def __enter__(self) -> Progress:
    return self

  def __exit__(self, *exc) -> None:
    self.close()

  def update(self, n: int = 1) -> None:
    if self._first is None:
      self._first = (time.monotonic(), n)
    self.n += n
    if self._bar is not None:
      self._bar.update(n)
    elif self.n != self.total and time.monotonic() - self._last_log >= self._log_every_s:
      self._log_line()  # not at the end: `close` writes that line (once, marked "done")

  def note(self, text: str) -> None:
    """One line above the bar (terminal) or one log line (otherwise)."""
    if self._bar is not None:
      self._bar.write(f"{self.desc}: {text}" if self.desc else text)
    else:
      self._logger.info("%s%s%s", self.desc, ": " if self.desc else "", text)

  def set_postfix(self, **values: Any) -> None:
    self._postfix.update(values)
    if self._bar is not None:
      self._bar.set_postfix({k: _fmt(v) for k, v in self._postfix.items()}, refresh=False)

  def close(self) -> None:
    if self._closed:
      return
    self._closed = True
    if self._bar is not None:
      self._bar.close()
    else:
      self._log_line(final=True)

  def _log_line(self, final: bool = False) -> None:
    now = time.monotonic()
    self._last_log = now
    rate = _rate(self._first, self.n, now, self._start)
    of = f"/{self.total}" if self.total is not None else ""
    eta = ""
    if not final and self.total is not None and rate > 0:
      eta = f", ETA {_duration((self.total - self.n) / rate)}"
    post = " ".join(f"{k}={_fmt(v)}" for k, v in self._postfix.items())
    self._logger.info(
      "%s%s %d%s %s (%.3g %s/s, %s%s)%s%s",
      self.desc,
      ":" if self.desc else "",
      self.n,
      of,
      self.unit,
      rate,
      self.unit,
      _duration(now - self._start),
      eta,
      f" {post}" if post else "",
      " done" if final else "",
    )


def _rate(first: tuple[float, int] | None, n: int, now: float, start: float) -> float:
  """Items per second after the first update (whose time may be a compile); from the start
  while there has been one update only."""
  if first is None or n <= first[1]:
    return n / max(now - start, 1e-9)
  return (n - first[1]) / max(now - first[0], 1e-9)


def _duration(seconds: float) -> str:
  """`42s`, `3m05s`, `2h01m`."""
  s = int(round(seconds))
  if s < 60:
    return f"{s}s"
  if s < 3600:
    return f"{s // 60}m{s % 60:02d}s"
  return f"{s // 3600}h{s % 3600 // 60:02d}m"


def _fmt(value: Any) -> str:
  try:
    return f"{float(value):.4g}"
  except (TypeError, ValueError):
    return str(value)


def progress(
  iterable: Iterable | None = None,
  total: int | None = None,
  desc: str = "",
  **kwargs: Any,
) -> Progress:
  """`Progress(iterable, total=total, desc=desc, ...)`; iterate it or call `update`."""
  return Progress(iterable, total=total, desc=desc, **kwargs)

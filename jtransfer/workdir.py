"""What every job writes into its run directory besides results: the config log and a log file."""

from __future__ import annotations

import datetime
import json
import logging
import os
import pathlib
from collections.abc import Mapping
from typing import Any


def append_config(workdir: str | os.PathLike, job: str, config: Mapping[str, Any]) -> None:
  """Appends `{job, time, config}` to `<workdir>/config.json` (a JSON list), atomically."""
  path = pathlib.Path(workdir) / "config.json"
  entries = []
  if path.exists():
    loaded = json.loads(path.read_text() or "[]")
    entries = loaded if isinstance(loaded, list) else [loaded]
  now = datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds")
  entries.append({"job": job, "time": now, "config": config})
  tmp = path.with_suffix(f".json.{os.getpid()}.tmp")
  tmp.write_text(json.dumps(entries, indent=2, default=str))
  os.replace(tmp, path)


def file_logging(workdir: str | os.PathLike, job: str, logger: logging.Logger) -> logging.Handler:
  """Sends `logger` to `<workdir>/logs/<job>.log`; remove the returned handler when done."""
  logs = pathlib.Path(workdir) / "logs"
  logs.mkdir(parents=True, exist_ok=True)
  handler = logging.FileHandler(logs / f"{job}.log")
  handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(message)s"))
  logger.addHandler(handler)
  logger.setLevel(logging.INFO)
  return handler

"""Runs a test script as two `jax.distributed` CPU processes with a coordinator on localhost."""

import os
import pathlib
import socket
import subprocess
import sys

REPO = pathlib.Path(__file__).resolve().parents[1]


def free_port() -> int:
  with socket.socket() as s:
    s.bind(("localhost", 0))
    return s.getsockname()[1]


def start_two(
  script_text: str, tmp_path: pathlib.Path, arg: str, *, env: dict | None = None
) -> list[subprocess.Popen]:
  """Writes `script_text` and starts it as processes 0 and 1 (argv: pid, port, `arg`), each with
  one CPU device and its stdout/stderr in `<tmp_path>/multi.<pid>.log` (appended)."""
  port = free_port()
  script = tmp_path / "multi.py"
  script.write_text(script_text)
  env = dict(os.environ, PYTHONPATH=str(REPO), JAX_PLATFORMS="cpu", XLA_FLAGS="", **(env or {}))
  procs = []
  for pid in range(2):
    with open(tmp_path / f"multi.{pid}.log", "a") as log:  # the child keeps its own handle
      procs.append(
        subprocess.Popen(
          [sys.executable, str(script), str(pid), str(port), str(arg)],
          stdout=log,
          stderr=subprocess.STDOUT,
          env=env,
        )
      )
  return procs


def logs(tmp_path: pathlib.Path) -> list[str]:
  """What processes 0 and 1 printed (every start so far)."""
  return [(tmp_path / f"multi.{pid}.log").read_text() for pid in range(2)]


def run_two(
  script_text: str, tmp_path: pathlib.Path, arg: str, *, timeout: float = 180
) -> list[str]:
  """Runs `script_text` as processes 0 and 1 (argv: pid, port, `arg`); asserts both exit 0 and
  returns their combined stdout/stderr, in process order."""
  for pid in range(2):
    (tmp_path / f"multi.{pid}.log").unlink(missing_ok=True)
  procs = start_two(script_text, tmp_path, arg)
  try:
    for p in procs:
      p.wait(timeout=timeout)
  finally:
    for p in procs:
      if p.poll() is None:
        p.kill()
        p.wait()
  outs = logs(tmp_path)
  for p, out in zip(procs, outs, strict=True):
    assert p.returncode == 0, out[-3000:]
  return outs

"""Runs a test script as two `jax.distributed` CPU processes with a coordinator on localhost."""

import os
import pathlib
import socket
import subprocess
import sys

REPO = pathlib.Path(__file__).resolve().parents[1]


def run_two(script_text: str, tmp_path: pathlib.Path, arg: str) -> list[str]:
  """Writes `script_text` and runs it as processes 0 and 1 (argv: pid, port, `arg`); asserts both
  exit 0 and returns their combined stdout/stderr, in process order."""
  with socket.socket() as s:
    s.bind(("localhost", 0))
    port = s.getsockname()[1]
  script = tmp_path / "multi.py"
  script.write_text(script_text)
  env = dict(os.environ, PYTHONPATH=str(REPO), JAX_PLATFORMS="cpu", XLA_FLAGS="")
  procs = [
    subprocess.Popen(
      [sys.executable, str(script), str(pid), str(port), str(arg)],
      stdout=subprocess.PIPE,
      stderr=subprocess.STDOUT,
      text=True,
      env=env,
    )
    for pid in range(2)
  ]
  outs = [p.communicate(timeout=180)[0] for p in procs]  # communicate also closes the pipes
  for p, out in zip(procs, outs, strict=True):
    assert p.returncode == 0, out[-3000:]
  return outs

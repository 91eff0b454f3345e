"""Several processes of one job (issue 23), two `jax.distributed` CPU processes on 127.0.0.1:
started with different flags or config, one failing or killed, one finishing long after the
other. Each ends with a message within a bounded time, never a hang or a silent divergence.

Measured before (`jtransfer.runtime.distributed` without same_run / stop_together /
finish_together):
- different config overrides or --num_processes between the processes: not noticed (each
  process split the work by its own config; --num_processes=3 beside 2 ran as 2 processes);
- process 1 killed while process 0 waits in a barrier: process 0's collective failed at once
  (a Gloo ValueError, printed as a traceback), then it waited ~100 s in jax.distributed's
  shutdown for the dead peer and aborted (SIGABRT, a page of C++ log);
- a process that finished 5 minutes before the other: its shutdown gave up after 300 s and
  aborted both, the one still working included (measured with 340 s of work on process 0).
Every test here starts subprocesses with a hard timeout.
"""

import os
import pathlib
import signal
import subprocess
import sys
import textwrap
import time

import pytest
from two_processes import free_port, logs, start_two

REPO = pathlib.Path(__file__).resolve().parents[1]

_SCRIPT = textwrap.dedent(
  """
  import os, signal, sys, time
  pid, port, mode = int(sys.argv[1]), sys.argv[2], sys.argv[3]
  import jax
  from jtransfer.runtime import distributed, sharding
  from jtransfer import errors
  from jtransfer.jobs import sweep
  assert sharding.maybe_initialize_distributed(f"127.0.0.1:{port}", 2, pid, timeout_s=5)
  sweep._barrier("started")
  print(pid, "started", flush=True)
  with distributed.stop_together("multi.py"):
    with errors.exit_on("multi.py"):
      if pid == 1 and mode in ("killed", "killed_busy"):
        os.kill(os.getpid(), signal.SIGKILL)
      if pid == 1 and mode == "fails":
        raise errors.UserError("no data dir on this host")
      if mode == "killed_busy":
        time.sleep(60)  # work, no collective: JAX sees the missing heartbeats
      if mode == "late" and pid == 0:
        time.sleep(8)  # the evaluate stage, process 0 alone
        print(pid, "done working", time.time(), flush=True)
      if mode != "late":
        sweep._barrier("next stage")
    distributed.finish_together()
  print(pid, "finished", time.time(), flush=True)
  """
)


def _run_two(tmp_path, mode, timeout=90):
  t0 = time.time()
  procs = start_two(_SCRIPT, tmp_path, mode, env={"JTRANSFER_QUIET": "1"})
  try:
    for p in procs:
      p.wait(timeout=max(1, timeout - (time.time() - t0)))
  finally:
    for p in procs:
      if p.poll() is None:
        p.kill()
        p.wait()
  return [p.returncode for p in procs], logs(tmp_path), time.time() - t0


def _error_lines(text):
  return [line for line in text.splitlines() if "error:" in line]


@pytest.mark.slow  # two subprocesses
def test_a_process_killed_during_a_barrier_stops_the_other_at_once(tmp_path):
  (rc0, rc1), (out0, _), seconds = _run_two(tmp_path, "killed")
  assert rc1 == -signal.SIGKILL
  assert rc0 == 1, out0[-3000:]
  (line,) = _error_lines(out0)
  assert "process 0: another process of this job stopped" in line and "Gloo" in line, line
  assert "Traceback" not in out0 and "finished" not in out0
  assert seconds < 60  # was ~105 s (shutdown waiting for the dead peer), then SIGABRT


@pytest.mark.slow  # two subprocesses
def test_a_process_that_fails_stops_the_other_in_one_line_each(tmp_path):
  (rc0, rc1), (out0, out1), seconds = _run_two(tmp_path, "fails")
  assert (rc0, rc1) == (1, 2), out0[-2000:] + out1[-2000:]
  assert _error_lines(out1) == ["multi.py: error: no data dir on this host"]
  (line,) = _error_lines(out0)
  assert "another process of this job stopped" in line
  assert "Traceback" not in out0 + out1
  assert seconds < 60


@pytest.mark.slow  # two subprocesses
def test_a_process_killed_while_the_other_works_is_seen_within_the_timeout(tmp_path):
  """No collective to fail: JAX notices the missing heartbeats (timeout_s = 5) and ends the
  survivor with its message, long before its 60 s of work are over."""
  (rc0, rc1), (out0, _), seconds = _run_two(tmp_path, "killed_busy")
  assert rc1 == -signal.SIGKILL
  assert rc0 not in (0, None) and "finished" not in out0
  assert "another task died" in out0 or "heartbeat" in out0, out0[-3000:]
  assert seconds < 45


@pytest.mark.slow  # two subprocesses
def test_a_process_that_finishes_early_waits_for_the_one_still_working(tmp_path):
  """Process 1 waits in finish_together until process 0 is done. (Without it, jax.distributed's
  shutdown gives up after its fixed 5 minutes and aborts both: measured with 340 s of work on
  process 0, too long for a test; with finish_together the same run ended with status 0.)"""
  (rc0, rc1), (out0, out1), _ = _run_two(tmp_path, "late")
  assert (rc0, rc1) == (0, 0), out0[-3000:] + out1[-3000:]
  done = float(next(ln for ln in out0.splitlines() if ln.startswith("0 done working")).split()[-1])
  left = float(next(ln for ln in out1.splitlines() if ln.startswith("1 finished")).split()[-1])
  assert left >= done


def _launcher(pid, port, workdir, *extra):
  env = dict(os.environ, JAX_PLATFORMS="cpu", XLA_FLAGS="", JTRANSFER_QUIET="1")
  env.pop("JTRANSFER_VERBOSE", None)
  args = [sys.executable, str(REPO / "launch/evaluate.py"), f"--workdir={workdir}",
          f"--coordinator=127.0.0.1:{port}", f"--process_id={pid}", *extra]  # fmt: skip
  return subprocess.Popen(args, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)


@pytest.mark.slow  # two launcher processes
def test_processes_started_with_different_flags_are_all_refused_naming_them(tmp_path):
  port = free_port()
  procs = [
    _launcher(0, port, tmp_path / "w", "--num_processes=2", "--config.evaluate.n_boot=0"),
    _launcher(1, port, tmp_path / "w", "--num_processes=3", "--config.evaluate.n_boot=5"),
  ]
  try:
    outs = [p.communicate(timeout=150) for p in procs]
  finally:
    for p in procs:
      if p.poll() is None:
        p.kill()
        p.wait()
  for k, (p, (out, err)) in enumerate(zip(procs, outs, strict=True)):
    # The head of stderr holds a fatal error's reason; its tail a module list.
    assert p.returncode == 2, f"process {k}: status {p.returncode}\n{err[:2500]}"
    (line,) = _error_lines(err)
    assert line.startswith("evaluate.py: error: the 2 processes of this job were started"), line
    assert "process 1 has --config.evaluate.n_boot=5 where process 0 has 0" in line, line
    assert "--num_processes" in line and "Traceback" not in err
    assert "[sweep] evaluate" not in out  # refused before any work

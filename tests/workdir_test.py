"""The workdir lock: one job per workdir, a clear message for the second, no stale locks."""

import fcntl
import json
import logging
import os
import pathlib
import signal
import socket
import subprocess
import sys
import textwrap
import time

import pytest
from stage_calls import run_job
from two_processes import run_two

from jtransfer.jobs import score as score_job
from jtransfer.store import workdir as workdir_files

REPO = pathlib.Path(__file__).resolve().parents[1]


def _flock_is_free(path) -> bool:
  fd = os.open(path, os.O_RDWR)
  try:
    fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
  except BlockingIOError:
    return False
  finally:
    os.close(fd)  # closing drops the probe's own lock
  return True


def test_lock_is_reentrant_records_its_holder_and_is_released(tmp_path):
  lock = tmp_path / ".lock"
  with workdir_files.locked(tmp_path, "pretrain"):
    info = json.loads(lock.read_text())
    assert info["job"] == "pretrain" and info["pid"] == os.getpid()
    assert info["host"] == socket.gethostname() and info["processes"] == 1
    assert not _flock_is_free(lock)
    with workdir_files.locked(tmp_path, "score"):  # the sweep's stages nest in one process
      assert json.loads(lock.read_text())["job"] == "pretrain"
    assert not _flock_is_free(lock)  # the inner exit keeps the outer hold
  assert _flock_is_free(lock) and lock.read_text() == ""
  # An error inside the block releases the lock too.
  with pytest.raises(KeyError), workdir_files.locked(tmp_path, "score"):
    raise KeyError("boom")
  assert _flock_is_free(lock)


def test_holds_lock_needs_the_workdir_keyword(tmp_path):
  @workdir_files.holds_lock("job")
  def run(*, workdir):
    return json.loads((pathlib.Path(workdir) / ".lock").read_text())["job"]

  assert run(workdir=tmp_path) == "job"
  with pytest.raises(TypeError, match="workdir"):
    run()


_HOLDER = textwrap.dedent(
  """
  import sys, time
  from jtransfer.store import workdir
  with workdir.locked(sys.argv[1], "pretrain"):
    print("LOCKED", flush=True)
    time.sleep(300)
  """
)


def _start_holder(tmp_path, workdir):
  script = tmp_path / "holder.py"
  script.write_text(_HOLDER)
  env = dict(os.environ, PYTHONPATH=str(REPO), JAX_PLATFORMS="cpu")
  proc = subprocess.Popen(
    [sys.executable, str(script), str(workdir)], stdout=subprocess.PIPE, text=True, env=env
  )
  assert proc.stdout.readline().strip() == "LOCKED"
  return proc


@pytest.mark.slow
def test_second_job_stops_at_once_naming_the_holder(tmp_path):
  workdir = tmp_path / "w"
  proc = _start_holder(tmp_path, workdir)
  try:
    holder = (
      rf"job 'pretrain' \(pid {proc.pid} on host {socket.gethostname()}, 1 process\(es\), since 20"
    )
    with pytest.raises(workdir_files.WorkdirInUseError, match=holder):
      with workdir_files.locked(workdir, "score"):
        pytest.fail("entered a workdir held by another process")
    # A real job stops before it reads or writes anything (no store, no probe).
    t0 = time.monotonic()
    with pytest.raises(workdir_files.WorkdirInUseError, match=f"workdir {workdir} is in use"):
      run_job(score_job, workdir=workdir, target="no_such_dataset")
    assert time.monotonic() - t0 < 5
    assert sorted(p.name for p in workdir.iterdir()) == [".lock"]
  finally:
    proc.kill()
    proc.communicate(timeout=60)  # reaps it and closes the pipe


@pytest.mark.slow
def test_lock_of_a_killed_job_does_not_block_the_next(tmp_path):
  workdir = tmp_path / "w"
  proc = _start_holder(tmp_path, workdir)
  os.kill(proc.pid, signal.SIGKILL)
  proc.communicate(timeout=60)
  # The dead holder's text is still in the file; the kernel has dropped its flock.
  assert json.loads((workdir / ".lock").read_text())["pid"] == proc.pid
  with workdir_files.locked(workdir, "score"):
    assert json.loads((workdir / ".lock").read_text())["pid"] == os.getpid()


_MULTI = textwrap.dedent(
  """
  import sys
  from jtransfer.runtime import sharding
  from jtransfer.store import workdir
  pid, port, root = int(sys.argv[1]), sys.argv[2], sys.argv[3]
  assert sharding.maybe_initialize_distributed(f"localhost:{port}", 2, pid)
  try:
    with workdir.locked(root, "score"):
      print("ENTERED", pid, flush=True)
  except workdir.WorkdirInUseError as e:
    print("REFUSED", pid, e, flush=True)
  """
)


def _two_processes(tmp_path, workdir) -> list[str]:
  return run_two(_MULTI, tmp_path, workdir)


@pytest.mark.slow
def test_processes_of_one_job_share_the_lock_and_stop_together(tmp_path):
  workdir = tmp_path / "w"
  outs = _two_processes(tmp_path, workdir)
  for pid, out in enumerate(outs):
    assert f"ENTERED {pid}" in out
  # While another job holds the workdir, both processes stop (not only process 0).
  with workdir_files.locked(workdir, "finetune"):
    outs = _two_processes(tmp_path, workdir)
  assert f"REFUSED 0 workdir {workdir} is in use by job 'finetune' (pid {os.getpid()}" in outs[0]
  assert "REFUSED 1 workdir" in outs[1] and "process 0 of this job could not lock it" in outs[1]


def test_a_job_log_opened_inside_a_package_log_of_the_same_file_writes_each_line_once(tmp_path):
  # The sweep sends the `jtransfer` loggers to logs/score.log and the score job opens the same
  # file for its own logger: a warning of the job must appear once, not twice.
  package, child = logging.getLogger("jtransfer"), logging.getLogger("jtransfer.test_dup_job")
  outer = workdir_files.file_logging(tmp_path, "score", package)
  try:
    inner = workdir_files.file_logging(tmp_path, "score", child)
    child.warning("skipping checkpoint x")
    child.removeHandler(inner)
    inner.close()
    child.warning("after the job")
  finally:
    package.removeHandler(outer)
    outer.close()
  lines = (tmp_path / "logs" / "score.log").read_text().splitlines()
  assert [x.split(" ", 3)[-1] for x in lines] == ["skipping checkpoint x", "after the job"]
  # Alone, the job's logger still gets its own file.
  alone = workdir_files.file_logging(tmp_path, "finetune", child)
  child.info("own file")
  child.removeHandler(alone)
  alone.close()
  assert "own file" in (tmp_path / "logs" / "finetune.log").read_text()

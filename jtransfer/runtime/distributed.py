"""The multi-process flags of every launcher, defined once, and `jax.distributed` start-up.

  distributed.define_flags()          # at import of a launcher, beside its other flags
  distributed.initialize_from_flags() # in main, before any device use

One command per host: `--coordinator=host:port --num_processes=N --process_id=i`, or
`--distributed_auto` where JAX detects the cluster (TPU pods, SLURM, Open MPI). Without them a
launcher runs as one process. The jobs split their work by `jax.process_index()`.

The processes of one job stay together (`jtransfer.cli.launcher` does all three):
- `same_run(record)` right after start-up: every process publishes its flags and config in
  jax.distributed's key-value store and compares them with the others'. Processes started
  differently would split the work differently (units done twice or never) or wait at
  different barriers; they all stop with one UserError naming the settings that differ.
- `stop_together(prog)` around the work: a process that fails prints its error (one line for a
  user error or a lost peer, else the traceback) and ends at once with `os._exit`, instead of
  waiting in jax.distributed's shutdown for peers that wait for it. A peer that waits for it in
  a collective then fails at once (the connection closes) and stops the same way. A process
  that dies (kill -9, OOM) is seen by the others at their next collective, or by JAX when its
  heartbeats stop (`--distributed_timeout_s`, default 100 s): JAX then ends them with a message
  that another task died.
- `finish_together()` at the end: the processes leave together, so one that finishes early
  does not give up on one still working (JAX's shutdown waits only 5 minutes for the others and
  then aborts them all, e.g. while process 0 alone runs the evaluate stage).
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import sys
import time
import traceback
from collections.abc import Iterator, Mapping
from typing import Any

from absl import flags

from jtransfer import errors
from jtransfer.runtime import sharding

COORDINATOR, NUM_PROCESSES, PROCESS_ID, AUTO, TIMEOUT = (
  "coordinator",
  "num_processes",
  "process_id",
  "distributed_auto",
  "distributed_timeout_s",
)
# How long `finish_together` waits for the last process (a week: the work itself is done).
FINISH_TIMEOUT_S = 7 * 24 * 3600
_RUN_KEY = "jtransfer/run"
_LEAVE_LAST_S = 2.0  # process 0 outlives its refusing peers by this much (their exit is immediate)


def define_flags(flag_values: flags.FlagValues = flags.FLAGS) -> None:
  """Defines --coordinator, --num_processes, --process_id and --distributed_auto."""
  flags.DEFINE_string(
    COORDINATOR, None, "Multi-process: the coordinator's host:port.", flag_values=flag_values
  )
  flags.DEFINE_integer(
    NUM_PROCESSES, None, "Multi-process: number of processes.", lower_bound=1,
    flag_values=flag_values,
  )  # fmt: skip
  flags.DEFINE_integer(
    PROCESS_ID, None, "Multi-process: this process's index (0 .. num_processes - 1).",
    lower_bound=0, flag_values=flag_values,
  )  # fmt: skip
  flags.DEFINE_bool(
    AUTO, False, "Multi-process: let JAX detect the cluster (TPU pod, SLURM, Open MPI).",
    flag_values=flag_values,
  )  # fmt: skip
  flags.DEFINE_integer(
    TIMEOUT, None, "Multi-process: seconds a process waits for the others to join, and for a "
    "silent one's heartbeat before it stops (default: JAX's 300 to join, 100 for heartbeats).",
    lower_bound=1, flag_values=flag_values,
  )  # fmt: skip


def initialize_from_flags(flag_values: flags.FlagValues = flags.FLAGS) -> bool:
  """`jax.distributed.initialize` as the flags ask; returns whether it was called.

  Raises ValueError (one line) for a partial set (e.g. --coordinator without --process_id), a
  process id outside [0, num_processes), or --distributed_auto together with explicit values.
  """
  coordinator = flag_values[COORDINATOR].value
  num, pid = flag_values[NUM_PROCESSES].value, flag_values[PROCESS_ID].value
  auto = flag_values[AUTO].value
  explicit = (coordinator, num, pid) != (None, None, None)
  if auto and explicit:
    raise ValueError(
      "--distributed_auto detects the cluster itself: drop --coordinator, --num_processes "
      "and --process_id, or drop --distributed_auto"
    )
  if num is not None and pid is not None and pid >= num:
    raise ValueError(f"--process_id={pid} must be below --num_processes={num}")
  timeout = flag_values[TIMEOUT].value if TIMEOUT in flag_values else None
  return sharding.maybe_initialize_distributed(coordinator, num, pid, auto=auto, timeout_s=timeout)


def _client():
  """jax.distributed's client (its key-value store and barriers; orbax uses it the same way)."""
  from jax._src import distributed as jax_distributed  # noqa: PLC0415

  return jax_distributed.global_state.client


def _flat(value: Any, prefix: str) -> dict[str, Any]:
  if isinstance(value, Mapping) and value:
    out = {}
    for k, v in value.items():
      out.update(_flat(v, f"{prefix}.{k}" if prefix else str(k)))
    return out
  return {prefix: value}


def same_run(record: Mapping[str, Any], *, timeout_s: float = 300.0) -> None:
  """Raises UserError on every process when the processes' `record`s (their flags and config,
  JSON-able; nested keys are shown as `--a.b`) differ; one process: nothing to compare."""
  import jax  # noqa: PLC0415

  count = jax.process_count()
  if count == 1:
    return
  client = _client()
  client.key_value_set(
    f"{_RUN_KEY}/{jax.process_index()}", json.dumps(record, sort_keys=True, default=str)
  )
  flat = [
    _flat(json.loads(client.blocking_key_value_get(f"{_RUN_KEY}/{i}", int(timeout_s * 1000))), "")
    for i in range(count)
  ]
  differ = sorted(
    {k for f in flat[1:] for k in set(f) | set(flat[0]) if f.get(k) != flat[0].get(k)}
  )
  if not differ:
    return
  # Every process refuses and exits. Process 0 hosts the coordination service: were it to exit
  # first, a peer still running would see the service vanish and abort (SIGABRT) instead of
  # printing its line. So the others say they are leaving, and process 0 leaves last.
  me = jax.process_index()
  if me:
    client.key_value_set(f"{_RUN_KEY}/refused/{me}", "1")
  else:
    for i in range(1, count):
      with contextlib.suppress(Exception):
        client.blocking_key_value_get(f"{_RUN_KEY}/refused/{i}", int(timeout_s * 1000))
    time.sleep(_LEAVE_LAST_S)
  first = differ[0]
  i = next(i for i, f in enumerate(flat) if f.get(first) != flat[0].get(first))
  more = f" ({len(differ)} settings differ: {', '.join('--' + k for k in differ)})"
  raise errors.UserError(
    f"the {count} processes of this job were started differently: process {i} has "
    f"--{first}={flat[i].get(first)!r} where process 0 has {flat[0].get(first)!r}"
    f"{more if len(differ) > 1 else ''}; start every process with the same flags and config"
  )


def _lost_peer(error: BaseException) -> bool:
  """Whether `error` says another process went away (a collective or the coordination service
  lost its connection)."""
  text = str(error).lower()
  words = (
    "gloo",
    "connection closed by peer",
    "coordination service",
    "heartbeat",
    "barrier failed",
  )
  return any(w in text for w in words)


def _exit_now(code: int) -> None:
  for stream in (sys.stdout, sys.stderr):
    with contextlib.suppress(Exception):
      stream.flush()
  logging.shutdown()
  os._exit(code)


@contextlib.contextmanager
def stop_together(prog: str) -> Iterator[None]:
  """With several processes: a failure inside ends this process at once, after its message
  (see the module docstring); exit status 2 for a user error, else 1. One process: nothing."""
  import jax  # noqa: PLC0415

  if jax.process_count() == 1:
    yield
    return
  me = jax.process_index()
  try:
    yield
  except SystemExit as e:  # `errors.exit_on` printed the user error already
    if e.code in (0, None):
      raise
    _exit_now(e.code if isinstance(e.code, int) else 1)
  except BaseException as e:
    if _lost_peer(e) and not errors.verbose():
      print(
        f"{prog}: error: process {me}: another process of this job stopped or lost its "
        f"connection, stopping too ({errors.one_line(e)[:300]})",
        file=sys.stderr,
      )
    else:
      traceback.print_exc()
    _exit_now(1)


def finish_together(timeout_s: int = FINISH_TIMEOUT_S) -> None:
  """Waits until every process of the job got here (one process: returns at once)."""
  import jax  # noqa: PLC0415

  if jax.process_count() > 1:
    _client().wait_at_barrier("jtransfer/finished", int(timeout_s * 1000))

"""The multi-process flags of every launcher, defined once, and `jax.distributed` start-up.

  distributed.define_flags()          # at import of a launcher, beside its other flags
  distributed.initialize_from_flags() # in main, before any device use

One command per host: `--coordinator=host:port --num_processes=N --process_id=i`, or
`--distributed_auto` where JAX detects the cluster (TPU pods, SLURM, Open MPI). Without them a
launcher runs as one process. The jobs split their work by `jax.process_index()`.
"""

from __future__ import annotations

from absl import flags

from jtransfer import sharding

COORDINATOR, NUM_PROCESSES, PROCESS_ID, AUTO = (
  "coordinator",
  "num_processes",
  "process_id",
  "distributed_auto",
)


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
  return sharding.maybe_initialize_distributed(coordinator, num, pid, auto=auto)

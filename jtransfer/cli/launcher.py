"""The command line of every study launcher (`launch/*.py`): one study config, some stages of it.

  launcher.main()                          # launch/sweep.py: every stage (or the config's)
  launcher.main(stages=("score",))         # launch/score.py: the score stage by default

Flags: `--config FILE[:VARIANT]` plus `--config.<path>=<value>` overrides (`config_cli`),
`--workdir`, `--stages`, `--data_dir`, `--model_module`, the multi-process flags
(`distributed`) and `--verbose` (tracebacks for user errors, `jtransfer.errors`). The config is
overridden and checked (`config_checks.check_study`, for the stages about to run) before any
work; then the CPU devices it asks for are requested, the processes joined (and their flags and
config compared: `distributed.same_run`), and the plan the check built run by `sweep.run`.
"""

from __future__ import annotations

import pathlib
import sys
from collections.abc import Callable, Sequence

from absl import app, flags

from jtransfer import errors
from jtransfer.cli import checks as config_checks
from jtransfer.cli import overrides as config_cli
from jtransfer.jobs import sweep
from jtransfer.models import user_modules
from jtransfer.runtime import devices, distributed


def main(stages: Sequence[str] | None = None, *, default_config: Callable | None = None) -> None:
  """Defines the flags and runs the launcher; call it under `if __name__ == "__main__"`.

  stages: what `--stages` defaults to (None: the config's `stages`, else all of them).
  default_config: the config without `--config` (None: `--config` is required).
  """
  default = ", ".join(stages) if stages else "the config's `stages`, else all"
  stages_flag = flags.DEFINE_list(
    "stages", list(stages or sweep.STAGES),
    f"Stages to run, of {', '.join(sweep.STAGES)} (always in that order); default: {default}.",
  )  # fmt: skip
  flags.register_validator(
    "stages",
    lambda names: set(names) <= set(sweep.STAGES),
    f"--stages: each stage must be one of {', '.join(sweep.STAGES)}",
  )

  def to_run() -> tuple[str, ...] | None:
    if stages_flag.present or stages:
      return tuple(stages_flag.value)
    return None  # the config's own `stages`, else all

  checked = []  # the plan the start-up check built: every stage's config, built once
  config_flag = config_cli.ConfigFlag(
    "config",
    "Study config.",
    schema=config_checks.study_schema,
    checks=lambda c: checked.append(
      config_checks.check_study(c, stages=to_run(), workdir=workdir.value, data_dir=data_dir.value)
    ),
    default=default_config,
  )
  workdir = flags.DEFINE_string("workdir", None, "Run directory (rerun to resume).", required=True)
  data_dir = flags.DEFINE_string("data_dir", None, "Datasets dir (default $JTRANSFER_DATA_DIR).")
  distributed.define_flags()
  user_modules.define_flag()  # --model_module: the user's architectures
  verbose = flags.DEFINE_bool(
    "verbose", False, f"Tracebacks for user errors too (or ${errors.VERBOSE_ENV}=1)."
  )

  def run(argv):
    if len(argv) > 1:
      raise app.UsageError(f"unexpected arguments: {argv[1:]}")
    # The config's own architectures and image folders were loaded by its start-up check.
    config = config_flag.value
    try:  # both before any device use
      devices.request_cpu_devices(config.get("cpu_devices") or 0)
      distributed.initialize_from_flags()
    except ValueError as e:
      config_cli.fail(e)
    prog = pathlib.Path(sys.argv[0]).name
    # What every process of one job must agree on (the data dir may differ between hosts).
    record = {
      "config": config.to_dict() if hasattr(config, "to_dict") else dict(config),
      "stages": to_run(),
      "workdir": workdir.value,
      "num_processes": flags.FLAGS[distributed.NUM_PROCESSES].value,
      user_modules.FLAG: flags.FLAGS[user_modules.FLAG].value,
    }
    # Several processes: a failure on one stops it at once and, through it, the others.
    with distributed.stop_together(prog):
      # A user's mistake found while running (a missing data dir, unreadable weights) is one
      # line; so are processes started with different flags or config.
      with errors.exit_on(prog, show_traceback=verbose.value):
        distributed.same_run(record, timeout_s=flags.FLAGS[distributed.TIMEOUT].value or 300)
        sweep.run(checked[-1])
      distributed.finish_together()

  config_cli.run(run, config_flag)

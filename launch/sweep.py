"""Runs a whole experiment: pre-train → score → fine-tune → evaluate (each stage resumable).

python launch/sweep.py --config configs/thesis_cnn.py:quick --workdir runs/thesis_cnn_quick

Any config field can be overridden (`jtransfer.config_cli`), e.g.
`--config.score.targets=mnist --config.pretrain.duration=epochs:1 --config.pretrain.num_seeds=3`;
the config is checked (`jtransfer.config_checks`) before any stage runs.
"""

import os
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from absl import flags  # noqa: E402

from jtransfer import config_checks, config_cli, sweep  # noqa: E402
from jtransfer.models import user_modules  # noqa: E402

_CONFIG = config_cli.ConfigFlag(
  "config",
  "Experiment config.",
  schema=config_checks.study_schema,
  exclude=config_checks.SET_BY_SWEEP,
  checks=config_checks.check_study,
)
_WORKDIR = flags.DEFINE_string("workdir", None, "Run directory (rerun to resume).")
_STAGES = flags.DEFINE_list(
  "stages", list(sweep.STAGES), "Stages to run (default: the config's `stages`, else all)."
)
_DATA_DIR = flags.DEFINE_string("data_dir", None, "Datasets dir (default $JTRANSFER_DATA_DIR).")
flags.mark_flags_as_required(["config", "workdir"])
flags.register_validator(
  "stages",
  lambda stages: set(stages) <= set(sweep.STAGES),
  f"--stages: each stage must be one of {', '.join(sweep.STAGES)}",
)

user_modules.define_flag()  # --model_module: the user's architectures


def main(argv):
  del argv
  # The config's own architectures and image folders were loaded by its start-up check
  # (config_checks.check_study), before any name in it was checked.
  c = _CONFIG.value.to_dict()
  flag = "xla_force_host_platform_device_count"
  if c.get("cpu_devices") and flag not in os.environ.get("XLA_FLAGS", ""):
    # On a CPU host, several XLA devices let seeds / fine-tune groups run side by side. Read when
    # JAX first touches a backend (inside the stages), so setting it here still takes effect.
    os.environ["XLA_FLAGS"] = f"{os.environ.get('XLA_FLAGS', '')} --{flag}={c['cpu_devices']}"
  sweep.run(
    workdir=_WORKDIR.value,
    sources=c["sources"],
    pretrain=c["pretrain"],
    score=c["score"],
    finetune=c["finetune"],
    evaluate=c["evaluate"],
    # A study that needs no scores (gradual transfer) declares its stages in its config.
    stages=_STAGES.value if _STAGES.present else c.get("stages", sweep.STAGES),
    data_dir=_DATA_DIR.value,
    reports=c.get("reports", ()),
  )


if __name__ == "__main__":
  config_cli.run(main, _CONFIG)

r"""Fine-tunes every checkpoint of a workdir on each target of the config (ground-truth curves).

  python launch/finetune.py --config configs/finetune_mnist.py:quick --workdir runs/mnist_zoo_quick

Rerunning with the same workdir skips every finished (checkpoint, target, mode, ft_seed) curve.
"""

import os
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from absl import app, flags  # noqa: E402

from jtransfer import config_cli  # noqa: E402
from jtransfer.models import user_modules  # noqa: E402

_CONFIG = config_cli.ConfigFlag("config", "Fine-tune config.")
_WORKDIR = flags.DEFINE_string("workdir", None, "Workdir holding the zoo (and the results).")
_DATA_DIR = flags.DEFINE_string("data_dir", None, "Datasets dir (default $JTRANSFER_DATA_DIR).")
flags.mark_flags_as_required(["config", "workdir"])
user_modules.define_flag()  # --model_module: the user's architectures


def main(argv):
  if len(argv) > 1:
    raise app.UsageError(f"unexpected arguments: {argv[1:]}")
  c = _CONFIG.value.to_dict()
  cpu_devices, flag = c.pop("cpu_devices"), "xla_force_host_platform_device_count"
  if cpu_devices and flag not in os.environ.get("XLA_FLAGS", ""):
    # Read when JAX first touches a backend (below), so it still takes effect here.
    os.environ["XLA_FLAGS"] = f"{os.environ.get('XLA_FLAGS', '')} --{flag}={cpu_devices}"
  from jtransfer.train import finetune

  for target in c.pop("targets"):
    s = finetune.run(workdir=_WORKDIR.value, target=target, data_dir=_DATA_DIR.value, **c)
    print(
      f"{target}: {s['units']} curves in {s['groups']} groups, {s['images_per_second']:.0f} img/s"
    )


if __name__ == "__main__":
  config_cli.run(main, _CONFIG)

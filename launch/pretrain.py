r"""Pre-trains a zoo: every source of the config, `num_seeds` seeds batched in one step.

  python launch/pretrain.py --config configs/mnist_zoo.py:quick --workdir runs/mnist_zoo_quick

Rerunning with the same workdir resumes from the last saved train state and skips finished
seeds. Multi-host: pass --coordinator/--num_processes/--process_id (or --distributed_auto);
each process trains its share of the seeds and writes its own results shard.
"""

import os
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from absl import app, flags  # noqa: E402

from jtransfer import config_cli  # noqa: E402
from jtransfer.models import user_modules  # noqa: E402

_CONFIG = config_cli.ConfigFlag("config", "Zoo config.")
_WORKDIR = flags.DEFINE_string("workdir", None, "Run directory (checkpoints, results, logs).")
_DATA_DIR = flags.DEFINE_string("data_dir", None, "Datasets dir (default $JTRANSFER_DATA_DIR).")
_COORDINATOR = flags.DEFINE_string("coordinator", None, "Multi-host: coordinator host:port.")
_NUM_PROCESSES = flags.DEFINE_integer("num_processes", None, "Multi-host: process count.")
_PROCESS_ID = flags.DEFINE_integer("process_id", None, "Multi-host: this process's index.")
_AUTO = flags.DEFINE_bool("distributed_auto", False, "Multi-host: let JAX detect the cluster.")
flags.mark_flags_as_required(["config", "workdir"])
user_modules.define_flag()  # --model_module: the user's architectures


def main(argv):
  if len(argv) > 1:
    raise app.UsageError(f"unexpected arguments: {argv[1:]}")
  c = _CONFIG.value
  if c.cpu_devices and "xla_force_host_platform_device_count" not in os.environ.get(
    "XLA_FLAGS", ""
  ):
    # Read when JAX first touches a backend (below), so it still takes effect here.
    os.environ["XLA_FLAGS"] = (
      f"{os.environ.get('XLA_FLAGS', '')} --xla_force_host_platform_device_count={c.cpu_devices}"
    )
  from jtransfer import sharding
  from jtransfer.train import pretrain

  sharding.maybe_initialize_distributed(
    _COORDINATOR.value, _NUM_PROCESSES.value, _PROCESS_ID.value, auto=_AUTO.value
  )
  for src in c.sources:
    summary = pretrain.run(
      workdir=_WORKDIR.value,
      source=src["name"],
      batch_size=src["batch_size"],
      arch=c.arch,
      model_kwargs=c.model_kwargs.to_dict(),
      num_seeds=c.num_seeds,
      seed_offset=c.seed_offset,
      duration=c.duration.to_dict(),
      optimizer=c.optimizer,
      optimizer_kwargs=c.optimizer_kwargs.to_dict(),
      eval_batch_size=c.eval_batch_size,
      eval_train_examples=c.eval_train_examples,
      eval_test_examples=c.eval_test_examples,
      train_examples=c.train_examples,
      data_dir=_DATA_DIR.value,
      seed_parallel=c.seed_parallel,
      num_devices=c.num_devices,
      save_every_steps=c.save_every_steps,
      log_every_steps=c.log_every_steps,
    )
    print(
      f"{src['name']}: seeds {summary['trained_seeds'] or 'all done'}, "
      f"{summary['steps_run']} steps, {summary['images_per_second']:.0f} img/s"
    )


if __name__ == "__main__":
  config_cli.run(main, _CONFIG)

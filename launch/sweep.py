"""Runs a whole study: pre-train → score → fine-tune → evaluate (each stage resumable).

  python launch/sweep.py --config configs/thesis_cnn.py:quick --workdir runs/thesis_cnn_quick

Any config field can be overridden (`jtransfer.cli.overrides`), e.g.
`--config.score.targets=mnist --config.pretrain.duration=epochs:1 --config.pretrain.num_seeds=3`;
`--stages=score,finetune` runs some stages only (default: the config's `stages`, else all). The
config is checked (`jtransfer.cli.checks`) before any stage runs. Several processes (one
command per host): `--coordinator=host:port --num_processes=N --process_id=i`, or
`--distributed_auto` on a TPU pod / SLURM / Open MPI cluster.
"""

from jtransfer.cli import launcher

if __name__ == "__main__":
  launcher.main()

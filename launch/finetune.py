r"""Fine-tunes every checkpoint of a zoo on each target (the ground-truth curves): the sweep's
finetune stage.

  python launch/finetune.py --config configs/thesis_cnn.py:quick --workdir runs/thesis_cnn_quick

Rerunning with the same workdir skips every finished (checkpoint, target, mode, ft_seed)
curve. Takes every flag of `launch/sweep.py`, e.g. `--config.finetune.modes=full,head`.
"""

from jtransfer.cli import launcher

if __name__ == "__main__":
  launcher.main(stages=("finetune",))

r"""Pre-trains a study's zoo: the sweep's pretrain stage (every source, `num_seeds` seeds each).

  python launch/pretrain.py --config configs/thesis_cnn.py:quick --workdir runs/thesis_cnn_quick

Rerunning with the same workdir resumes from the last saved train state and skips finished
seeds. Takes every flag of `launch/sweep.py` (config overrides such as
`--config.pretrain.num_seeds=3`, `--stages`, the multi-process flags: each process trains its
share of the seeds and writes its own results shard).
"""

from jtransfer.cli import launcher

if __name__ == "__main__":
  launcher.main(stages=("pretrain",))

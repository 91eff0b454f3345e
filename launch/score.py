r"""Probes every checkpoint of a zoo at every tap and scores it: the sweep's score stage.

  python launch/score.py --config configs/thesis_cnn.py:quick --workdir runs/thesis_cnn_quick

Scores once per target of the config's `score.targets`; rerunning with the same workdir skips
checkpoints already scored. A zoo that this study did not pre-train (`launch/import_zoo.py`):
`--config.sources=` (no sources, so no taps to check the layers against) and the targets and
layers it needs, e.g. `--config.score.targets=my_images --config.score.layers=pool,fc`.
Takes every flag of `launch/sweep.py`.
"""

from jtransfer.cli import launcher

if __name__ == "__main__":
  launcher.main(stages=("score",))

"""Probes every checkpoint of a zoo at every tap and scores it (`jtransfer.score_job`).

  python launch/score.py --config configs/score_mnist.py:quick --workdir runs/zoo_quick

Rerunning with the same workdir skips checkpoints already scored.
"""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from absl import app, flags, logging  # noqa: E402

from jtransfer import config_cli, score_job, tracking  # noqa: E402
from jtransfer.models import user_modules  # noqa: E402

_CONFIG = config_cli.ConfigFlag("config", "Score config.")
_WORKDIR = flags.DEFINE_string("workdir", None, "Zoo workdir (holds results.sqlite and zoo/).")
_DATA_DIR = flags.DEFINE_string("data_dir", None, "Datasets dir (default $JTRANSFER_DATA_DIR).")
flags.mark_flags_as_required(["config", "workdir"])
user_modules.define_flag()  # --model_module: the user's architectures


def main(argv):
  if len(argv) > 1:
    raise app.UsageError(f"unexpected arguments: {argv[1:]}")
  c = _CONFIG.value
  with tracking.stage_log(_WORKDIR.value, "score"):  # <workdir>/logs/score.log
    _score(c)


def _score(c):
  for target in c.targets:
    summary = score_job.run(
      workdir=_WORKDIR.value,
      target=target,
      probe_per_class=c.probe_per_class,
      probe_split=c.probe_split,
      probe_seed=c.probe_seed,
      heldout_probe=c.heldout_probe,
      layers=tuple(c.layers) or None,
      scores=tuple(c.scores) or None,
      memory_budget_bytes=int(c.memory_budget_gb * 2**30),
      batch_size=c.batch_size,
      parallel=c.parallel,
      data_dir=_DATA_DIR.value,
    )
    logging.info("score %s: %s", target, summary)
    print(f"[score] {target}: {summary}", flush=True)


if __name__ == "__main__":
  config_cli.run(main, _CONFIG)

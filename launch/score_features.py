r"""Scores feature sets you already have: `.npz` files -> a table of every applicable score.

  python launch/score_features.py --features feats.npz [more.npz ...] --output /tmp/scores

Each file holds `features` [N, ...], `labels` [N] and optionally `source_probs` [N, C_s] (the
source model's softmax, for LEEP and NCE), or several sets as `<set>/features`, `<set>/labels`.
Prints one row per feature set (↑ higher is better, ↓ lower is better) and writes
`<output>.csv` and `<output>.json`.
"""

import sys

from absl import app, flags

from jtransfer.models import user_modules
from jtransfer.scores import table

_FEATURES = flags.DEFINE_multi_string(
  "features", None, "One or more .npz files (repeat the flag, or list them after it).",
  required=True,
)  # fmt: skip
_NUM_CLASSES = flags.DEFINE_integer("num_classes", None, "Target classes (default max label + 1).")
_SCORES = flags.DEFINE_list("scores", None, "Scores to compute (default: all applicable).")
_OUTPUT = flags.DEFINE_string("output", None, "Path prefix for <output>.csv and <output>.json.")
user_modules.define_flag()  # --model_module: the user's architectures


def main(argv):
  paths = list(_FEATURES.value) + list(argv[1:])  # `--features a.npz b.npz` leaves b.npz in argv
  sets = table.load_feature_sets(paths)
  skipped = {}
  results = table.score_feature_sets(
    sets, num_classes=_NUM_CLASSES.value, names=_SCORES.value, skipped=skipped
  )
  print(table.format_table(results))
  for note in skipped.values():
    print(f"note: {note}")
  if _OUTPUT.value:
    for path in table.write_outputs(results, _OUTPUT.value):
      print(f"wrote {path}")


def _main(argv):
  try:
    main(argv)
  except ValueError as e:  # bad input: one line naming the problem, not a traceback
    sys.exit(f"error: {e}")


if __name__ == "__main__":
  app.run(_main)

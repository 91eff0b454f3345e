r"""Evaluates the scores in a workdir's results store against fine-tuning: tables, figures, report.

  python launch/evaluate.py --workdir /tmp/jtransfer/thesis_cnn_quick

Writes `<workdir>/analysis_*.csv`, `<workdir>/figures/*.png|pdf`, `<workdir>/report.md` and
`<workdir>/report.html`, and prints the report path.
"""

import logging

from absl import app, flags

from jtransfer import analysis, tracking
from jtransfer.models import user_modules

_WORKDIR = flags.DEFINE_string(
  "workdir", None, "Run directory holding results.sqlite.", required=True
)
_SEEDS = flags.DEFINE_enum(
  "seeds", "average", ["average", "keep"], "Average scores and accuracy over pre-train seeds "
  "first (thesis) or keep every seed as its own model.",
)  # fmt: skip
_N_BOOT = flags.DEFINE_integer("n_boot", 1000, "Bootstrap resamples per correlation (0: none).")
_PENALTY = flags.DEFINE_float("param_penalty", 0.0, "Parameter-count penalty λ (0: off).")
_SETTING = flags.DEFINE_string(
  "setting", None, "Transfer setting of the main tables (default full)."
)
_PROBE = flags.DEFINE_string("probe", None, "Probe of the main tables (default train).")
_LAYER = flags.DEFINE_string("focus_layer", None, "Layer of the detail tables (default pool2).")
_FIGURES = flags.DEFINE_bool("figures", True, "Draw the figures.")
user_modules.define_flag()  # --model_module: the user's architectures


def main(argv):
  del argv
  with tracking.stage_log(_WORKDIR.value, "evaluate"):  # <workdir>/logs/evaluate.log
    path = _evaluate()
    logging.getLogger("jtransfer.evaluate").info("report: %s", path)
  print(f"report: {path}")


def _evaluate():
  return analysis.run(
    _WORKDIR.value,
    keep_seeds=_SEEDS.value == "keep",
    n_boot=_N_BOOT.value,
    param_penalty=_PENALTY.value,
    setting=_SETTING.value,
    probe=_PROBE.value,
    focus_layer=_LAYER.value,
    with_figures=_FIGURES.value,
  )


if __name__ == "__main__":
  app.run(main)

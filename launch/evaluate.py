r"""Evaluates the scores in a workdir's results store against fine-tuning: the sweep's evaluate
stage (tables, figures, report, and the config's `studies`: `jtransfer.studies.write_report`).

  python launch/evaluate.py --config configs/thesis_cnn.py:quick --workdir runs/thesis_cnn_quick
  python launch/evaluate.py --workdir runs/mine --config.evaluate.n_boot=0

Writes `<workdir>/analysis_*.csv`, `<workdir>/figures/*.png|pdf`, `<workdir>/report.md` and
`<workdir>/report.html`, and prints the report path. Without `--config` the `evaluate` section
is empty (`analysis.EvaluateConfig`'s defaults); every field of it can be set as
`--config.evaluate.<name>`, e.g. `keep_seeds=true`, `with_figures=false`, `focus_layer=fc1`.
"""

from jtransfer.cli import checks as config_checks
from jtransfer.cli import launcher

if __name__ == "__main__":
  launcher.main(stages=("evaluate",), default_config=config_checks.minimal_study)

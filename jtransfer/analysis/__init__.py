"""Evaluation of transferability scores: ground truth, statistics, figures, report."""

from jtransfer.analysis.pipeline import (
  Analysis,
  EvaluateConfig,
  analyse,
  analyse_tables,
  load_tables,
  run,
  write_outputs,
)
from jtransfer.analysis.stats import bonett_wright_ci, correlate, null_band
from jtransfer.analysis.truth import ground_truth, log_auc

__all__ = [
  "Analysis",
  "analyse",
  "analyse_tables",
  "bonett_wright_ci",
  "correlate",
  "ground_truth",
  "load_tables",
  "log_auc",
  "null_band",
  "EvaluateConfig",
  "run",
  "write_outputs",
]

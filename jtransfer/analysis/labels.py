"""Display names of scores and ground-truth columns for figures: a reader sees "NC score (↓
better)", never `nc_score_eq2`. The direction comes from the sign table (the score registry,
with its checkpoint baselines, then caller overrides)."""

import re
from collections.abc import Mapping

from jtransfer.analysis import signs

DISPLAY_NAMES = {
  "two_nn": "TWO-NN intrinsic dimension",
  "sum_of_squares": "within/total sum of squares",
  "rsa": "RSA",
  "nc_score": "NC score",
  "nc_score_eq2": "NC score (eq. 2)",
  "logme": "LogME",
  "h_score": "H-score",
  "h_score_shrinkage": "H-score (shrinkage)",
  "transrate": "TransRate",
  "gbc": "GBC",
  "sfda": "SFDA",
  "parc": "PARC",
  "nleep": "N-LEEP",
  "ncti_seli": "NCTI SELI term",
  "ncti_ncc": "NCTI NCC term",
  "ncti_vc": "NCTI VC term",
  "etran_energy": "ETran energy term",
  "etran_lda": "ETran LDA term",
  "pactran": "PACTran-Gaussian",
  "ncti": "NCTI (pool-normalised)",
  "etran": "ETran (pool-normalised)",
  "knn_accuracy": "kNN accuracy",
  "leep": "LEEP",
  "nce": "NCE",
  "checkpoint_index": "checkpoint index",
  "param_count": "parameter count",
}

TRUTH_NAMES = {
  "log_auc": "log-AUC",
  "final_acc": "final accuracy",
  "best_acc": "best accuracy",
  "test_acc": "test accuracy",
}

_PENALISED = re.compile(r"^(?P<base>.+)-pc(?P<lam>[0-9.eE+-]+)$")


def display_name(score: str) -> str:
  """Readable name; a parameter-penalised `<score>-pc<λ>` reads "<name> − λ·params"; an unknown
  name is shown as stored."""
  m = _PENALISED.match(score)
  if m and m["base"] in DISPLAY_NAMES:
    return f"{DISPLAY_NAMES[m['base']]} − {m['lam']}·params"
  return DISPLAY_NAMES.get(score, score)


def arrow(score: str, overrides: Mapping[str, bool] | None = None) -> str:
  """↑ when higher means better transfer, ↓ when lower does, "" when the sign is unknown."""
  table = signs.sign_table(overrides)
  if score not in table:
    return ""
  return "↑" if table[score] else "↓"


def axis_label(score: str, overrides: Mapping[str, bool] | None = None) -> str:
  """ "NC score (↓ better)": the name with its declared direction."""
  a = arrow(score, overrides)
  return f"{display_name(score)} ({a} better)" if a else display_name(score)


def truth_name(column: str) -> str:
  return TRUTH_NAMES.get(column, column)

"""Evaluation metrics computed on the host from model outputs (NumPy, float64).

- `auroc(positive_score, labels)`: the area under the ROC curve in its Mann-Whitney form, ties
  counted one half: AUROC = (R_pos - n_pos (n_pos + 1) / 2) / (n_pos n_neg), R_pos the sum of the
  positives' average ranks; equals P(s+ > s-) + P(s+ = s-) / 2 over (positive, negative) pairs.
  Any strictly increasing function of the score gives the same value, so the fine-tune job ranks
  the logit margin z1 - z0 (the positive-class probability is its sigmoid) and is spared the
  ties a saturated float sigmoid would add.
- `positive_probability(logits)`: softmax(logits)[:, 1] of two-class logits.
"""

from __future__ import annotations

import numpy as np
from scipy import special
from scipy import stats as sp_stats


def auroc(positive_score, labels) -> float:
  """Area under the ROC curve of `positive_score` for binary `labels` (1 = positive)."""
  s = np.asarray(positive_score, dtype=np.float64)
  y = np.asarray(labels)
  if s.ndim != 1 or y.shape != s.shape:
    raise ValueError(f"scores and labels must be 1-D of equal length, got {s.shape}, {y.shape}")
  if s.size == 0:
    raise ValueError("AUROC of an empty set")
  if not np.all(np.isfinite(s)):
    raise ValueError("scores contain NaN or Inf")
  if not np.all((y == 0) | (y == 1)):
    raise ValueError(f"labels must be 0 or 1, got values {np.unique(y)[:5].tolist()}")
  pos = y == 1
  n_pos, n_neg = int(pos.sum()), int((~pos).sum())
  if n_pos == 0 or n_neg == 0:
    raise ValueError(f"AUROC needs both classes; got {n_pos} positives and {n_neg} negatives")
  ranks = sp_stats.rankdata(s)  # average ranks: a tie between classes counts one half
  return float((ranks[pos].sum() - n_pos * (n_pos + 1) / 2.0) / (n_pos * n_neg))


def positive_probability(logits) -> np.ndarray:
  """softmax(logits)[:, 1] in float64 (logits [N, 2])."""
  z = np.asarray(logits, dtype=np.float64)
  if z.ndim != 2 or z.shape[1] != 2:
    raise ValueError(f"AUROC needs two-class logits [N, 2], got shape {z.shape}")
  # p1 = 1 / (1 + exp(z0 - z1)), via expit: no overflow for large logit gaps.
  return special.expit(z[:, 1] - z[:, 0])

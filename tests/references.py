"""Float64 references shared by several tests (written here, independent of jtransfer)."""

import numpy as np


def pairwise_auroc(score, labels) -> float:
  """P(s+ > s-) + P(s+ = s-) / 2 over every (positive, negative) pair."""
  s, y = np.asarray(score, np.float64), np.asarray(labels)
  diff = s[y == 1][:, None] - s[y == 0][None, :]
  return float(((diff > 0).sum() + 0.5 * (diff == 0).sum()) / diff.size)

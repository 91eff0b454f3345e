"""Float64 references shared by several tests (written here, independent of jtransfer)."""

import numpy as np


def pairwise_auroc(score, labels) -> float:
  """P(s+ > s-) + P(s+ = s-) / 2 over every (positive, negative) pair."""
  s, y = np.asarray(score, np.float64), np.asarray(labels)
  diff = s[y == 1][:, None] - s[y == 0][None, :]
  return float(((diff > 0).sum() + 0.5 * (diff == 0).sum()) / diff.size)


def np_conv_same3(x, w, b):
  """3x3 'SAME' convolution (NHWC, HWIO kernel) as nine shifted matmuls."""
  xp = np.pad(x, ((0, 0), (1, 1), (1, 1), (0, 0)))
  h, wd = x.shape[1:3]
  out = np.zeros((x.shape[0], h, wd, w.shape[3]))
  for i in range(3):
    for j in range(3):
      out += xp[:, i : i + h, j : j + wd, :] @ w[i, j]
  return out + b

"""Realistic probe shapes for float32 checks, and the transforms the scores are blind to.

Used by tests/scores_float32_test.py and benchmarks/scores_float32.py. Each probe is a float64
[N, D] array with labels (C classes, N / C per class) shaped like real features: post-ReLU
channels with large means, MNIST-like integer pixels 0..255, an embedding with a large mean.
"""

import numpy as np


def relu_features(n=120, d=40, c=6, seed=0):
  """Post-ReLU channels: class signal, then a large positive per-channel bias (mean ≈ 20..60)."""
  rng = np.random.default_rng(seed)
  labels = np.repeat(np.arange(c), n // c)
  centres = rng.normal(size=(c, d))
  pre = centres[labels] + rng.normal(size=(n, d)) @ rng.normal(size=(d, d)) / np.sqrt(d)
  feats = np.maximum(
    pre + rng.uniform(-1, 1, size=d) + rng.uniform(20, 60, size=d) * (rng.random(d) < 0.5), 0
  )  # half the channels carry a large mean, the rest are sparse
  return feats, labels


def mnist_pixels(n=120, d=64, c=6, seed=1):
  """Integer pixels 0..255: class templates of strokes, noise, clipped and rounded."""
  rng = np.random.default_rng(seed)
  labels = np.repeat(np.arange(c), n // c)
  templates = 255 * (rng.random((c, d)) < 0.3)
  noisy = templates[labels] * rng.uniform(0.6, 1.0, size=(n, d)) + rng.normal(0, 30, (n, d))
  return np.clip(np.round(noisy), 0, 255), labels


def embedding(n=120, d=48, c=6, seed=2):
  """A large-model embedding: weak class clusters around a mean 300× their spread."""
  rng = np.random.default_rng(seed)
  labels = np.repeat(np.arange(c), n // c)
  mean = 300 * rng.normal(size=d)
  return mean + 0.7 * rng.normal(size=(c, d))[labels] + rng.normal(size=(n, d)), labels


PROBES = {"relu": relu_features, "pixels": mnist_pixels, "embedding": embedding}


def transform(feats, offset: float, scale: float, seed=3):
  """scale · (F + c) with c a per-feature offset of size `offset` × the features' spread."""
  rng = np.random.default_rng(seed)
  spread = np.std(feats)
  c = offset * spread * rng.uniform(0.5, 1.5, size=feats.shape[1])
  return scale * (feats + c)


# Which transforms each score is mathematically blind to (see its module docstring):
# "shift" = adding one vector to every sample, "scale" = multiplying all features by a > 0,
# "scalar_shift" = adding one number to every entry (RSA: Pearson between samples).
INVARIANCES = {
  "two_nn": {"shift", "scale"},
  "knn_accuracy": {"shift", "scale"},
  "sum_of_squares": {"shift", "scale"},
  "nc_score": {"shift", "scale"},
  "nc_score_eq2": {"shift", "scale"},
  "h_score": {"shift", "scale"},
  "h_score_shrinkage": {"shift", "scale"},
  "gbc": {"shift"},
  "transrate": {"shift"},
  "rsa": {"scalar_shift", "scale"},
  "logme": {"scale"},
  "nleep": {"shift"},  # reg_covar = 1e-6 is absolute
  "parc": {"shift", "scale"},
  "sfda": {"shift"},  # λ = exp(−5 σ_max(S_W)) reads σ_max in the features' units
  "ncti_seli": {"shift", "scale"},  # always the unshrunk LDA (see ncti.py)
  "ncti_ncc": {"shift", "scale"},
  "ncti_vc": {"shift", "scale"},
  "etran_energy": set(),  # the logsumexp of the raw features
  "etran_lda": {"shift"},  # identity covariance, in the features' units
  "pactran": {"shift"},  # the prior variance is absolute
}

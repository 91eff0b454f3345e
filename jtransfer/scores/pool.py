"""Pool-relative scores: the published NCTI and ETran rank a set of candidate models by terms
min–max normalised over that set, so their value is a property of the pool, not of one model.

The per-model terms are registered scores (`ncti_seli`, ..., `etran_lda`); `registry.POOL`
names each combination with its terms, and `<name>_pool` in the term's module computes it over
one pool. The analysis report's pool is the models ranked for one target and probe at one
layer (`jtransfer.analysis.pooled`).
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np


def minmax(values) -> np.ndarray:
  """(v − min)/(max − min) over the pool; 0 for every model where all values are equal (the
  references divide 0 by 0 there: NaN for every model)."""
  v = np.asarray(values, np.float64)
  span = v.max() - v.min() if v.size else 0.0
  return (v - v.min()) / span if span > 0 else np.zeros_like(v)


def combine(terms_by_model: Mapping[str, object], weights: Mapping[str, float]) -> np.ndarray:
  """Σ_t weight_t · minmax(term t over the pool): [M] values for the pool's M models, from
  {term: [M] values, same model order for every term}."""
  missing = sorted(set(weights) - set(terms_by_model))
  if missing:
    raise ValueError(f"pool terms missing: {missing}; need {sorted(weights)}")
  values = {t: np.asarray(terms_by_model[t], np.float64) for t in weights}
  shapes = {t: v.shape for t, v in values.items()}
  if len(set(shapes.values())) != 1 or len(next(iter(shapes.values()))) != 1:
    raise ValueError(f"pool terms must be [M] arrays of one length, got shapes {shapes}")
  bad = sorted(t for t, v in values.items() if not np.all(np.isfinite(v)))
  if bad:
    raise ValueError(f"pool terms {bad} have non-finite values: leave those models out")
  return sum(w * minmax(values[t]) for t, w in weights.items())

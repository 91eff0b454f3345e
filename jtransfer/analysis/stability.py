"""Setup stability (Agostinelli et al. 2022): does a small change of setup change the answer?

Three views, each over one axis (layer, target, transfer setting, probe) with the rest fixed:
- `model_ranking_stability`: Kendall τ-b between a score's rankings of the same models in two
  setups, and how often its top-1 pick stays the same (the score itself must change with the
  axis, so layer and target and probe only; the setting changes the ground truth, not the score);
- `rho_stability`: spread of a score's Spearman ρ over the axis;
- `winner_stability`: how often the best score (highest ρ) flips between two setups, and the
  Kendall τ between the two orderings of the scores.
"""

import itertools

import numpy as np
import pandas as pd
from scipy import stats

from jtransfer.analysis import signs

SCORE_CONTEXT = ["target", "probe", "layer"]
CORR_CONTEXT = ["target", "setting", "probe", "layer"]


def _tau(a: np.ndarray, b: np.ndarray) -> float:
  if a.size < 2 or np.ptp(a) == 0 or np.ptp(b) == 0:
    return float("nan")
  return float(stats.kendalltau(a, b).statistic)


def model_ranking_stability(scores: pd.DataFrame, *, model_keys: list[str]) -> pd.DataFrame:
  """scores: one `oriented` value per (model, target, probe, layer, score)."""
  rows = []
  for axis in ("layer", "target", "probe"):
    fixed = [c for c in SCORE_CONTEXT if c != axis]
    for score, sgrp in scores.groupby("score"):
      if score in ("checkpoint_index", "param_count"):
        continue  # The same value at every layer, target and probe by construction.
      taus, same_top = [], []
      for _, grp in sgrp.groupby(fixed):
        wide = grp.groupby([*model_keys, axis])["oriented"].mean().unstack(axis)
        for a, b in itertools.combinations(wide.columns, 2):
          pair = wide[[a, b]].dropna()
          if len(pair) < 2:
            continue
          if axis == "layer" and np.array_equal(pair[a].to_numpy(), pair[b].to_numpy()):
            continue  # A layer-less score (LEEP, NCE) copied to every layer: nothing to compare.
          taus.append(_tau(pair[a].to_numpy(), pair[b].to_numpy()))
          same_top.append(pair[a].idxmax() == pair[b].idxmax())
      if taus:
        rows.append(
          dict(
            axis=axis,
            score=score,
            pairs=len(taus),
            mean_kendall=float(np.nanmean(taus)) if np.isfinite(taus).any() else np.nan,
            min_kendall=float(np.nanmin(taus)) if np.isfinite(taus).any() else np.nan,
            top1_agreement=float(np.mean(same_top)),
          )
        )
  return pd.DataFrame(rows)


def rho_stability(corr_all: pd.DataFrame) -> pd.DataFrame:
  """corr_all: the "all" breakdown. Spread of each score's ρ along each axis."""
  rows = []
  for axis in CORR_CONTEXT:
    fixed = [c for c in CORR_CONTEXT if c != axis]
    for score, sgrp in corr_all.groupby("score"):
      spans = []
      for _, grp in sgrp.groupby(fixed):
        r = grp["spearman"].to_numpy(dtype=float)
        r = r[np.isfinite(r)]
        if r.size >= 2:
          spans.append(r.max() - r.min())
      if spans:
        r = sgrp["spearman"].to_numpy(dtype=float)
        rows.append(
          dict(
            axis=axis,
            score=score,
            contexts=len(spans),
            mean_range=float(np.mean(spans)),
            max_range=float(np.max(spans)),
            rho_min=float(np.nanmin(r)),
            rho_max=float(np.nanmax(r)),
          )
        )
  return pd.DataFrame(rows)


def winner_stability(corr_all: pd.DataFrame, *, include_baselines: bool = False) -> pd.DataFrame:
  """How often the winning score (highest Spearman ρ) changes along each axis."""
  c = corr_all if include_baselines else corr_all[~corr_all["score"].isin(signs.BASELINES)]
  c = c[np.isfinite(c["spearman"].to_numpy(dtype=float))]
  rows = []
  for axis in CORR_CONTEXT:
    fixed = [x for x in CORR_CONTEXT if x != axis]
    flips, taus, winners = [], [], []
    for _, grp in c.groupby(fixed):
      wide = grp.groupby(["score", axis])["spearman"].mean().unstack(axis)
      if wide.shape[1] < 2:
        continue
      winners += [str(wide[col].idxmax()) for col in wide.columns]
      for a, b in itertools.combinations(wide.columns, 2):
        pair = wide[[a, b]].dropna()
        if len(pair) < 2:
          continue
        flips.append(pair[a].idxmax() != pair[b].idxmax())
        taus.append(_tau(pair[a].to_numpy(), pair[b].to_numpy()))
    if flips:
      counts = pd.Series(winners).value_counts()
      rows.append(
        dict(
          axis=axis,
          pairs=len(flips),
          winner_flip_rate=float(np.mean(flips)),
          mean_kendall_of_score_order=float(np.nanmean(taus))
          if np.isfinite(taus).any()
          else np.nan,
          winners=", ".join(f"{k}×{v}" for k, v in counts.items()),
        )
      )
  return pd.DataFrame(rows)

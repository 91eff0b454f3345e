"""Model selection by score: top-1 pick, its regret, top-k hit rate, weighted τ; the baseline check.

Ties are broken at random, never by the order of the rows: a score that ties n models (a
constant score) picks each with probability 1/n, so its top-k hit rate is k/n, not 1.
"""

from math import comb

import numpy as np
import pandas as pd
from scipy import stats

from jtransfer.analysis import signs
from jtransfer.analysis import stats as stats_lib
from jtransfer.analysis.breakdown import CONTEXT

TOP_K = 3


def expected_top_k_hit(score: np.ndarray, is_best: np.ndarray, k: int) -> float:
  """P(some model with `is_best` is among the top k by `score`), ties in score broken uniformly
  at random (exact: the tie group straddling position k is a random permutation)."""
  order = np.sort(np.unique(score))[::-1]
  above = 0  # models strictly above the current tie group
  for value in order:
    group = score == value
    g, b = int(group.sum()), int((group & is_best).sum())
    if above + g <= k:  # the whole group is in the top k
      if b:
        return 1.0
    else:  # the top k ends inside this group: m of its g places are in it
      m = k - above
      return 1.0 - comb(g - b, m) / comb(g, m) if b else 0.0
    above += g
  return 0.0


def select(
  joint: pd.DataFrame, *, model_keys: list[str], truth: str = "log_auc", by: str | None = None
) -> pd.DataFrame:
  """Per context: the model each score ranks first and what it costs.

  - pick: the model the score ranks first; "tie of n" when n models share the top score.
  - regret = best achievable truth − truth of the pick, averaged over tied picks (the expected
    regret of breaking the tie at random); pick_rank likewise (1 = best by truth, ties in truth
    get the lower rank).
  - top3_hit: probability that a truly best model is among the score's top 3 (`TOP_K`) under
    random tie-breaking (1 or 0 when nothing ties).
  - wtau: `stats.weighted_tau` of the score against the truth.
  With by="ckpt_index" (picking a source at one schedule position), `steps` lists the raw steps
  of that position.
  """
  keys = CONTEXT + ([by] if by else [])
  s_all = joint["oriented"].to_numpy(dtype=float)
  t_all = joint[truth].to_numpy(dtype=float)
  labels = joint[model_keys[0]].astype(str)
  for k in model_keys[1:]:
    labels = labels + "/" + joint[k].astype(str)
  labels = labels.to_numpy()
  steps_all = joint["step"].to_numpy() if "step" in joint else None
  rows = []
  for key, idx in joint.groupby(keys, sort=True, dropna=False).indices.items():
    idx = idx[np.isfinite(s_all[idx]) & np.isfinite(t_all[idx])]
    if idx.size == 0:
      continue
    s, t = s_all[idx], t_all[idx]
    best = t.max()
    picked = s == s.max()
    truth_rank = stats.rankdata(-t, method="min")
    row = dict(zip(keys, key, strict=True))
    row["group"] = "all" if by is None else str(key[-1])
    if by == "ckpt_index" and steps_all is not None:
      row["steps"] = ",".join(str(int(v)) for v in sorted(set(steps_all[idx])))
    n_tied = int(picked.sum())
    is_best = t == best
    row.update(
      n=int(idx.size),
      pick=labels[idx[np.argmax(picked)]] if n_tied == 1 else f"tie of {n_tied}",
      n_tied=n_tied,
      pick_truth=float(t[picked].mean()),
      best=labels[idx[np.argmax(t)]] if is_best.sum() == 1 else f"tie of {int(is_best.sum())}",
      best_truth=float(best),
      regret=float(best - t[picked].mean()),
      pick_rank=float(truth_rank[picked].mean()),
      top1_hit=float(is_best[picked].mean()),
      top3_hit=expected_top_k_hit(s, is_best, TOP_K),
      wtau=stats_lib.weighted_tau(s, t),
    )
    rows.append(row)
  out = pd.DataFrame(rows)
  if by and not out.empty:
    out = out.drop(columns=[by])
  return out


def compare_to_baselines(
  table: pd.DataFrame, *, metric: str, better: str = "higher", baselines=signs.BASELINES
) -> pd.DataFrame:
  """Puts each baseline's `metric` beside every score of the same context and adds
  `beats_<baseline>` (True/False, or NA when either side is undefined)."""
  ctx = [c for c in ("breakdown", "target", "setting", "probe", "layer", "group") if c in table]
  out = table[~table["score"].isin(baselines)].copy()
  for b in baselines:
    ref = table[table["score"] == b][[*ctx, metric]].rename(columns={metric: f"{metric}_{b}"})
    out = out.merge(ref, on=ctx, how="left")
    ours = out[metric].to_numpy(dtype=float)
    theirs = out[f"{metric}_{b}"].to_numpy(dtype=float)
    beats = ours > theirs if better == "higher" else ours < theirs
    defined = np.isfinite(ours) & np.isfinite(theirs)
    out[f"beats_{b}"] = pd.array(np.where(defined, beats, False), dtype="boolean")
    out.loc[~defined, f"beats_{b}"] = pd.NA
  return out

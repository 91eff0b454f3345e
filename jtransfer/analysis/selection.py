"""Model selection by score: top-1 pick, its regret, top-3 hit rate; and the baseline check."""

import numpy as np
import pandas as pd
from scipy import stats

from jtransfer.analysis import signs
from jtransfer.analysis.breakdown import CONTEXT


def select(
  joint: pd.DataFrame, *, model_keys: list[str], truth: str = "log_auc", by: str | None = None
) -> pd.DataFrame:
  """Per context: the model each score ranks first and what it costs.

  - regret = best achievable truth − truth of the pick. Tied top scores are averaged (the
    expected regret of breaking the tie at random).
  - pick_rank: rank of the pick among all models by truth (1 = best; ties get the lower rank).
  - top3_hit: a truly best model is among the score's top 3 (ties at rank 3 included).
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
    score_rank = stats.rankdata(-s, method="min")
    row = dict(zip(keys, key, strict=True))
    row["group"] = "all" if by is None else str(key[-1])
    if by == "ckpt_index" and steps_all is not None:
      row["steps"] = ",".join(str(int(v)) for v in sorted(set(steps_all[idx])))
    row.update(
      n=int(idx.size),
      pick=labels[idx[np.argmax(picked)]],
      n_tied=int(picked.sum()),
      pick_truth=float(t[picked].mean()),
      best=labels[idx[np.argmax(t)]],
      best_truth=float(best),
      regret=float(best - t[picked].mean()),
      pick_rank=float(truth_rank[picked].mean()),
      top3_hit=bool(np.any(score_rank[t == best] <= 3)),
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

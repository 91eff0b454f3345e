"""Does a score beat a baseline? ρ(score) − ρ(baseline) on the same models, with a paired
cluster-bootstrap interval (`cluster_bootstrap.paired_difference_ci`).

A comparison where either ρ is undefined (a constant score or baseline, too few models) is
"undefined", never a win. The verdicts:
- "beats": the whole 95% interval of the difference is above 0;
- "higher, unresolved": the difference is positive but its interval reaches 0 or below;
- "not higher": the difference is ≤ 0;
- "undefined".
"""

import numpy as np
import pandas as pd
from scipy import stats

from jtransfer.analysis import cluster_bootstrap as cb
from jtransfer.analysis import dependence, signs

BEATS, UNRESOLVED, NOT_HIGHER, UNDEFINED = "beats", "higher, unresolved", "not higher", "undefined"


def _rho(x: np.ndarray, y: np.ndarray) -> float:
  if x.size < 4 or np.ptp(x) == 0 or np.ptp(y) == 0:
    return float("nan")
  return float(stats.spearmanr(x, y).statistic)


def _verdict(diff: float, lo: float) -> str:
  if not np.isfinite(diff):
    return UNDEFINED
  if diff <= 0:
    return NOT_HIGHER
  return BEATS if np.isfinite(lo) and lo > 0 else UNRESOLVED


def versus_baseline(
  joint: pd.DataFrame,
  *,
  model_keys: list[str],
  keep_seeds: bool,
  baseline: str = "checkpoint_index",
  truth: str = "log_auc",
  n_boot: int = cb.DEFAULT_BOOT,
  seed: int = 0,
) -> pd.DataFrame:
  """One row per (target, setting, probe, layer, score ≠ baselines): rho, rho_baseline, diff,
  diff_lo, diff_hi, n, n_clusters, verdict. The shared step-0 model counts once where the score
  and the baseline both agree on it (as in the score's own correlation)."""
  ctx = ["target", "setting", "probe", "layer"]
  rows = []
  for key, grp in joint.groupby(ctx, sort=True):
    if baseline not in set(grp["score"]):
      continue
    for score in sorted(set(grp["score"]) - set(signs.BASELINES)):
      pair = dependence.merge_shared_init(
        grp[grp["score"].isin([score, baseline])], model_keys, per_score=False
      )
      wide = pair.pivot_table(index=model_keys, columns="score", values="oriented", aggfunc="mean")
      y = pair.groupby(model_keys)[truth].mean().reindex(wide.index)
      clusters = dependence.cluster_labels(wide.index.to_frame(index=False), keep_seeds=keep_seeds)
      ok = (wide[score].notna() & wide[baseline].notna() & y.notna()).to_numpy()
      xs, xb, yy = (v.to_numpy(dtype=float)[ok] for v in (wide[score], wide[baseline], y))
      rho_s, rho_b = _rho(xs, yy), _rho(xb, yy)
      diff = rho_s - rho_b
      lo, hi, valid = (np.nan, np.nan, 0)
      if np.isfinite(diff):
        lo, hi, valid = cb.paired_difference_ci(xs, xb, yy, clusters[ok], n_boot=n_boot, seed=seed)
      rows.append(
        dict(
          zip(ctx, key, strict=True),
          score=score,
          n=int(ok.sum()),
          n_clusters=int(np.unique(clusters[ok]).size),
          rho=rho_s,
          rho_baseline=rho_b,
          diff=diff,
          diff_lo=lo,
          diff_hi=hi,
          diff_valid=valid,
          verdict=_verdict(diff, lo),
        )
      )
  out = pd.DataFrame(rows)
  if not out.empty:
    out.insert(4, "baseline", baseline)
  return out

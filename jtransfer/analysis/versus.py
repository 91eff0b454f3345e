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


def _ranks(v: np.ndarray) -> np.ndarray:
  return stats.rankdata(v).astype(float)


def _pooled_within(x: np.ndarray, y: np.ndarray, strata: list[np.ndarray]) -> float:
  """Mean of the per-position Spearman ρ, weighted by each position's model count."""
  rhos = [(_rho(x[i], y[i]), i.size) for i in strata]
  rhos = [(r, w) for r, w in rhos if np.isfinite(r)]
  if not rhos:
    return float("nan")
  return float(sum(r * w for r, w in rhos) / sum(w for _, w in rhos))


def _permutation_hits(x, y, strata, observed, n_perm, rng) -> int:
  """How many of n_perm within-position permutations of x reach `observed` (the pooled ρ).

  A permutation of x within a position permutes its ranks there, and ρ is the Pearson
  correlation of the ranks, whose centring and norms do not change: so each position's ranks
  are taken once and every permutation is one gather and one dot product. The permutations
  are drawn in the order of the per-permutation loop this replaces (permutation, then
  position), so a seed gives the same p-value."""
  terms = []  # (position number, centred ranks of x, centred ranks of y, norm product, weight)
  for j, i in enumerate(strata):
    if np.ptp(x[i]) == 0 or np.ptp(y[i]) == 0:
      continue  # ρ undefined there, for every permutation alike
    rx, ry = _ranks(x[i]), _ranks(y[i])
    rx, ry = rx - rx.mean(), ry - ry.mean()
    terms.append((j, rx, ry, np.sqrt((rx * rx).sum() * (ry * ry).sum()), i.size))
  if not terms:
    return 0
  # One draw per permutation for every position of size >= 4, as the loop drew them.
  perms = [np.empty((n_perm, i.size), dtype=np.intp) for i in strata]
  for k in range(n_perm):
    for drawn, i in zip(perms, strata, strict=True):
      drawn[k] = rng.permutation(i.size)
  pooled = sum(w * ((rx[perms[j]] @ ry) / den) for j, rx, ry, den, w in terms)
  pooled = pooled / sum(t[-1] for t in terms)
  return int(np.count_nonzero(pooled >= observed - 1e-12))


def partial_spearman(x: np.ndarray, y: np.ndarray, z: np.ndarray) -> float:
  """Spearman ρ of x and y given z: the Pearson correlation of the ranks of x and y after each
  is regressed (least squares, with intercept) on the ranks of z."""
  rx, ry, rz = _ranks(x), _ranks(y), _ranks(z)
  design = np.column_stack([np.ones_like(rz), rz])
  ex = rx - design @ np.linalg.lstsq(design, rx, rcond=None)[0]
  ey = ry - design @ np.linalg.lstsq(design, ry, rcond=None)[0]
  den = np.sqrt((ex * ex).sum() * (ey * ey).sum())
  return float((ex * ey).sum() / den) if den > 0 else float("nan")


# The within-position permutation test's resolution: p-values down to 1/1001, so a Holm
# adjustment over ~12 scores can still reach 0.05.
WITHIN_PERMUTATIONS = 1_000


def within_position(
  joint: pd.DataFrame,
  *,
  model_keys: list[str],
  truth: str = "log_auc",
  n_perm: int = 2_000,
  seed: int = 0,
) -> pd.DataFrame:
  """Does a score rank models beyond their pre-training length? Per (target, setting, probe,
  layer, score): `rho_within`, the count-weighted mean of ρ within each schedule position
  (`ckpt_index`; checkpoint_index is constant there, so it explains nothing), its one-sided
  p-value from permuting the score within each position (`p_within`, n_perm permutations),
  `p_holm`, that p-value Holm-adjusted over the scores of one (target, setting, probe, layer),
  and `partial_rho`, ρ given log(step) (the ranks of the step) over all models. Positions with
  fewer than 4 models (or a constant score or truth) add nothing; the shared step 0 counts
  once. The seeds of one model are averaged first: a permutation treats the models of a
  position as exchangeable, which two seeds of one source are not."""
  rng = np.random.default_rng(seed)
  ctx = ["target", "setting", "probe", "layer", "score"]
  rows = []
  merged = dependence.merge_shared_init(joint[~joint["score"].isin(signs.BASELINES)], model_keys)
  models = [k for k in model_keys if k != "seed"]
  for key, grp in merged.groupby(ctx, sort=True):
    per_model = grp.groupby(models, dropna=False).agg(
      x=("oriented", "mean"), y=(truth, "mean"), pos=("ckpt_index", "first")
    )
    per_model = per_model[np.isfinite(per_model["x"]) & np.isfinite(per_model["y"])]
    x, y = per_model["x"].to_numpy(float), per_model["y"].to_numpy(float)
    pos = per_model["pos"].to_numpy()
    steps = per_model.index.get_level_values("step").to_numpy(float)
    strata = [np.flatnonzero(pos == p) for p in np.unique(pos)]
    strata = [i for i in strata if i.size >= 4]
    observed = _pooled_within(x, y, strata)
    p = float("nan")
    if np.isfinite(observed) and n_perm:
      p = (1 + _permutation_hits(x, y, strata, observed, n_perm, rng)) / (1 + n_perm)
    rows.append(
      dict(
        zip(ctx, key, strict=True),
        n=int(x.size),
        n_positions=len(strata),
        n_within=int(sum(i.size for i in strata)),
        rho_within=observed,
        p_within=p,
        partial_rho=partial_spearman(x, y, steps) if x.size >= 4 else float("nan"),
      )
    )
  out = pd.DataFrame(rows)
  if out.empty:
    return out
  family = ctx[:-1]
  out["p_holm"] = out.groupby(family, sort=False)["p_within"].transform(holm).to_numpy()
  return out


def holm(p) -> np.ndarray:
  """Holm's step-down adjustment of the p-values `p` (NaN stays NaN and is not counted)."""
  p = np.asarray(p, dtype=float)
  out = np.full_like(p, np.nan)
  ok = np.flatnonzero(np.isfinite(p))
  order = ok[np.argsort(p[ok], kind="stable")]
  m = order.size
  adjusted = np.maximum.accumulate((m - np.arange(m)) * p[order])
  out[order] = np.minimum(adjusted, 1.0)
  return out

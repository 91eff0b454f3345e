"""What the run can resolve: the smallest differences its data can tell apart.

- A correlation: the half-width of its cluster-bootstrap interval (differences of ρ smaller than
  it are within the run's noise); against `checkpoint_index`, the half-width of the paired
  interval of the difference.
- A gap between two sources' log-AUC: with seed-to-seed SD σ_s of log-AUC (same source, step,
  target; `seed_spread`) and k seeds per source, the seed means differ by noise of SD
  σ_s·√(2/k), so gaps under z·σ_s·√(2/k) (z = 1.96, ≈ 2.8 σ_s/√k) cannot be ranked.
"""

import numpy as np
import pandas as pd

from jtransfer.analysis import truth as gt_lib
from jtransfer.analysis import versus
from jtransfer.analysis.stats import Z95


def seed_spread(gt: pd.DataFrame, *, setting: str, value: str = "log_auc") -> pd.DataFrame:
  """Per target: sigma_s (root-mean-square over models of the SD over seeds), k (seeds per
  model, the median), and resolvable_gap = 1.96·σ_s·√(2/k). Models with one seed are skipped."""
  g = gt[(gt["setting"] == setting) & ~gt["source"].isin(gt_lib.NON_SOURCES)]
  per = g.groupby(["target", "source", "arch", "step"])[value].agg(["std", "count"])
  per = per[per["count"] >= 2].reset_index()
  rows = []
  for target, grp in per.groupby("target"):
    sigma = float(np.sqrt(np.mean(grp["std"].to_numpy() ** 2)))
    k = int(np.median(grp["count"]))
    rows.append(
      dict(
        target=target,
        sigma_s=sigma,
        k=k,
        models=len(grp),
        resolvable_gap=float(Z95 * sigma * np.sqrt(2.0 / k)),
      )
    )
  return pd.DataFrame(rows, columns=["target", "sigma_s", "k", "models", "resolvable_gap"])


def source_gaps(gt: pd.DataFrame, *, setting: str, value: str = "log_auc") -> pd.DataFrame:
  """Per target: the seed-mean value of each source at its longest pre-training, sorted, with
  the gap to the next better source."""
  g = gt[(gt["setting"] == setting) & ~gt["source"].isin(gt_lib.NON_SOURCES)]
  g = g[g["step"] == g.groupby(["source", "arch"])["step"].transform("max")]
  out = g.groupby(["target", "source"])[value].mean().reset_index().sort_values(["target", value])
  out["gap_to_next"] = out.groupby("target")[value].diff(-1).abs()
  return out.reset_index(drop=True)


def correlation_resolution(corr_focus: pd.DataFrame, versus: pd.DataFrame) -> pd.DataFrame:
  """Per (target, score) at one context: ρ, the half-width of its cluster interval, and the
  half-width of the paired interval of ρ − ρ(checkpoint_index)."""
  cols = ["target", "score", "spearman", "cluster_ci_lo", "cluster_ci_hi", "n", "n_clusters"]
  c = corr_focus[cols].copy()
  c["rho_halfwidth"] = (c["cluster_ci_hi"] - c["cluster_ci_lo"]) / 2.0
  if versus is not None and not versus.empty:
    v = versus[["target", "score", "diff_lo", "diff_hi"]].copy()
    v["diff_halfwidth"] = (v["diff_hi"] - v["diff_lo"]) / 2.0
    c = c.merge(v[["target", "score", "diff_halfwidth"]], on=["target", "score"], how="left")
  else:
    c["diff_halfwidth"] = np.nan
  return c.drop(columns=["cluster_ci_lo", "cluster_ci_hi"]).reset_index(drop=True)


def noise_worst_decidable(
  gaps: pd.DataFrame, spread: pd.DataFrame, noise, target: str, value: str = "log_auc"
):
  """(decided, gap, resolvable): is the gap between the best noise source and the worst other
  source larger than the resolvable gap? None when the run lacks what the check needs."""
  g = gaps[gaps["target"] == target].set_index("source")
  s = spread[spread["target"] == target]
  noisy = [x for x in noise if x in g.index]
  other = [x for x in g.index if x not in noise]
  if not noisy or not other or s.empty:
    return None
  gap = float(g.loc[other, value].min() - g.loc[noisy, value].max())
  resolvable = float(s["resolvable_gap"].iloc[0])
  return bool(abs(gap) > resolvable), gap, resolvable


def _baseline_finding(a) -> list[str]:
  v = a.versus_checkpoint
  if v is None or v.empty:
    return []
  v = v[v["layer"] == a.focus_layer]
  out = []
  for target, t in v.groupby("target"):
    defined = t[t["verdict"] != versus.UNDEFINED]
    decided = defined[(defined["diff_lo"] > 0) | (defined["diff_hi"] < 0)]
    out.append(
      f"scores vs checkpoint_index ({target}, {a.focus_layer}): the run decides "
      f"{len(decided)} of {len(defined)} comparisons (paired interval excludes 0)"
      + (f": {', '.join(decided['score'])}" if len(decided) else "")
      + "."
    )
  return out


def _ranking_finding(a) -> list[str]:
  out = []
  for _, s in a.power_seeds.iterrows():
    g = a.source_gaps[a.source_gaps["target"] == s["target"]]
    gaps = g["gap_to_next"].dropna()
    if len(gaps):
      ok = int((gaps > s["resolvable_gap"]).sum())
      out.append(
        f"source ranking ({s['target']}, longest pre-training): {ok} of {len(gaps)} adjacent "
        f"gaps exceed the resolvable {s['resolvable_gap']:.4f} (σ_s = {s['sigma_s']:.4f}, "
        f"k = {int(s['k'])} seeds)."
      )
  return out


def findings(a) -> list[str]:
  """One line per study-independent finding (scores vs checkpoint_index, the source ranking):
  whether this run's data can decide it. Studies add their own (`jtransfer.studies`)."""
  return [*_baseline_finding(a), *_ranking_finding(a)]

"""The NC paper's "ideal measure" knob: prefer smaller models at similar scores.

penalised = z(oriented score) − λ · z(log parameter count), z-scored over the models of one
(target, probe, layer). With equal parameter counts (one architecture) the penalty is 0.
"""

import numpy as np
import pandas as pd

from jtransfer.analysis import signs


def penalised_name(score: str, lam: float) -> str:
  return f"{score}-pc{lam:g}"


def _z(x: pd.Series) -> pd.Series:
  sd = x.std(ddof=0)
  return (x - x.mean()) / sd if sd > 0 else x * 0.0


def param_penalised(scores: pd.DataFrame, lam: float) -> pd.DataFrame:
  """New oriented score rows `<score>-pc<λ>` for every non-baseline score; empty when λ = 0 or
  no `param_count` rows are stored."""
  if lam == 0:
    return scores.iloc[0:0]
  if lam < 0:
    raise ValueError(f"parameter-count penalty must be >= 0, got {lam}")
  keys = ["source", "arch", "seed", "step"]
  pc = scores[scores["score"] == "param_count"]
  if pc.empty:
    return scores.iloc[0:0]
  pc = pc.groupby(keys)["value"].max().rename("param_count").reset_index()
  base = scores[~scores["score"].isin(signs.BASELINES)].merge(pc, on=keys, how="inner")
  if base.empty:
    return scores.iloc[0:0]
  g = base.groupby(["target", "probe", "layer", "score"], group_keys=False)
  zs = g["oriented"].transform(_z)
  base["_logp"] = np.log(base["param_count"].clip(lower=1.0))
  zp = base.groupby(["target", "probe", "layer", "score"])["_logp"].transform(_z)
  out = base.drop(columns=["param_count", "_logp"]).copy()
  out["oriented"] = zs - lam * zp
  out["value"] = out["oriented"]
  out["score"] = [penalised_name(s, lam) for s in out["score"]]
  return out

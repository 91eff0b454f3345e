"""How much one source carries a correlation: ρ recomputed with each source left out.

A pooled ρ over a zoo can rest on one unusual source (a far domain whose every checkpoint
transfers badly and scores low). Leaving each source out in turn and recomputing ρ on the rest
shows the range a reader should expect from a zoo without it; the shared initialisation
(`dependence.SHARED_INIT`) stays in every subset, as no source owns it.
"""

import numpy as np
import pandas as pd
from scipy import stats

from jtransfer.analysis import dependence

_CTX = ["target", "setting", "probe", "layer", "score"]


def _rho(x: np.ndarray, y: np.ndarray) -> float:
  if x.size < 4 or np.ptp(x) == 0 or np.ptp(y) == 0:
    return float("nan")
  return float(stats.spearmanr(x, y).statistic)


def leave_one_source_out(
  joint: pd.DataFrame, *, model_keys: list[str], truth: str = "log_auc"
) -> pd.DataFrame:
  """Per (target, setting, probe, layer, score): `rho` over every model, `rho_min` / `rho_max`
  over the leave-one-source-out subsets, the sources whose removal gives them (`without_min`,
  `without_max`), and `n_sources`. NaN where fewer than 3 sources exist."""
  merged = dependence.merge_shared_init(joint, model_keys)
  rows = []
  for key, grp in merged.groupby(_CTX, sort=True):
    per_model = grp.groupby(model_keys, dropna=False).agg(x=("oriented", "mean"), y=(truth, "mean"))
    per_model = per_model[np.isfinite(per_model["x"]) & np.isfinite(per_model["y"])]
    src = per_model.index.get_level_values("source").to_numpy()
    x, y = per_model["x"].to_numpy(float), per_model["y"].to_numpy(float)
    sources = sorted(set(src) - {dependence.SHARED_INIT})
    row = dict(zip(_CTX, key, strict=True), n_sources=len(sources), rho=_rho(x, y))
    row.update(rho_min=np.nan, rho_max=np.nan, without_min="", without_max="")
    if len(sources) >= 3:
      loso = {s: _rho(x[src != s], y[src != s]) for s in sources}
      loso = {s: r for s, r in loso.items() if np.isfinite(r)}
      if loso:
        lo, hi = min(loso, key=loso.get), max(loso, key=loso.get)
        row.update(rho_min=loso[lo], rho_max=loso[hi], without_min=lo, without_max=hi)
    rows.append(row)
  return pd.DataFrame(rows)

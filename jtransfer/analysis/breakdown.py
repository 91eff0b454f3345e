"""Correlation tables in the thesis' breakdowns (section 3.3).

- "all": every model together (thesis figs. 3.21 / 3.24),
- "per_source": the checkpoints of one source dataset (figs. 3.22 / 3.25),
- "per_checkpoint": the sources at one schedule position, `ckpt_index` (figs. 3.23 / 3.26); the
  raw steps of one position differ between sources whose epochs differ in length (`steps` lists
  them),
- "per_ft_step": accuracy at each fine-tune step instead of log-AUC (figs. 3.28 / 3.30).

Every table is also per target, transfer setting, probe, layer and score. The pooled
breakdowns ("all", "per_ft_step") count the shared step-0 model once (`dependence`), and every
correlation carries a cluster-bootstrap interval over the `cluster` column when the joint has
one (runs or sources; see `dependence.cluster_labels`).
"""

import numpy as np
import pandas as pd

from jtransfer.analysis import dependence, signs, stats, tables

CONTEXT = ["target", "setting", "probe", "layer", "score"]
BREAKDOWNS = {
  "all": (None, "log_auc"),
  "per_source": ("source", "log_auc"),
  "per_checkpoint": ("ckpt_index", "log_auc"),
  "per_ft_step": ("ft_step", "test_acc"),
}


def correlation_table(
  joint: pd.DataFrame,
  *,
  truth: str = "log_auc",
  by: str | None = None,
  n_boot: int = 1000,
  seed: int = 0,
  overrides=None,
) -> pd.DataFrame:
  """One row of `stats.correlate` output per context (and per value of `by`)."""
  keys = CONTEXT + ([by] if by else [])
  table = signs.sign_table(overrides)
  x_all = joint["oriented"].to_numpy(dtype=float)
  y_all = joint[truth].to_numpy(dtype=float)
  c_all = joint["cluster"].to_numpy() if "cluster" in joint else np.arange(len(joint))
  steps_all = joint["step"].to_numpy() if "step" in joint else None
  rows = []
  for key, idx in joint.groupby(keys, sort=True, dropna=False).indices.items():
    x, y, c = x_all[idx], y_all[idx], c_all[idx]
    ok = np.isfinite(x) & np.isfinite(y)
    res = stats.correlate(
      x[ok], y[ok], higher_is_better=True, n_boot=n_boot, seed=seed, clusters=c[ok]
    )
    res = stats.flatten(res)
    res["higher_is_better"] = table.get(key[4], True)  # The scores were oriented already.
    res["n_dropped"] = int((~ok).sum())
    row = dict(zip(keys, key, strict=True))
    row["group"] = "all" if by is None else str(key[-1])
    if by == "ckpt_index" and steps_all is not None:
      row["steps"] = ",".join(str(int(v)) for v in sorted(set(steps_all[idx])))
    row.update(res)
    rows.append(row)
  out = pd.DataFrame(rows)
  if by and not out.empty:
    out = out.drop(columns=[by])
  return out


def all_breakdowns(
  joint_auc: pd.DataFrame,
  joint_ft: pd.DataFrame | None,
  *,
  settings_for_detail=None,
  probes_for_detail=None,
  n_boot: int = 1000,
  seed: int = 0,
  overrides=None,
  keep_seeds: bool = False,
) -> pd.DataFrame:
  """Long table of every breakdown. The finer breakdowns (per source / checkpoint / ft step) are
  computed only for `settings_for_detail` and `probes_for_detail` (all when None) to keep the
  count of correlations in check."""
  keys = tables.model_keys(keep_seeds)
  parts = []
  for name, (by, truth) in BREAKDOWNS.items():
    frame = joint_ft if truth == "test_acc" else joint_auc
    if frame is None or frame.empty:
      continue
    if by is not None and settings_for_detail is not None:
      frame = frame[frame["setting"].isin(settings_for_detail)]
    if by is not None and probes_for_detail is not None:
      frame = frame[frame["probe"].isin(probes_for_detail)]
    if by is not None and by not in frame.columns:
      continue
    if by in (None, "ft_step"):  # Pooled over sources: the shared initialisation counts once.
      frame = dependence.merge_shared_init(frame, keys)
    frame = frame.assign(cluster=dependence.cluster_labels(frame, keep_seeds=keep_seeds))
    t = correlation_table(frame, truth=truth, by=by, n_boot=n_boot, seed=seed, overrides=overrides)
    t.insert(0, "breakdown", name)
    parts.append(t)
  return pd.concat(parts, ignore_index=True) if parts else pd.DataFrame()

"""Ground truth from fine-tune curves: the thesis' log-AUC, plus final and best accuracy.

A fine-tune curve is the test accuracy at the log-spaced fine-tune checkpoints (0, 1, 3, 10, ...
batches). The thesis integrates it with trapezoids over the checkpoint *index* (equal weight per
log step); dividing by the number of intervals K−1 makes it read as a mean accuracy.
"""

import numpy as np
import pandas as pd

MODEL_KEYS = ("source", "arch", "seed", "step")
SCRATCH = "scratch"
NON_SOURCES = (SCRATCH, "random_init")  # Fine-tune baselines, not pre-training sources.


def log_auc(curve) -> float | np.ndarray:
  """Trapezoids of accuracy over the checkpoint index divided by (K − 1); over the last axis."""
  a = np.asarray(curve, dtype=float)
  if a.ndim == 0 or a.shape[-1] < 2:
    raise ValueError(f"log_auc needs at least 2 checkpoints on the last axis, got shape {a.shape}")
  if not np.all(np.isfinite(a)):
    raise ValueError("log_auc: curve contains NaN or Inf")
  k = a.shape[-1]
  area = (a[..., 1:] + a[..., :-1]).sum(axis=-1) / 2.0
  out = area / (k - 1)
  return float(out) if np.ndim(out) == 0 else out


def setting_label(mode, frozen_layers) -> str:
  """One name per transfer setting: "full", "head", "last_block", "frozen=2", ..."""
  mode = str(mode)
  if mode.startswith("frozen"):
    if frozen_layers is not None and not pd.isna(frozen_layers):
      return f"frozen={int(frozen_layers)}"
    if "=" in mode:
      return f"frozen={int(mode.split('=', 1)[1])}"
    raise ValueError(f"transfer mode {mode!r} needs a number of frozen layers")
  if frozen_layers is not None and not pd.isna(frozen_layers) and int(frozen_layers) > 0:
    return f"{mode}+frozen={int(frozen_layers)}"  # Keep distinct runs apart, whatever the mode.
  return mode


def frozen_count(setting: str) -> float:
  """Frozen layers for the gradual-transfer axis: full = 0 (l_c = 0), frozen=l = l, else NaN."""
  if setting == "full":
    return 0.0
  if setting.startswith("frozen="):
    return float(setting.split("=", 1)[1])
  return float("nan")


def checked_copy(table: pd.DataFrame, name: str, required, defaults: dict) -> pd.DataFrame:
  """A copy of the `name` table, which must hold the `required` columns, with each column of
  `defaults` it lacks added at its default value."""
  missing = sorted(set(required) - set(table.columns))
  if missing:
    raise ValueError(f"{name} table lacks columns {missing}")
  df = table.copy()
  for column, value in defaults.items():
    if column not in df:
      df[column] = value
  return df


def normalise_finetune(finetune: pd.DataFrame) -> pd.DataFrame:
  """Checks columns and adds `setting` (transfer-setting label)."""
  required = {"source", "seed", "step", "target", "mode", "ft_step", "test_acc"}
  defaults = {"arch": "-", "frozen_layers": np.nan, "ft_seed": 0}
  df = checked_copy(finetune, "finetune", required, defaults)
  df["setting"] = [
    setting_label(m, f) for m, f in zip(df["mode"], df["frozen_layers"], strict=True)
  ]
  return df


def curves(finetune: pd.DataFrame) -> pd.DataFrame:
  """Test accuracy per (model, target, setting, ft_step), averaged over fine-tune seeds."""
  df = normalise_finetune(finetune)
  keys = [*MODEL_KEYS, "target", "setting", "ft_step"]
  out = (
    df.groupby(keys, dropna=False)
    .agg(test_acc=("test_acc", "mean"), n_ft_seeds=("ft_seed", "nunique"))
    .reset_index()
  )
  return out.sort_values(keys, kind="stable").reset_index(drop=True)


def ground_truth(finetune: pd.DataFrame) -> pd.DataFrame:
  """One row per (source, arch, seed, step, target, setting): log_auc, final_acc, best_acc.

  Curves are first averaged over fine-tune seeds. `complete` says whether the curve has every
  fine-tune step seen for its (target, setting); an incomplete log-AUC is not comparable.
  """
  cur = curves(finetune)
  schedule = cur.groupby(["target", "setting"])["ft_step"].agg(lambda s: len(set(s)))
  rows = []
  for key, grp in cur.groupby([*MODEL_KEYS, "target", "setting"], sort=True, dropna=False):
    acc = grp.sort_values("ft_step")["test_acc"].to_numpy(dtype=float)
    full = schedule.loc[(key[4], key[5])]
    rows.append(
      dict(
        zip([*MODEL_KEYS, "target", "setting"], key, strict=True),
        log_auc=log_auc(acc) if acc.size >= 2 else float("nan"),
        final_acc=float(acc[-1]),
        best_acc=float(acc.max()),
        n_points=int(acc.size),
        n_ft_seeds=int(grp["n_ft_seeds"].min()),
        complete=bool(acc.size == full and acc.size >= 2),
      )
    )
  out = pd.DataFrame(rows)
  if out.empty:
    return out
  out["frozen"] = out["setting"].map(frozen_count)
  return out


def average_seeds(df: pd.DataFrame, values: list[str], keys: list[str]) -> pd.DataFrame:
  """Mean (and std, count) of `values` over `seed` within each group of `keys`."""
  g = df.groupby(keys, dropna=False)
  out = g[values].mean()
  out = out.join(g[values].std(ddof=1).add_suffix("_std"))
  out["n_seeds"] = g["seed"].nunique()
  return out.reset_index()

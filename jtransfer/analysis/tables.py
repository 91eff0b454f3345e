"""Joins stored scores with the ground truth into one row per (model, target, setting, probe,
layer, score): the frame every breakdown, selection and figure works on."""

from collections.abc import Mapping

import numpy as np
import pandas as pd

from jtransfer.analysis import signs
from jtransfer.analysis import truth as gt_lib

# Tap orders of the project's models; unknown layers keep their order of first appearance.
# Input-to-output order of every tap name the registered models use (CNN, VGG, ResNet, audio).
_KNOWN_LAYER_ORDER = (
  "input",
  "stem",
  *(f"{kind}{i}" for i in range(1, 6) for kind in ("conv", "pool")),
  *(f"block{i}" for i in range(1, 9)),
  *(f"stage{i}" for i in range(1, 5)),
  "pool",
  "gru",
  "embedding",
  "fc1",
  "fc6",
  "fc7",
  "logits",
)


def layer_order(layers) -> list[str]:
  seen = list(dict.fromkeys(str(x) for x in layers))
  known = [x for x in _KNOWN_LAYER_ORDER if x in seen]
  return known + [x for x in seen if x not in known]


def model_keys(keep_seeds: bool) -> list[str]:
  return ["source", "arch", "seed", "step"] if keep_seeds else ["source", "arch", "step"]


def prepare_scores(
  scores: pd.DataFrame, *, overrides: Mapping[str, bool] | None = None
) -> pd.DataFrame:
  """Checks the scores table, drops non-finite values, spreads layer-less baselines over every
  layer (and probe-less ones over every probe), derives `checkpoint_index` when it is not stored,
  and adds `oriented` (lower-is-better scores negated)."""
  required = {"source", "seed", "step", "target", "layer", "score", "value"}
  missing = sorted(required - set(scores.columns))
  if missing:
    raise ValueError(f"scores table lacks columns {missing}")
  df = scores.copy()
  if "arch" not in df:
    df["arch"] = "-"
  if "probe" not in df:
    df["probe"] = "train"
  df["layer"] = df["layer"].astype(str)
  df["probe"] = df["probe"].astype(str)
  df["value"] = pd.to_numeric(df["value"], errors="coerce").astype(float)
  finite = np.isfinite(df["value"].to_numpy())
  dropped = int((~finite).sum())
  df = df[finite]

  features = df[~df["score"].isin(signs.BASELINES)]
  feature_layers = sorted(set(features["layer"]))
  feature_probes = sorted(set(features["probe"]))
  parts = []
  for _, grp in df.groupby("score", sort=False):
    # A baseline stored once per model (layer "" or "-") applies to every layer and probe.
    if feature_layers and not set(grp["layer"]) & set(feature_layers):
      grp = grp.drop(columns="layer").merge(pd.DataFrame({"layer": feature_layers}), how="cross")
    if feature_probes and not set(grp["probe"]) & set(feature_probes):
      grp = grp.drop(columns="probe").merge(pd.DataFrame({"probe": feature_probes}), how="cross")
    parts.append(grp)
  df = pd.concat(parts, ignore_index=True) if parts else df

  if "checkpoint_index" not in set(df["score"]) and not df.empty:
    # Pre-training length as a rank: the index of `step` among the stored steps of its source.
    base = df.drop_duplicates(["source", "arch", "seed", "step", "target", "probe", "layer"])
    base = base.drop(columns=["score", "value"]).copy()
    base["value"] = base.groupby(["source", "arch"])["step"].rank(method="dense") - 1.0
    base["score"] = "checkpoint_index"
    df = pd.concat([df, base], ignore_index=True)
  out = signs.orient(df, overrides)
  out.attrs["dropped_non_finite"] = dropped
  return out


def joint(
  scores: pd.DataFrame, truth: pd.DataFrame, *, keep_seeds: bool, truth_cols: list[str]
) -> pd.DataFrame:
  """Inner join of (seed-averaged unless keep_seeds) oriented scores and ground truth."""
  keys = model_keys(keep_seeds)
  s = (
    scores.groupby([*keys, "target", "probe", "layer", "score"], dropna=False)[
      ["value", "oriented"]
    ]
    .mean()
    .reset_index()
  )
  extra = [c for c in ("ft_step",) if c in truth.columns]
  t = truth.groupby([*keys, "target", "setting", *extra], dropna=False)[truth_cols].mean()
  t = t.reset_index()
  return s.merge(t, on=[*keys, "target"], how="inner")


def ground_truth_tables(finetune: pd.DataFrame) -> tuple[pd.DataFrame, pd.DataFrame]:
  """(per-model ground truth with incomplete curves dropped, per-ft-step curves)."""
  gt = gt_lib.ground_truth(finetune)
  cur = gt_lib.curves(finetune)
  if not gt.empty:
    gt = gt[gt["complete"]].reset_index(drop=True)
  return gt, cur

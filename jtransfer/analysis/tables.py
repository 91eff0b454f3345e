"""Joins stored scores with the ground truth into one row per (model, target, setting, probe,
layer, score): the frame every breakdown, selection and figure works on."""

import json
from collections.abc import Mapping

import numpy as np
import pandas as pd

from jtransfer.analysis import signs
from jtransfer.analysis import truth as gt_lib
from jtransfer.store import results


def model_keys(keep_seeds: bool) -> list[str]:
  return ["source", "arch", "seed", "step"] if keep_seeds else ["source", "arch", "step"]


LAYERLESS = results.LAYERLESS


def spread_layerless(df: pd.DataFrame) -> pd.DataFrame:
  """Copies every row stored without a layer onto every real layer, and every baseline row of
  a probe-less score onto every probe; the layer-less rows themselves are then dropped.

  A score keeps its own rows where it has any at a real layer (a layer-less copy never
  overwrites a measured value).
  """
  layerless = df["layer"].isin(LAYERLESS)
  real_layers = sorted(set(df.loc[~layerless, "layer"]))
  if not real_layers or not layerless.any():
    out = df
  else:
    spread = (
      df[layerless].drop(columns="layer").merge(pd.DataFrame({"layer": real_layers}), how="cross")
    )
    out = pd.concat([df[~layerless], spread], ignore_index=True)
    key = ["source", "arch", "seed", "step", "target", "probe", "layer", "score"]
    out = out.drop_duplicates(key, keep="first")
  probes = sorted(set(out.loc[~out["score"].isin(signs.BASELINES), "probe"]))
  parts = []
  for _, grp in out.groupby("score", sort=False):
    if probes and not set(grp["probe"]) & set(probes):
      grp = grp.drop(columns="probe").merge(pd.DataFrame({"probe": probes}), how="cross")
    parts.append(grp)
  return pd.concat(parts, ignore_index=True) if parts else out


def prepare_scores(
  scores: pd.DataFrame, *, overrides: Mapping[str, bool] | None = None
) -> pd.DataFrame:
  """Checks the scores table, drops non-finite values, spreads layer-less scores (baselines,
  LEEP, NCE; layer "-") over every layer (and probe-less baselines over every probe), derives
  `checkpoint_index` (rank of the step within its run) when it is not stored, and adds
  `oriented` (lower-is-better scores negated)."""
  required = {"source", "seed", "step", "target", "layer", "score", "value"}
  df = gt_lib.checked_copy(scores, "scores", required, {"arch": "-", "probe": "train"})
  df["layer"] = df["layer"].astype(str)
  df["probe"] = df["probe"].astype(str)
  df["value"] = pd.to_numeric(df["value"], errors="coerce").astype(float)
  finite = np.isfinite(df["value"].to_numpy())
  dropped = int((~finite).sum())
  df = df[finite]

  df = spread_layerless(df)
  if "checkpoint_index" not in set(df["score"]) and not df.empty:
    # Schedule position as a rank: the index of `step` among the stored steps of its run.
    base = df.drop_duplicates(["source", "arch", "seed", "step", "target", "probe", "layer"])
    base = base.drop(columns=["score", "value"]).copy()
    base["value"] = base.groupby(["source", "arch", "seed"])["step"].rank(method="dense") - 1.0
    base["score"] = "checkpoint_index"
    df = pd.concat([df, base], ignore_index=True)
  out = signs.orient(df, overrides)
  out.attrs["dropped_non_finite"] = dropped
  return out


def undefined_notes(scores: pd.DataFrame) -> list[str]:
  """One sentence per score stored as undefined in a known regime (`scores.regimes`): how many
  values, at which layers, and why; these values are left out like any non-finite one."""
  if "extra" not in scores:
    return []
  reasons = scores["extra"].map(_stored_error)
  undefined = scores.assign(reason=reasons)[reasons.str.startswith("undefined")]
  out = []
  for name, grp in undefined.groupby("score", sort=True):
    layers = ", ".join(sorted(set(grp["layer"].astype(str))))
    out.append(
      f"{name} is undefined on {len(grp)} stored values (layers {layers}): "
      f"{grp['reason'].iloc[0].removeprefix('undefined: ')}."
    )
  return out


def same_rankings(prepared: pd.DataFrame) -> list[tuple[str, ...]]:
  """Groups of scores that rank the models identically in every (target, probe, layer) where
  both are stored: one ranking under several names (e.g. nc_score is 4.5 × nc_score_eq2), so
  every rank statistic of one is that of the other."""
  ctx = [c for c in ("target", "probe", "layer") if c in prepared]
  model = [c for c in ("source", "arch", "seed", "step") if c in prepared]
  ranks = {}
  for name, grp in prepared.groupby("score", sort=True):
    wide = grp.pivot_table(index=ctx, columns=model, values="oriented", aggfunc="mean")
    ranks[name] = wide.rank(axis=1, method="min")
  names, groups = sorted(ranks), []
  for i, a in enumerate(names):
    if any(a in g for g in groups):
      continue
    group = [a]
    for b in names[i + 1 :]:
      ra, rb = ranks[a].align(ranks[b], join="inner")
      both = ra.notna().to_numpy() & rb.notna().to_numpy()
      if both.sum() >= 2 and np.array_equal(ra.to_numpy()[both], rb.to_numpy()[both]):
        group.append(b)
    if len(group) > 1:
      groups.append(tuple(group))
  return groups


def _stored_error(extra) -> str:
  if isinstance(extra, str):
    try:
      extra = json.loads(extra)
    except ValueError:
      return ""
  return str(extra.get("error") or "") if isinstance(extra, dict) else ""


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
  out = s.merge(t, on=[*keys, "target"], how="inner")
  return out.merge(checkpoint_positions(scores, keys), on=keys, how="left")


def checkpoint_positions(scores: pd.DataFrame, keys: list[str]) -> pd.DataFrame:
  """`ckpt_index` per model: the schedule position (the checkpoint_index score, stored or
  derived), the axis on which checkpoints of different sources line up; their raw steps differ
  when the sources' epochs have different lengths."""
  ci = scores[scores["score"] == "checkpoint_index"]
  if ci.empty:
    raise ValueError("no checkpoint_index rows: call prepare_scores first")
  pos = ci.groupby(keys, dropna=False)["value"].mean().round().astype(int)
  return pos.rename("ckpt_index").reset_index()


def ground_truth_tables(finetune: pd.DataFrame) -> tuple[pd.DataFrame, pd.DataFrame]:
  """(per-model ground truth with incomplete curves dropped, per-ft-step curves)."""
  gt = gt_lib.ground_truth(finetune)
  cur = gt_lib.curves(finetune)
  if not gt.empty:
    gt = gt[gt["complete"]].reset_index(drop=True)
  return gt, cur

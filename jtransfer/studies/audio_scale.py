"""The audio scale study: transfer vs the scale of the pre-training data (number of classes and
samples per class).

The audio scale/ontology study (`../shared/papers/audio-transfer-ontology-scale-abstract.txt`)
asks how transfer changes with the number of source classes and of samples per class. Given a
`ladder` {source name: (num_classes, samples_per_class)}, `scale_table` reads the results store
and returns, per source, the fine-tune log-AUC (seed mean and std, the thesis' ground truth) of
the source's last pre-training checkpoint and the same checkpoints' scores at one layer;
`plot_scale` draws two figures, transfer vs classes (the sources at the largest sample count)
and transfer vs samples per class (the sources with the most classes), with one panel per score
beside the log-AUC panel, so a score that tracks transfer shows the same shape.

Sources outside the ladder (e.g. another ontology, speaker ID) are listed by `scale_table` with
NaN coordinates and left out of the plots. `report(workdir, tables)`: this project's study
(configs/audio_scale.py): its `LADDER` of FSDD sources, `TARGET`, `PLOT_SCORES` at `PLOT_LAYER`.
"""

from __future__ import annotations

import pathlib
from collections.abc import Mapping, Sequence

import numpy as np
import pandas as pd

from jtransfer.analysis import report as report_lib
from jtransfer.analysis import signs, truth
from jtransfer.data import audio_tasks

TARGET = "fsdd_digit_spk45"
TOP = audio_tasks.SAMPLE_LADDER[-1]  # 180: every train clip of a digit of speakers 0-3
# source -> (number of classes, train samples per class)
LADDER = {
  **{audio_tasks.class_ladder_name(k): (k, TOP) for k in audio_tasks.CLASS_LADDER},
  **{audio_tasks.sample_ladder_name(n): (10, n) for n in audio_tasks.SAMPLE_LADDER if n != TOP},
}
ONTOLOGY = ("fsdd_speaker_spk0123",)  # the same clips labelled by speaker: off the ladders
PLOT_SCORES = ("nc_score", "logme", "leep")
PLOT_LAYER = "pool"


def scale_table(
  scores: pd.DataFrame,
  finetune: pd.DataFrame,
  *,
  ladder: Mapping[str, tuple[int, int]],
  target: str,
  layer: str,
  score_names: Sequence[str],
  setting: str = "full",
  probe: str = "train",
) -> pd.DataFrame:
  """One row per source: num_classes, per_class, log_auc (+ _std, n_seeds), each score (+ _std).

  Only each (source, seed)'s last pre-training step is used (the finished model). Layer-less
  scores (LEEP, NCE: layer "-") are taken whatever `layer` is.
  """
  gt = truth.ground_truth(finetune)
  if gt.empty:
    raise ValueError("the finetune table has no curves")
  gt = gt[(gt["target"] == target) & (gt["setting"] == setting)]
  gt = gt[~gt["source"].isin(truth.NON_SOURCES)]
  if gt.empty:
    raise ValueError(f"no fine-tune curves for target {target!r}, setting {setting!r}")
  last = gt.groupby(["source", "seed"])["step"].transform("max")
  gt = gt[gt["step"] == last]
  out = truth.average_seeds(gt, ["log_auc", "final_acc"], ["source"])

  sc = scores[
    (scores["target"] == target)
    & (scores["probe"] == probe)
    & (scores["score"].isin(score_names))
    & (scores["layer"].isin([layer, "-"]))
  ]
  sc = sc.merge(gt[["source", "seed", "step"]], on=["source", "seed", "step"])
  if not sc.empty:
    g = sc.groupby(["source", "score"])["value"]
    wide = g.mean().unstack("score")
    wide = wide.join(g.std(ddof=1).unstack("score").add_suffix("_std"))
    out = out.merge(wide.reset_index(), on="source", how="left")
  out["num_classes"] = [ladder.get(s, (np.nan, np.nan))[0] for s in out["source"]]
  out["per_class"] = [ladder.get(s, (np.nan, np.nan))[1] for s in out["source"]]
  return out.sort_values(["num_classes", "per_class", "source"]).reset_index(drop=True)


def _axis_rows(table: pd.DataFrame, which: str) -> tuple[pd.DataFrame, str]:
  t = table.dropna(subset=["num_classes", "per_class"])
  if which == "classes":
    return t[t["per_class"] == t["per_class"].max()].sort_values("num_classes"), "num_classes"
  return t[t["num_classes"] == t["num_classes"].max()].sort_values("per_class"), "per_class"


def plot_scale(
  table: pd.DataFrame,
  out_dir: str | pathlib.Path,
  *,
  score_names: Sequence[str],
  title: str = "",
) -> list[pathlib.Path]:
  """`scale_classes.png` and `scale_samples.png` (+ PDF) in `out_dir` from `scale_table`."""
  import matplotlib  # noqa: PLC0415

  matplotlib.use("Agg")
  import matplotlib.pyplot as plt  # noqa: PLC0415

  out_dir = pathlib.Path(out_dir)
  out_dir.mkdir(parents=True, exist_ok=True)
  sign = signs.sign_table()
  names = [n for n in score_names if n in table.columns]
  paths = []
  for which, xlabel in (("classes", "source classes"), ("samples", "samples per class")):
    rows, col = _axis_rows(table, which)
    if len(rows) < 2:
      continue  # a ladder needs at least two rungs
    panels = [("log_auc", "fine-tune log-AUC")] + [
      (n, f"{n} ({'↑' if sign.get(n, True) else '↓'} better)") for n in names
    ]
    fig, axes = plt.subplots(1, len(panels), figsize=(3.4 * len(panels), 3.0), squeeze=False)
    x = rows[col].to_numpy(float)
    for ax, (name, label) in zip(axes[0], panels, strict=True):
      y = rows[name].to_numpy(float)
      err = rows[f"{name}_std"].to_numpy(float) if f"{name}_std" in rows else None
      ax.errorbar(x, y, yerr=None if err is None else np.nan_to_num(err), marker="o", capsize=3)
      ax.set_xscale("log")
      ax.set_xticks(x, [f"{int(v)}" for v in x])
      ax.minorticks_off()
      ax.set_xlabel(xlabel)
      ax.set_title(label, fontsize=9)
      ax.grid(alpha=0.3)
    fig.suptitle(f"{title} transfer vs {xlabel}".strip(), fontsize=10)
    fig.tight_layout()
    for ext in ("png", "pdf"):
      path = out_dir / f"scale_{which}.{ext}"
      fig.savefig(path, dpi=120)
      if ext == "png":
        paths.append(path)
    plt.close(fig)
  return paths


def run(
  workdir: str | pathlib.Path,
  *,
  ladder: Mapping[str, tuple[int, int]],
  target: str,
  layer: str,
  score_names: Sequence[str],
  setting: str = "full",
) -> tuple[pd.DataFrame, list[pathlib.Path]]:
  """Reads `<workdir>`'s store, writes `scale.csv` and `figures/scale_*.png`."""
  from jtransfer.store import results  # noqa: PLC0415

  workdir = pathlib.Path(workdir)
  return write_scale(
    workdir,
    results.load(workdir, "scores"),
    results.load(workdir, "finetune"),
    ladder=ladder,
    target=target,
    layer=layer,
    score_names=score_names,
    setting=setting,
  )


def write_scale(
  workdir: pathlib.Path,
  scores: pd.DataFrame,
  finetune: pd.DataFrame,
  *,
  ladder: Mapping[str, tuple[int, int]],
  target: str,
  layer: str,
  score_names: Sequence[str],
  setting: str = "full",
) -> tuple[pd.DataFrame, list[pathlib.Path]]:
  """`run` on store tables already read."""
  table = scale_table(
    scores,
    finetune,
    ladder=ladder,
    target=target,
    layer=layer,
    score_names=score_names,
    setting=setting,
  )
  table.to_csv(workdir / "scale.csv", index=False)
  paths = plot_scale(table, workdir / "figures", score_names=score_names, title=target)
  return table, paths


def report(workdir, tables) -> report_lib.Part:
  """scale.csv and the two scale figures of this project's study (configs/audio_scale.py)."""
  workdir = pathlib.Path(workdir)
  s = tables.store
  _, figures = write_scale(
    workdir, s["scores"], s["finetune"], ladder=LADDER, target=TARGET, layer=PLOT_LAYER,
    score_names=PLOT_SCORES,
  )  # fmt: skip
  return report_lib.Part("audio_scale", files=(workdir / "scale.csv", *figures))

"""The neural-collapse paper's score-vs-performance comparison, with AUROC for binary targets.

The neural-collapse paper (`../shared/papers/neural-collapse-transferability-scores.txt`)
measures a fine-tuned model on its binary target (COVID-19 from coughs) by the area under the
ROC curve of the positive-class probability, and compares NC score, LEEP and LogME by the
Pearson coefficient between score and performance (its figures 2-3 quote |r|), for head-only and
full fine-tuning.

- `auroc`, `positive_probability`: from `jtransfer.metrics` (the fine-tune job stores a binary
  target's AUROC in its curve rows, `test_auroc`, computed from the same eval pass).
- `compare(scores, performance, ...)`: Pearson / Spearman of every (score, layer, mode) with a
  performance column over models (seeds averaged), oriented by the score's sign convention.
- `nc_comparison(workdir, ...)`: the whole comparison as `<workdir>/nc_comparison.md` + CSV:
  final accuracy for every target, final AUROC for the targets whose rows carry it; when the
  fine-tune rows carry a validation split (`val_acc`), also the paper's protocol: each unit's
  checkpoint selected on validation data (`selected_rows`: best `val_acc`, or `val_auroc` for
  the AUROC comparison), its TEST metric correlated. Column `checkpoint`: "final" or
  "val_selected".
"""

from __future__ import annotations

import os
import pathlib
from collections.abc import Mapping, Sequence

import numpy as np
import pandas as pd

from jtransfer.analysis import signs
from jtransfer.analysis.stats import correlate
from jtransfer.metrics import auroc, positive_probability

__all__ = [
  "NC_SCORES",
  "auroc",
  "compare",
  "final_rows",
  "nc_comparison",
  "positive_probability",
  "selected_rows",
]

NC_SCORES = ("nc_score", "leep", "logme")
_UNIT = ("source", "arch", "seed", "step", "mode", "frozen_layers", "ft_seed")


# -- score vs performance -------------------------------------------------------------------


def compare(
  scores: pd.DataFrame,
  performance: pd.DataFrame,
  *,
  metric: str,
  score_names: Sequence[str] = NC_SCORES,
  probe: str = "train",
  n_boot: int = 200,
  embedding: Mapping[str, str] | None = None,
) -> pd.DataFrame:
  """One row per (target, mode, layer, score): Pearson r (and |r|), Spearman, n.

  `scores`: the scores table; `performance`: one row per fine-tuned unit with `metric` (e.g.
  the final `test_acc`, or `test_auroc`). Seeds (pre-train and fine-tune) are averaged first;
  layer-less scores (LEEP, layer "-") are compared once. Coefficients are oriented by the
  score's sign ("lower is better" scores are negated), so r > 0 means the score ranks models as
  fine-tuning does; `abs_pearson` is the NC paper's |r|. `embedding` {arch: layer} adds a
  layer "embedding" made of each architecture's own layer (models of several architectures
  have no common tap but the classifier's input).
  """
  sign = signs.sign_table()
  s = scores[(scores["score"].isin(score_names)) & (scores["probe"] == probe)]
  if embedding:
    emb = s[[embedding.get(a) == layer for a, layer in zip(s["arch"], s["layer"], strict=True)]]
    s = pd.concat([s, emb.assign(layer="embedding")], ignore_index=True)
  s = s[np.isfinite(s["value"].astype(float))]
  s = s.groupby(["source", "arch", "step", "target", "layer", "score"], as_index=False)[
    "value"
  ].mean()
  perf = performance[~performance["source"].isin(("scratch", "random_init"))]
  perf = perf.groupby(["source", "arch", "step", "target", "mode"], as_index=False)[metric].mean()
  joint = s.merge(perf, on=["source", "arch", "step", "target"])
  out = []
  for (target, mode, layer, name), g in joint.groupby(["target", "mode", "layer", "score"]):
    r = correlate(
      g["value"].to_numpy(float),
      g[metric].to_numpy(float),
      higher_is_better=sign.get(name, True),
      n_boot=n_boot,
    )
    out.append(
      dict(
        target=target, mode=mode, layer=layer, score=name, metric=metric, n=r["n"],
        pearson=r["pearson"], abs_pearson=abs(r["pearson"]), pearson_p=r.get("pearson_p"),
        spearman=r["spearman"],
        flag=r["flag"],
      )
    )  # fmt: skip
  return pd.DataFrame(out)


def final_rows(finetune: pd.DataFrame) -> pd.DataFrame:
  """The fine-tune table's last evaluated step per unit (`test_acc`, `test_auroc`, ...)."""
  last = finetune.groupby(list(_UNIT) + ["target"])["ft_step"].transform("max")
  return finetune[finetune["ft_step"] == last]


def selected_rows(finetune: pd.DataFrame, *, by: str = "val_acc") -> pd.DataFrame:
  """Per unit, the row of the evaluated step with the highest validation metric `by` (the NC
  paper's checkpoint selection); the earliest such step on ties."""
  if by not in finetune.columns:
    raise ValueError(f"the finetune rows have no {by!r} column")
  missing = finetune[by].isna()
  if missing.any():
    units = finetune.loc[missing, list(_UNIT) + ["target"]].drop_duplicates()
    raise ValueError(
      f"{len(units)} fine-tune units lack {by!r} (first: {units.iloc[0].to_dict()}); "
      "fine-tune with val_fraction to select on validation data"
    )
  ordered = finetune.sort_values([*_UNIT, "target", "ft_step"], kind="stable")
  best = ordered.groupby(list(_UNIT) + ["target"], sort=False)[by].idxmax()  # first maximum
  return finetune.loc[best.to_numpy()].reset_index(drop=True)


def nc_comparison(
  workdir: str | os.PathLike,
  *,
  auroc_targets: Sequence[str] | None = None,
  score_names: Sequence[str] = NC_SCORES,
  probe: str = "train",
  n_boot: int = 200,
  embedding: Mapping[str, str] | None = None,
) -> pathlib.Path:
  """`<workdir>/nc_comparison.md` (+ .csv): score vs final accuracy for every target, and vs
  final AUROC for `auroc_targets` (default: every target whose fine-tune rows carry AUROC)."""
  from jtransfer import results  # noqa: PLC0415

  workdir = pathlib.Path(workdir)
  scores = results.load(workdir, "scores")
  finetune = results.load(workdir, "finetune")
  if scores.empty or finetune.empty:
    raise ValueError(f"{workdir}: run the score and fine-tune stages first")
  final = final_rows(finetune)
  has_auroc = final["test_auroc"].notna()
  if auroc_targets is None:
    auroc_targets = sorted(final.loc[has_auroc, "target"].unique())
  kwargs = dict(score_names=score_names, probe=probe, n_boot=n_boot, embedding=embedding)
  with_val = bool(finetune["val_acc"].notna().any()) if "val_acc" in finetune else False
  tables = [compare(scores, final, metric="test_acc", **kwargs).assign(checkpoint="final")]
  if with_val:
    chosen = selected_rows(finetune, by="val_acc")
    tables.append(
      compare(scores, chosen, metric="test_acc", **kwargs).assign(checkpoint="val_selected")
    )
  for target in auroc_targets:
    rows = final[(final["target"] == target) & has_auroc]
    if rows.empty:
      raise ValueError(
        f"no AUROC for target {target!r} in {workdir}: the fine-tune job stores it for "
        "two-class targets only; fine-tune on it first"
      )
    if not (scores["target"] == target).any():
      raise ValueError(f"no scores for target {target!r} in {workdir}: run the score job on it")
    tables.append(compare(scores, rows, metric="test_auroc", **kwargs).assign(checkpoint="final"))
    if with_val:
      chosen = selected_rows(finetune[finetune["target"] == target], by="val_auroc")
      tables.append(
        compare(scores, chosen, metric="test_auroc", **kwargs).assign(checkpoint="val_selected")
      )
  table = pd.concat(tables, ignore_index=True)
  table.to_csv(workdir / "nc_comparison.csv", index=False)
  lines = [
    "# NC score vs LEEP vs LogME (the neural-collapse paper's comparison)",
    "",
    "Pearson r between each score and the fine-tuned performance over the source models",
    "(seeds averaged; oriented so r > 0 means the score ranks models as fine-tuning does;",
    "|r| is what the paper's figures 2-3 quote). `head`: only the new classifier trains;",
    "`full`: every layer trains. Metric: final test accuracy, and AUROC of the positive-class",
    "probability for binary targets. `*`: Pearson p < 0.05; n: models with that layer (a",
    "layer of one architecture only, e.g. `gru`, has fewer; `embedding` covers all).",
    "Checkpoint: `final` = the last fine-tune step; `val_selected` = each model's evaluated",
    "step with the best validation accuracy (AUROC for the AUROC metric), as the paper selects",
    "its checkpoints, measured on the test split.",
    "",
  ]
  for (target, metric, ckpt), g in table.groupby(["target", "metric", "checkpoint"], sort=False):
    lines += [f"## {target}: {metric} ({ckpt} checkpoint)", ""]
    g = g.assign(
      cell=[
        "–" if pd.isna(r) else f"{r:.3f}{'*' if pd.notna(p) and p < 0.05 else ''}"
        for r, p in zip(g["pearson"], g["pearson_p"], strict=True)
      ]
    )
    piv = g.pivot_table(
      index=["score", "layer", "n"], columns="mode", values="cell", aggfunc="first"
    )
    lines.append(_markdown(piv.reset_index()))
    lines.append("")
  path = workdir / "nc_comparison.md"
  path.write_text("\n".join(lines))
  return path


def _markdown(df: pd.DataFrame) -> str:
  cols = [str(c) for c in df.columns]
  fmt = lambda v: f"{v:.3f}" if isinstance(v, float) else str(v)  # noqa: E731
  rows = ["| " + " | ".join(cols) + " |", "|" + "---|" * len(cols)]
  rows += ["| " + " | ".join(fmt(v) for v in r) + " |" for r in df.itertuples(index=False)]
  return "\n".join(rows)

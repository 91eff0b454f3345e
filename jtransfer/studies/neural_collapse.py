"""The neural-collapse paper's score-vs-performance comparison, with AUROC for binary targets.

The neural-collapse paper (`../shared/papers/neural-collapse-transferability-scores.txt`)
measures a fine-tuned model on its binary target (COVID-19 from coughs) by the area under the
ROC curve of the positive-class probability, and compares NC score, LEEP and LogME by the
Pearson coefficient between score and performance (its figures 2-3 quote |r|), for head-only and
full fine-tuning.

`report(workdir, tables)`: this project's comparison (configs/audio_nc.py): AUROC on
`AUROC_TARGETS`, each architecture's `EMBEDDING` layer. `nc_comparison(workdir, ...)`: the whole
comparison as `<workdir>/nc_comparison.md` + CSV:
final accuracy for every target, final AUROC for the targets whose rows carry it; when the
fine-tune rows carry a validation split (`val_acc`), also the paper's protocol: each unit's
checkpoint selected on validation data (`analysis.auroc.selected_rows`: best `val_acc`, or
`val_auroc` for the AUROC comparison), its TEST metric correlated. Column `checkpoint`: "final"
or "val_selected". The statistics are `jtransfer.analysis.auroc`'s.
"""

from __future__ import annotations

import os
import pathlib
from collections.abc import Mapping, Sequence

import pandas as pd

from jtransfer.analysis import report as report_lib
from jtransfer.analysis.auroc import compare, final_rows, selected_rows

NC_SCORES = ("nc_score", "leep", "logme")
AUROC_TARGETS = ("fsdd_zero_vs_rest_spk45",)  # the binary targets of configs/audio_nc.py
# The input of each model's classifier (the paper's layer): fc1 for audio_cnn/crnn, the global
# pool for dcase_cnn.
EMBEDDING = {"audio_cnn": "fc1", "audio_crnn": "fc1", "dcase_cnn": "pool"}

_HEADER = [
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


def _metric_tables(scores, finetune, rows, *, metric, by, with_val, kwargs) -> list[pd.DataFrame]:
  """The comparison with `metric` of the final `rows`, and (with a validation split) of each
  unit's step chosen by `by` among `finetune`."""
  tables = [compare(scores, rows, metric=metric, **kwargs).assign(checkpoint="final")]
  if with_val:
    chosen = selected_rows(finetune, by=by)
    chosen_table = compare(scores, chosen, metric=metric, **kwargs)
    tables.append(chosen_table.assign(checkpoint="val_selected"))
  return tables


def comparison_table(
  scores: pd.DataFrame, finetune: pd.DataFrame, *, auroc_targets, where: str = "", **kwargs
) -> pd.DataFrame:
  """Every (target, metric, checkpoint) comparison in one table (`kwargs`: `compare`'s)."""
  final = final_rows(finetune)
  has_auroc = final["test_auroc"].notna()
  if auroc_targets is None:
    auroc_targets = sorted(final.loc[has_auroc, "target"].unique())
  with_val = bool(finetune["val_acc"].notna().any()) if "val_acc" in finetune else False
  common = dict(with_val=with_val, kwargs=kwargs)
  tables = _metric_tables(scores, finetune, final, metric="test_acc", by="val_acc", **common)
  for target in auroc_targets:
    rows = final[(final["target"] == target) & has_auroc]
    if rows.empty:
      raise ValueError(
        f"no AUROC for target {target!r} in {where}: the fine-tune job stores it for "
        "two-class targets only; fine-tune on it first"
      )
    if not (scores["target"] == target).any():
      raise ValueError(f"no scores for target {target!r} in {where}: run the score job on it")
    ft = finetune[finetune["target"] == target]
    tables += _metric_tables(scores, ft, rows, metric="test_auroc", by="val_auroc", **common)
  return pd.concat(tables, ignore_index=True)


def markdown(table: pd.DataFrame) -> str:
  """nc_comparison.md: a score × layer grid of r per mode for each (target, metric, checkpoint)."""
  lines = list(_HEADER)
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
  return "\n".join(lines)


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
  from jtransfer.store import results  # noqa: PLC0415

  workdir = pathlib.Path(workdir)
  scores = results.load(workdir, "scores")
  finetune = results.load(workdir, "finetune")
  return write_comparison(
    workdir, scores, finetune, auroc_targets=auroc_targets, score_names=score_names,
    probe=probe, n_boot=n_boot, embedding=embedding,
  )  # fmt: skip


def write_comparison(
  workdir: str | os.PathLike,
  scores: pd.DataFrame,
  finetune: pd.DataFrame,
  *,
  auroc_targets: Sequence[str] | None = None,
  score_names: Sequence[str] = NC_SCORES,
  probe: str = "train",
  n_boot: int = 200,
  embedding: Mapping[str, str] | None = None,
) -> pathlib.Path:
  """`nc_comparison` of store tables already read; returns the .md path."""
  workdir = pathlib.Path(workdir)
  if scores.empty or finetune.empty:
    raise ValueError(f"{workdir}: run the score and fine-tune stages first")
  table = comparison_table(
    scores, finetune, auroc_targets=auroc_targets, where=str(workdir),
    score_names=score_names, probe=probe, n_boot=n_boot, embedding=embedding,
  )  # fmt: skip
  table.to_csv(workdir / "nc_comparison.csv", index=False)
  path = workdir / "nc_comparison.md"
  path.write_text(markdown(table))
  return path


def report(workdir, tables) -> report_lib.Part:
  """`nc_comparison.md` / `.csv` of this project's NC study (configs/audio_nc.py)."""
  s = tables.store
  md = write_comparison(
    workdir, s["scores"], s["finetune"], auroc_targets=AUROC_TARGETS, embedding=EMBEDDING
  )
  return report_lib.Part("neural_collapse", files=(md, md.with_suffix(".csv")))


def _markdown(df: pd.DataFrame) -> str:
  cols = [str(c) for c in df.columns]
  fmt = lambda v: f"{v:.3f}" if isinstance(v, float) else str(v)  # noqa: E731
  rows = ["| " + " | ".join(cols) + " |", "|" + "---|" * len(cols)]
  rows += ["| " + " | ".join(fmt(v) for v in r) + " |" for r in df.itertuples(index=False)]
  return "\n".join(rows)

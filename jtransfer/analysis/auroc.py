"""Scores vs a fine-tuned performance metric (accuracy, or AUROC for binary targets).

- `auroc`, `positive_probability`: from `jtransfer.metrics` (the fine-tune job stores a binary
  target's AUROC in its curve rows, `test_auroc`, computed from the same eval pass).
- `compare(scores, performance, ...)`: Pearson / Spearman of every (score, layer, mode) with a
  performance column over models (seeds averaged), oriented by the score's sign convention.
- `final_rows` / `selected_rows`: each fine-tune unit's last evaluated step, or its step with
  the best validation metric.

The neural-collapse paper's comparison built on these is `jtransfer.studies.neural_collapse`.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np
import pandas as pd

from jtransfer.analysis import signs
from jtransfer.analysis.stats import correlate
from jtransfer.metrics import auroc, positive_probability

__all__ = ["auroc", "compare", "final_rows", "positive_probability", "selected_rows"]

_UNIT = ("source", "arch", "seed", "step", "mode", "frozen_layers", "ft_seed")


# -- score vs performance -------------------------------------------------------------------


def compare(
  scores: pd.DataFrame,
  performance: pd.DataFrame,
  *,
  metric: str,
  score_names: Sequence[str],
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

"""Pool-relative scores in the report: the published NCTI and ETran (`registry.POOL`), computed
from their stored per-model terms over the models being ranked.

The pool is every model stored for one (target, probe, layer) — every source, seed and step the
report ranks there — so the values change when models are added or removed, as the published
scores do (each term is min–max normalised over the candidates: `jtransfer.scores.pool`). A
model lacking a term (not stored, or not finite) is left out of that pool; a pool of fewer than
two models gets no value.
"""

import pandas as pd

from jtransfer.scores import registry

CONTEXT = ("target", "probe", "layer")
MODEL = ("source", "arch", "seed", "step")


def pool_scores(prepared: pd.DataFrame) -> pd.DataFrame:
  """Rows of every pool score whose terms are in `prepared` (oriented, as `tables.prepare_scores`
  gives them): same columns, one row per model of each pool."""
  ctx = [c for c in CONTEXT if c in prepared]
  model = [c for c in MODEL if c in prepared]
  parts = []
  for spec in registry.POOL.values():
    terms = prepared[prepared["score"].isin(spec.terms)]
    if not set(spec.terms) <= set(terms["score"]):
      continue
    wide = terms.pivot_table(index=ctx + model, columns="score", values="value", aggfunc="first")
    wide = wide[list(spec.terms)].dropna()
    template = terms[terms["score"] == spec.terms[0]].drop_duplicates(ctx + model)
    template = template.set_index(ctx + model)
    for _, grp in wide.groupby(level=ctx, sort=False):
      if len(grp) < 2:
        continue
      values = spec.fn({t: grp[t].to_numpy() for t in spec.terms})
      rows = template.loc[grp.index].reset_index()
      rows["score"] = spec.name
      rows["value"] = values
      rows["oriented"] = values if spec.higher_is_better else -values
      if "extra" in rows:
        rows["extra"] = None
      parts.append(rows[list(prepared.columns)])
  return pd.concat(parts, ignore_index=True) if parts else prepared.iloc[0:0]


def note(pooled: pd.DataFrame) -> list[str]:
  """One sentence on the pool-relative scores the report shows."""
  if pooled.empty:
    return []
  names = ", ".join(sorted(set(pooled["score"])))
  return [
    f"{names}: pool-relative (the published combination of min–max normalised terms), "
    "computed over the models stored for each target, probe and layer; adding or removing a "
    "model changes every value."
  ]

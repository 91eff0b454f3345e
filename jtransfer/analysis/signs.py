"""Score sign convention: which direction of a score means "transfers better".

Every sign comes from the score registry (`jtransfer.scores.registry.signs`: the registered
scores and the checkpoint baselines); callers can override any entry or add their own scores.
"""

from collections.abc import Mapping

import numpy as np
import pandas as pd

from jtransfer.scores import registry

# The reference scores every score is compared with: pre-training length, parameter count (the
# checkpoint baselines) and kNN accuracy on the probe (a registered score).
BASELINES = ("checkpoint_index", "knn_accuracy", "param_count")


def sign_table(overrides: Mapping[str, bool] | None = None) -> dict[str, bool]:
  """name -> higher_is_better: the registry's signs, then `overrides` (last wins)."""
  return {**registry.signs(), **(overrides or {})}


def higher_is_better(name: str, overrides: Mapping[str, bool] | None = None) -> bool:
  table = sign_table(overrides)
  if name not in table:
    raise ValueError(
      f"unknown score {name!r}: its sign convention is not known; pass "
      f"higher_is_better={{{name!r}: True|False}}. Known: {sorted(table)}"
    )
  return table[name]


def orient(scores: pd.DataFrame, overrides: Mapping[str, bool] | None = None) -> pd.DataFrame:
  """Adds `oriented` = value for higher-is-better scores, -value for lower-is-better ones."""
  table = sign_table(overrides)
  unknown = sorted(set(scores["score"]) - set(table))
  if unknown:
    raise ValueError(
      f"unknown score(s) {unknown}: sign convention not known; pass higher_is_better overrides. "
      f"Known: {sorted(table)}"
    )
  sign = scores["score"].map(lambda s: 1.0 if table[s] else -1.0).astype(float)
  out = scores.copy()
  out["oriented"] = np.asarray(out["value"], dtype=float) * sign.to_numpy()
  return out

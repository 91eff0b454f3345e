"""Score sign convention: which direction of a score means "transfers better".

The score registry (`jtransfer.scores.registry.REGISTRY`) is the source of truth; a small fallback
table keeps the analysis usable (and testable) when the registry cannot be imported, and callers
can override any entry.
"""

from collections.abc import Mapping

import numpy as np
import pandas as pd

# Used only when the registry is not importable. Baselines are ordinary score names.
FALLBACK_HIGHER_IS_BETTER = {
  "two_nn": False,
  "sum_of_squares": False,
  "nc_score": False,
  "nc_score_eq2": False,
  "rsa": True,
  "logme": True,
  "h_score": True,
  "h_score_shrinkage": True,
  "transrate": True,
  "gbc": True,
  "knn_accuracy": True,
  "leep": True,
  "nce": True,
  "checkpoint_index": True,
  "param_count": True,
}

BASELINES = ("checkpoint_index", "knn_accuracy", "param_count")


def _registry_signs() -> dict[str, bool]:
  try:
    from jtransfer.scores.registry import REGISTRY  # noqa: PLC0415 (optional, built elsewhere)
  except Exception:  # noqa: BLE001 - any import problem means "use the fallback table"
    return {}
  return {name: bool(spec.higher_is_better) for name, spec in REGISTRY.items()}


def sign_table(overrides: Mapping[str, bool] | None = None) -> dict[str, bool]:
  """name -> higher_is_better: fallback, then the registry, then `overrides` (last wins)."""
  table = dict(FALLBACK_HIGHER_IS_BETTER)
  table.update(_registry_signs())
  table.update(overrides or {})
  return table


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

"""Score feature sets stored in `.npz` files and tabulate the results (the score_features job).

An `.npz` holds either one feature set (`features` [N, ...], `labels` [N], optional
`source_probs` [N, C_s]) named after the file, or several named sets as `<set>/features`,
`<set>/labels` (and `<set>/source_probs`). Features with more than two axes are flattened per
sample (activations of a conv layer).
"""

from __future__ import annotations

import csv
import json
import pathlib
from collections.abc import Iterable, Sequence

import numpy as np

from jtransfer.scores import registry, validation
from jtransfer.scores.compute import compute

_KEYS = ("features", "labels", "source_probs")


def load_feature_sets(paths: Iterable[str | pathlib.Path]) -> dict[str, dict[str, np.ndarray]]:
  """{set name: {"features", "labels"[, "source_probs"]}} from one or more `.npz` files."""
  sets: dict[str, dict[str, np.ndarray]] = {}
  for path in map(pathlib.Path, paths):
    if not path.is_file():
      raise ValueError(f"feature file not found: {path}")
    with np.load(path, allow_pickle=False) as data:
      keys = list(data.keys())
      if "features" in keys:
        found = {path.stem: {k: data[k] for k in _KEYS if k in keys}}
      else:
        found = {}
        for key in keys:
          name, _, field = key.rpartition("/")
          if not name or field not in _KEYS:
            raise ValueError(
              f"{path}: unexpected key {key!r}; expected 'features', 'labels', 'source_probs' "
              "or '<set>/features', '<set>/labels', '<set>/source_probs'"
            )
          found.setdefault(name, {})[field] = data[key]
    for name, arrays in found.items():
      if "features" not in arrays:
        raise ValueError(f"{path}: feature set {name!r} has no features")
      if name in sets:
        name = f"{path.stem}/{name}"
      if name in sets:
        raise ValueError(f"feature set {name!r} appears twice")
      feats = np.asarray(arrays["features"])
      arrays["features"] = feats.reshape(feats.shape[0], -1) if feats.ndim > 2 else feats
      sets[name] = arrays
  if not sets:
    raise ValueError("no feature sets given")
  return sets


def missing_inputs(arrays: dict[str, np.ndarray], names: Sequence[str] | None = None) -> dict:
  """{score: the inputs it needs that this feature set lacks} for the requested (or all) scores.

  Names are checked against the registry first (an unknown name fails listing the valid ones).
  """
  names = registry.names(features=True, labels=True, source_probs=True) if names is None else [
    registry.get(n).name for n in validation.check_names(names)
  ]  # fmt: skip
  have = {registry.FEATURES: "features" in arrays, registry.LABELS: "labels" in arrays,
          registry.SOURCE_PROBS: "source_probs" in arrays}  # fmt: skip
  out = {}
  for name in names:
    lacking = [i for i in registry.get(name).inputs if not have[i]]
    if lacking:
      out[name] = lacking
  return out


def skipped_note(set_name: str, missing: dict) -> str:
  """One line saying which scores a set skipped and why."""
  by_reason: dict[str, list[str]] = {}
  for name, lacking in missing.items():
    by_reason.setdefault(" and ".join(lacking), []).append(name)
  why = "; ".join(f"{', '.join(v)} (no {k} in the file)" for k, v in by_reason.items())
  return f"{set_name}: skipped {why}"


def score_feature_sets(
  sets: dict[str, dict[str, np.ndarray]],
  *,
  num_classes: int | None = None,
  names: Sequence[str] | None = None,
  skipped: dict[str, str] | None = None,
) -> dict[str, dict[str, float]]:
  """{set: {score: value}}; `num_classes` defaults to max label + 1 of each set.

  Requested `names` that a set lacks the inputs for are an error naming the set and the input;
  with `names=None` every applicable score is computed and the others are listed, per set, in
  `skipped` (a dict to fill: {set: one-line note}).
  """
  results = {}
  for set_name, arrays in sets.items():
    labels = arrays.get("labels")
    classes = num_classes
    if classes is None and labels is not None:
      classes = validation.infer_num_classes(labels)
    missing = missing_inputs(arrays, names)
    if names is not None and missing:
      name, lacking = next(iter(missing.items()))
      raise ValueError(
        f"feature set {set_name!r}: score {name!r} needs {' and '.join(lacking)}, which the "
        "file does not have"
      )
    wanted = names
    if names is None:
      wanted = [n for n in registry.names(features=True, labels=True, source_probs=True)
                if n not in missing]  # fmt: skip
      if missing and skipped is not None:
        skipped[set_name] = skipped_note(set_name, missing)
    out = compute(
      arrays["features"], labels, num_classes=classes, names=wanted,
      source_probs=arrays.get("source_probs"),
    )  # fmt: skip
    results[set_name] = {name: float(value) for name, value in out.items()}
  return results


def _columns(results: dict[str, dict[str, float]]) -> list[str]:
  present = {name for values in results.values() for name in values}
  return [name for name in registry.REGISTRY if name in present]


def format_table(results: dict[str, dict[str, float]]) -> str:
  """A plain-text table: one row per feature set, one column per score headed `name ↑|↓`."""
  columns = _columns(results)
  header = ["feature set"] + [f"{c} {registry.get(c).sign}" for c in columns]
  rows = [
    [name] + [f"{values[c]:.6g}" if c in values else "-" for c in columns]
    for name, values in results.items()
  ]
  widths = [max(len(r[i]) for r in [header, *rows]) for i in range(len(header))]
  line = lambda r: "  ".join(v.ljust(w) if i == 0 else v.rjust(w) for i, (v, w) in
                             enumerate(zip(r, widths, strict=True)))  # fmt: skip
  legend = "↑ higher is better, ↓ lower is better"
  return "\n".join([line(header), line(["-" * w for w in widths]), *map(line, rows), legend])


def write_outputs(results: dict[str, dict[str, float]], prefix: str | pathlib.Path) -> list[str]:
  """Writes `<prefix>.csv` (long: set, score, value, higher_is_better) and `<prefix>.json`."""
  prefix = pathlib.Path(prefix)
  prefix.parent.mkdir(parents=True, exist_ok=True)
  csv_path, json_path = (
    prefix.with_name(prefix.name + ".csv"),
    prefix.with_name(prefix.name + ".json"),
  )
  with open(csv_path, "w", newline="") as f:
    writer = csv.writer(f)
    writer.writerow(["feature_set", "score", "value", "higher_is_better"])
    for set_name, values in results.items():
      for name, value in values.items():
        writer.writerow([set_name, name, repr(value), registry.get(name).higher_is_better])
  doc = {
    "scores": results,
    "higher_is_better": {c: registry.get(c).higher_is_better for c in _columns(results)},
  }
  json_path.write_text(json.dumps(doc, indent=2))
  return [str(csv_path), str(json_path)]

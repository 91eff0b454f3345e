"""A user's own Flax model, params from an orbax checkpoint -> a zoo entry.

  import_checkpoint(workdir, "ckpts/run1", arch="my_net", source="my_data", num_classes=10,
                    step=None, rename={"encoder": "backbone", "classifier": "head"})

Where the params are read (`find_pytree`):
- a PyTree directory (holds `_METADATA`: `ocp.StandardCheckpointer().save(path, tree)`);
- a `CheckpointManager` step directory `<root>/<step>/` holding one item (`<step>/default/`,
  `<step>/state/`, ...; pass `item` when there are several);
- a `CheckpointManager` root `<root>/`: its step `step`, or its latest complete step.

How the tree maps onto the model (`to_model_trees`), in this order:
1. wrappers are peeled: a tree whose only key is "params", "model" or "state" is replaced by
   its value (what `nnx.state(model)` inside a train state or a linen `{"params": ...}` gives);
2. `rename` maps top-level names to jtransfer's (e.g. {"encoder": "backbone"});
3. the tree must then be the registered model's state: `{"backbone": {<layer>: ...}, "head":
   {...}}` (what `nnx.to_pure_dict(nnx.state(model))` of a `models.base.Model` gives). Leaves the
   model declares as `nnx.Param` become params; the others (batch-norm mean / var) its
   non-parameter state. A params-only tree of a model with batch norm gets fresh statistics
   (mean 0, var 1) and a warning in the entry (`imported_from["warnings"]`). Missing, extra
   or misshapen leaves are one error naming them.
"""

from __future__ import annotations

import os
import pathlib
from collections.abc import Mapping
from typing import Any

import numpy as np

from jtransfer import errors
from jtransfer.importers import zoo_entry
from jtransfer.models import functional
from jtransfer.store import checkpointing, zoo

_WRAPPERS = ("params", "model", "state")


def find_pytree(path: str | os.PathLike, *, step: int | None = None, item: str | None = None):
  """(PyTree directory, step or None) for a PyTree dir, a manager step dir or a manager root."""
  path = pathlib.Path(path).absolute()
  if not path.is_dir():
    raise FileNotFoundError(f"no checkpoint directory at {path}")
  if (path / "_METADATA").is_file():
    return path, step
  steps = sorted(int(p.name) for p in path.iterdir() if p.is_dir() and p.name.isdigit())
  if steps:  # a manager root
    if step is None:
      step = steps[-1]
    elif step not in steps:
      raise errors.UserError(f"{path} has no step {step}; steps: {steps}")
    return find_pytree(path / str(step), step=step, item=item)
  items = sorted(p.name for p in path.iterdir() if (p / "_METADATA").is_file())
  if not items:
    raise errors.UserError(
      f"{path} holds no orbax PyTree (no _METADATA in it or its subdirectories)"
    )
  if item is None:
    if len(items) > 1:
      raise errors.UserError(f"{path} holds several items {items}: pass item=<one of them>")
    item = items[0]
  elif item not in items:
    raise errors.UserError(f"{path} has no item {item!r}; items: {items}")
  if step is None and path.name.isdigit():
    step = int(path.name)
  return path / item, step


def _flat(tree, prefix=()) -> dict[tuple, Any]:
  if isinstance(tree, Mapping):
    out = {}
    for k, v in tree.items():
      out.update(_flat(v, (*prefix, str(k))))
    return out
  return {prefix: tree}


def _unflat(flat: Mapping[tuple, Any]) -> dict:
  out: dict = {}
  for path, v in flat.items():
    d = out
    for p in path[:-1]:
      d = d.setdefault(p, {})
    d[path[-1]] = v
  return out


def to_model_trees(
  tree: Mapping[str, Any],
  *,
  arch: str,
  num_classes: int,
  model_kwargs: Mapping[str, Any] | None = None,
  rename: Mapping[str, str] | None = None,
) -> tuple[dict, dict, list[str]]:
  """(params, rest, warnings) of `tree` for the registered `arch`; see the module docstring."""
  tree = dict(tree)
  while len(tree) == 1 and next(iter(tree)) in _WRAPPERS and "backbone" not in tree:
    tree = dict(tree[next(iter(tree))])
  for old, new in dict(rename or {}).items():
    if old not in tree:
      raise errors.UserError(
        f"rename: the checkpoint has no top-level {old!r}; it has {sorted(tree)}"
      )
    tree[new] = tree.pop(old)
  _, want_p, want_r = functional.abstract_init(
    arch, num_classes=num_classes, **dict(model_kwargs or {})
  )
  got, wp, wr = _flat(tree), _flat(want_p), _flat(want_r)
  name = lambda k: "/".join(k)
  missing = [name(k) for k in wp if k not in got]
  extra = [name(k) for k in got if k not in wp and k not in wr]
  if missing or extra:
    raise errors.UserError(
      f"the checkpoint does not fit {arch}: missing {missing[:5]}, unexpected {extra[:5]} "
      f"(top-level keys {sorted(tree)}; map them with rename, e.g. encoder=backbone)"
    )
  bad = [
    f"{name(k)} {np.shape(got[k])} != {tuple(s.shape)}"
    for k, s in {**wp, **wr}.items()
    if k in got and tuple(np.shape(got[k])) != tuple(s.shape)
  ]
  if bad:
    raise errors.UserError(f"the checkpoint does not fit {arch} with {model_kwargs}: {bad[:5]}")
  for k in (k for k in {**wp, **wr} if k in got):
    a = np.asarray(got[k])
    if not (np.issubdtype(a.dtype, np.floating) or a.dtype.name == "bfloat16"):
      raise errors.UserError(
        f"the checkpoint's {name(k)} has dtype {a.dtype}; weights must be floating point"
      )
    if not np.isfinite(a.astype(np.float32)).all():
      raise errors.UserError(
        f"the checkpoint's {name(k)} {a.shape} holds NaN or Inf: not usable weights"
      )
  params = _unflat({k: np.asarray(got[k], wp[k].dtype) for k in wp})
  warnings = []
  if wr and not any(k in got for k in wr):
    warnings.append("no batch-norm statistics in the checkpoint: fresh ones (mean 0, var 1)")
    rest_flat = {
      k: (np.ones if k[-1] == "var" else np.zeros)(s.shape, s.dtype) for k, s in wr.items()
    }
  else:
    absent = [name(k) for k in wr if k not in got]
    if absent:
      raise errors.UserError(f"the checkpoint has some batch-norm statistics but not {absent[:5]}")
    rest_flat = {k: np.asarray(got[k], wr[k].dtype) for k in wr}
  return params, _unflat(rest_flat), warnings


def import_checkpoint(
  workdir: str | os.PathLike,
  path: str | os.PathLike,
  *,
  arch: str,
  source: str,
  num_classes: int,
  model_kwargs: Mapping[str, Any] | None = None,
  rename: Mapping[str, str] | None = None,
  step: int | None = None,
  item: str | None = None,
  seed: int = 0,
) -> zoo.Entry:
  """Reads one orbax checkpoint of the user's `arch` and writes it as a zoo entry; returns it.

  The zoo step is the manager's step when there is one (so a run's checkpoints keep their
  order), else `step` or 0.
  """
  tree_dir, found_step = find_pytree(path, step=step, item=item)
  tree = checkpointing.restore_pytree(tree_dir)
  params, rest, warnings = to_model_trees(
    tree, arch=arch, num_classes=num_classes, model_kwargs=model_kwargs, rename=rename
  )
  provenance = {
    "format": "orbax",
    "file": str(tree_dir),
    "file_sha256": zoo_entry.file_hash(tree_dir),
    "original_keys": sorted("/".join(k) for k in _flat(tree)),
    "rename": dict(rename or {}),
    "warnings": warnings,
  }
  return zoo_entry.write_imported(
    workdir,
    source=source,
    arch=arch,
    params=params,
    rest=rest,
    model_kwargs=dict(model_kwargs or {}),
    num_classes=num_classes,
    provenance=provenance,
    seed=seed,
    step=found_step if found_step is not None else 0,
  )

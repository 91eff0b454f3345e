"""One imported checkpoint -> one zoo entry that every job reads like a pre-trained one.

  entry = write_imported(workdir, source="imagenet", arch="vgg16", params=params, rest=rest,
                         model_kwargs={...}, num_classes=1000, provenance={...}, seed=0)

It writes what the pre-training job writes for each of its checkpoints, through the zoo
contract (`jtransfer.store.zoo`):
- the checkpoint at `checkpointing.checkpoint_path(workdir, source, arch, seed, step)` (params,
  plus batch-norm statistics under `checkpointing.REST`) holding its `zoo.Entry` record:
  `num_classes`, `model_kwargs` (the score and fine-tune jobs rebuild the model from them),
  `origin=zoo.IMPORTED` and `imported_from` = the provenance (file, file_sha256, original key
  names, and whatever else the importer adds); `index` is None (no pre-training schedule);
- its `checkpoints` row (`entry.index_row`) and done marker (`pretrain`,
  `<source>/<arch>/seed_<k>/step_<s>`) in one transaction.

Writing the same weights again is a no-op (the checkpoint's content hash equals
`checkpointing.tree_hash` of the new tree); different weights under the same (source, arch,
seed, step) are an error (use another seed).
"""

from __future__ import annotations

import hashlib
import json
import os
import pathlib
from collections.abc import Mapping
from typing import Any

from jtransfer.jobs import pretrain
from jtransfer.store import checkpointing, results, zoo
from jtransfer.store import workdir as workdir_files

JOB = pretrain.JOB  # imported entries stand where pre-trained ones stand


def file_hash(path: str | os.PathLike, chunk: int = 1 << 24) -> str:
  """sha256 of a file's bytes (a directory: of its files' relative paths and bytes)."""
  path = pathlib.Path(path)
  h = hashlib.sha256()
  files = sorted(p for p in path.rglob("*") if p.is_file()) if path.is_dir() else [path]
  for f in files:
    if path.is_dir():
      h.update(str(f.relative_to(path)).encode())
    with open(f, "rb") as fh:
      while block := fh.read(chunk):
        h.update(block)
  return h.hexdigest()


def write_imported(
  workdir: str | os.PathLike,
  *,
  source: str,
  arch: str,
  params: Mapping[str, Any],
  model_kwargs: Mapping[str, Any],
  num_classes: int,
  provenance: Mapping[str, Any],
  rest: Mapping[str, Any] | None = None,
  seed: int = 0,
  step: int = 0,
  epoch: float | None = None,
) -> zoo.Entry:
  """Saves one imported model as a zoo entry and registers it; returns the entry."""
  workdir = pathlib.Path(workdir)
  workdir.mkdir(parents=True, exist_ok=True)
  if set(params) != {"backbone", "head"}:
    raise ValueError(f"params must have exactly 'backbone' and 'head', got {sorted(params)}")
  entry = zoo.Entry(
    source=source,
    arch=arch,
    seed=int(seed),
    step=int(step),
    num_classes=int(num_classes),
    model_kwargs=_plain(model_kwargs),
    index=None,
    epoch=epoch,
    origin=zoo.IMPORTED,
    imported_from=_plain(provenance),
  )
  with workdir_files.locked(workdir, "import"):  # never beside a job writing this zoo
    return _write_and_register(workdir, entry, checkpointing.with_rest(params, rest))


def _write_and_register(workdir: pathlib.Path, entry: zoo.Entry, tree) -> zoo.Entry:
  source, arch, seed, step = entry.key
  path = checkpointing.checkpoint_path(workdir, source, arch, seed, step)
  if checkpointing.exists(path):
    if _saved_hash(path) != checkpointing.tree_hash(tree):
      raise FileExistsError(
        f"{path} already holds a different checkpoint of {source}/{arch} seed {seed}; import "
        "under another --seed or --source"
      )
    entry = zoo.read_entry(path)  # the same weights: keep what is there
  else:
    entry = zoo.write_entry(workdir, entry, tree)
  store = results.Store(workdir)
  try:
    store.mark_done(
      JOB, pretrain.done_key(source, arch, seed, step), {"checkpoints": [entry.index_row(workdir)]}
    )
  finally:
    store.close()
  return entry


def _saved_hash(path: pathlib.Path) -> str:
  """The content hash of the checkpoint at `path` (recomputed for one saved without it)."""
  recorded = checkpointing.content_hash(path)
  return recorded if recorded is not None else checkpointing.tree_hash(checkpointing.restore(path))


def _plain(value: Any) -> Any:
  """JSON-comparable form (tuples -> lists), so the returned entry equals the one read back."""
  return json.loads(json.dumps(value, default=str))

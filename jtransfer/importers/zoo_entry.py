"""One imported checkpoint -> one zoo entry that every job reads like a pre-trained one.

  write_imported(workdir, source="imagenet", arch="vgg16", params=params, rest=rest,
                 model_kwargs={...}, num_classes=1000, provenance={...}, seed=0)

What it writes is what the pre-training job writes for each of its checkpoints:
- the checkpoint at `checkpointing.checkpoint_path(workdir, source, arch, seed, step)` (params,
  plus batch-norm statistics under `checkpointing.REST`), its JSON record holding the zoo row,
  `num_classes`, `model_kwargs` and `provenance` (file, content hash, original key names);
- one `checkpoints` row and its done marker (`pretrain`, `<source>/<arch>/seed_<k>/step_<s>`) in
  one transaction, the row's `extra` carrying `num_classes` and `imported: true`;
- a `pretrain` entry in `<workdir>/config.json` with the architecture's `model_kwargs` (the
  score and fine-tune jobs read the hyperparameters from there).

This is the one place that knows that layout; it is meant to be re-pointed at the zoo contract
once that exists. Writing the same entry again with the same content is a no-op; different
content under the same (source, arch, seed, step) is an error (use another seed).
"""

from __future__ import annotations

import hashlib
import json
import os
import pathlib
from collections.abc import Mapping
from typing import Any

import jax
import numpy as np

from jtransfer import checkpointing, results
from jtransfer import workdir as workdir_files
from jtransfer.train import pretrain

JOB = pretrain.JOB  # imported entries stand where pre-trained ones stand


def params_hash(tree: Mapping[str, Any]) -> str:
  """sha256 over every leaf's path, dtype, shape and bytes (order-independent of dict order)."""
  h = hashlib.sha256()
  for path, leaf in sorted(
    ((jax.tree_util.keystr(k), v) for k, v in jax.tree_util.tree_leaves_with_path(tree)),
    key=lambda kv: kv[0],
  ):
    a = np.ascontiguousarray(np.asarray(leaf))
    h.update(f"{path}|{a.dtype.str}|{a.shape}".encode())
    h.update(a.tobytes())
  return h.hexdigest()


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
) -> dict[str, Any]:
  """Saves one imported model as a zoo entry and registers it; returns its record."""
  workdir = pathlib.Path(workdir)
  workdir.mkdir(parents=True, exist_ok=True)
  if set(params) != {"backbone", "head"}:
    raise ValueError(f"params must have exactly 'backbone' and 'head', got {sorted(params)}")
  path = checkpointing.checkpoint_path(workdir, source, arch, seed, step)
  tree = checkpointing.with_rest(params, rest)
  content = params_hash(tree)
  row = dict(
    source=source,
    arch=arch,
    seed=int(seed),
    step=int(step),
    epoch=epoch,
    path=str(path.relative_to(workdir)),
  )
  record = {
    **row,
    "num_classes": int(num_classes),
    "model_kwargs": _plain(model_kwargs),
    "provenance": _plain(provenance),
    "content_sha256": content,
  }
  if checkpointing.exists(path):
    old = checkpointing.read_extra(path)
    if old.get("content_sha256") != content:
      raise FileExistsError(
        f"{path} already holds a different checkpoint of {source}/{arch} seed {seed}; import "
        "under another --seed or --source"
      )
  else:
    checkpointing.save(path, tree, extra=record)
  _record_model_kwargs(workdir, source, arch, record["model_kwargs"], record["provenance"])
  store = results.Store(workdir)
  try:
    extra = {"num_classes": int(num_classes), "imported": True, "content_sha256": content}
    store.mark_done(
      JOB, pretrain.done_key(source, arch, seed, step), {"checkpoints": [dict(row, extra=extra)]}
    )
  finally:
    store.close()
  return record


def _record_model_kwargs(workdir, source, arch, model_kwargs, provenance) -> None:
  """A `pretrain` config entry for (source, arch), unless the same one is already there."""
  path = workdir / "config.json"
  entries = json.loads(path.read_text() or "[]") if path.exists() else []
  for e in entries if isinstance(entries, list) else [entries]:
    c = e.get("config", {})
    if e.get("job") == JOB and c.get("source") == source and c.get("arch") == arch:
      if (c.get("model_kwargs") or {}) == model_kwargs:
        return
  config = {
    "source": source,
    "arch": arch,
    "model_kwargs": model_kwargs,
    "imported_from": provenance.get("file"),
  }
  workdir_files.append_config(workdir, JOB, config)


def _plain(value: Any) -> Any:
  """JSON-comparable form (tuples -> lists), so a reread record equals the written one."""
  return json.loads(json.dumps(value, default=str))

"""Checkpoints: the only module that talks to orbax.

A checkpoint is one directory holding a parameter tree and a small JSON metadata record:

  <path>/params/     orbax PyTree (OCDBT)  {"backbone": {...}, "head": {...}} (pure dicts)
  <path>/meta/       JSON                  whatever `extra` was (step, epoch, metrics, ...)
  <path>/integrity/  JSON                  content hashes of the params' subtrees (see below)

  checkpointing.save(path, params, extra={"step": 300, "epoch": 0.32, "test_acc": 0.97})
  params = checkpointing.restore(path)               # nested dict of NumPy arrays
  backbone = checkpointing.restore_backbone(path)    # only params["backbone"], read partially
  stacked = checkpointing.restore_stacked(paths)     # leaves [len(paths), ...] for jax.vmap
  checkpointing.verify(path)                         # CorruptCheckpointError if damaged

Atomic: orbax writes into `<path>.orbax-checkpoint-tmp-*` and renames it to `<path>` only once
params and metadata are both on disk, so `exists(path)` is true exactly for complete
checkpoints; a save killed half-way leaves only a tmp directory, removed by the next `save` to
the same path.

Integrity: `save` records a content hash of every top-level subtree ("backbone", "head",
`REST`; sha256 over each leaf's key path, dtype, shape and bytes in sorted key order) beside
the metadata, and every restore recomputes the hash of what it read and compares:
a mismatch (bytes flipped on disk, a truncated file that still decodes) raises
`CorruptCheckpointError` ("checkpoint <path> is corrupt: ..."), never hands on wrong numbers.
`content_hash(path)` is the checkpoint's recorded digest (one hex string over the subtrees).
Checkpoints written before the hash existed (or saved with arrays sharded over hosts, which no
single process can hash) restore without the check.

Restores return host NumPy arrays (bf16 as `ml_dtypes.bfloat16`), bit-exact, whatever devices
wrote them; placing them on a mesh is the caller's job (`jax.device_put(tree, sharding)`).
Saves take NumPy or JAX arrays; fully addressable JAX arrays are copied to the host first.

Multi-host (tested with two CPU processes under `jax.distributed`):
- Restores are process-local: any process reads any checkpoint on its own, no barrier.
- A save is collective by default: every process calls it with the same path; host (NumPy)
  leaves are written by process 0, arrays sharded over processes by their owners.
- `process_local=True` saves without involving the other processes, from any process (the
  one that trained those params, e.g. one seed of a pre-training spread over processes): same
  files, same content hashes as a single-process save. Its params must be host-addressable.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import logging
import os
import pathlib
import shutil
from collections.abc import Iterator, Mapping, Sequence
from typing import Any

import jax
import numpy as np
import orbax.checkpoint as ocp

from jtransfer import errors

_PARAMS = "params"
REST = "rest"  # top-level key of the non-parameter state (batch-norm statistics), if any
_META = "meta"
_INTEGRITY = "integrity"  # JSON item beside meta: the content hashes (absent in old checkpoints)
_HASH_ALGORITHM = "sha256-leaves-v1"


class CorruptCheckpointError(errors.UserError):
  """A checkpoint whose data cannot be read or does not match its recorded content hash."""


_checkpointers: dict[Any, ocp.Checkpointer] = {}


@contextlib.contextmanager
def _quiet() -> Iterator[None]:
  """Silences orbax's per-save INFO logging (thousands of tiny checkpoints) for one call."""
  logger = logging.getLogger("absl")
  previous = logger.level
  if previous < logging.WARNING:
    logger.setLevel(logging.WARNING)
  try:
    yield
  finally:
    logger.setLevel(previous)


class _ThisProcessWritesHostArrays(ocp.type_handlers.NumpyHandler):
  """orbax's NumpyHandler, except the host arrays are written by this process, not process 0.

  Why a handler: in orbax 0.12 `NumpyHandler._background_serialize` writes only
  `if multihost.process_index() == 0`, whatever `MultiprocessingOptions` say (they steer the
  metadata, the tmp-dir rename, the OCDBT merge and the barriers, which already follow
  `primary_host`); `ArrayHandler` does honour `primary_host`, but refuses a fully addressable
  `jax.Array` once `jax.process_count() > 1`, and a process-local save is exactly that. So a
  process-local checkpointer registers this handler for `np.ndarray`: it builds the same
  tensorstore spec (`type_handlers.get_json_tspec_write`, OCDBT file under `ocdbt.process_<i>`,
  which the finalize step merges into the root) and writes unconditionally. The bytes on disk are
  what process 0 would have written; the content hashes are computed from the same host arrays.
  """

  async def _background_serialize(self, values, infos, args=None):
    args = args or [None] * len(values)
    writes = []
    for value, info, arg in zip(values, infos, args, strict=True):
      await info.await_path_creation()
      tspec = ocp.type_handlers.get_json_tspec_write(
        info,
        use_ocdbt=info.is_ocdbt_checkpoint,
        global_shape=value.shape,
        local_shape=value.shape,
        dtype=value.dtype,
        process_index=jax.process_index() if info.is_ocdbt_checkpoint else None,
        metadata_key=self._metadata_key,
        arg=arg,
      )
      writes.append(self._open_and_write(value, tspec, info.ts_context))
    await asyncio.gather(*writes)


def _checkpointer(process_local: bool) -> ocp.Checkpointer:
  """The collective checkpointer (process 0 writes host arrays), or this process's own one.

  The process-local one makes this process the only active one and its primary host (metadata,
  rename, OCDBT merge, barriers keyed per process so they never wait on the others) and writes
  host arrays with `_ThisProcessWritesHostArrays`. Restores use it too: it reads any checkpoint.
  """
  if process_local and jax.process_count() > 1:
    index = jax.process_index()
    options = ocp.options.MultiprocessingOptions(
      primary_host=index, active_processes={index}, barrier_sync_key_prefix=f"local{index}"
    )
    handlers = ocp.type_handlers
    registry = handlers.create_type_handler_registry(
      (np.ndarray, _ThisProcessWritesHostArrays()),
      (np.number, handlers.ScalarHandler()),
      (int, handlers.ScalarHandler()),
      (float, handlers.ScalarHandler()),
      (jax.Array, handlers.ArrayHandler(primary_host=index, replica_id=None)),
      (str, handlers.StringHandler()),
    )
    cache_key = ("local", index)
  else:
    options = ocp.options.MultiprocessingOptions()
    registry = None
    cache_key = "global"
  if cache_key not in _checkpointers:
    tree_kwargs, composite_kwargs = {}, {}
    if registry is not None:
      tree_kwargs["type_handler_registry"] = registry
      # Item folders created before the writes, not announced by a signal: orbax keys its
      # signals in jax.distributed's key-value store by an operation counter that each process
      # counts on its own, so another process's local save at the same count would announce
      # folders this one has not made yet (FileNotFoundError, seen with two processes).
      composite_kwargs["async_options"] = ocp.options.AsyncOptions(
        create_directories_asynchronously=False
      )
    # Every layer gets the options: item handlers left to the registry default to process 0 as
    # the primary host, and would skip writing metadata on any other process.
    _checkpointers[cache_key] = ocp.Checkpointer(
      ocp.CompositeCheckpointHandler(
        composite_options=ocp.CompositeOptions(multiprocessing_options=options, **composite_kwargs),
        **{
          _PARAMS: ocp.PyTreeCheckpointHandler(multiprocessing_options=options, **tree_kwargs),
          _META: ocp.JsonCheckpointHandler(multiprocessing_options=options),
          _INTEGRITY: ocp.JsonCheckpointHandler(multiprocessing_options=options),
        },
      ),
      multiprocessing_options=options,
    )
  return _checkpointers[cache_key]


def _check_tree(tree: Any, where: str = "params") -> None:
  """Params must be pure nested dicts with string keys and array leaves."""
  if isinstance(tree, Mapping):
    if not tree:
      raise ValueError(f"{where} is an empty dict; orbax cannot save empty subtrees")
    for k, v in tree.items():
      if not isinstance(k, str):
        raise ValueError(f"{where} has a non-string key {k!r}; save pure dicts")
      _check_tree(v, f"{where}[{k!r}]")
  elif not isinstance(tree, np.ndarray | jax.Array | np.generic):
    raise ValueError(
      f"{where} is a {type(tree).__name__}, not an array or dict; save a pure dict "
      "(e.g. nnx.to_pure_dict(nnx.state(model, nnx.Param)))"
    )


def _to_host(x: Any) -> Any:
  if isinstance(x, jax.Array):
    if x.is_fully_addressable:
      return np.asarray(x)
    if x.is_fully_replicated:
      return np.asarray(x.addressable_data(0))
    return x  # sharded over hosts: orbax writes it collectively
  return np.asarray(x)


def _tmp_dirs(path: pathlib.Path) -> list[pathlib.Path]:
  return sorted(path.parent.glob(f"{path.name}{ocp.utils.TMP_DIR_SUFFIX}*"))


def exists(path: str | os.PathLike) -> bool:
  """True when `path` holds a complete checkpoint written by `save`."""
  path = pathlib.Path(path)
  return (
    path.is_dir()
    and not ocp.utils.is_tmp_checkpoint(path)
    and (path / _PARAMS / "_METADATA").is_file()
    and (path / _META / "metadata").is_file()
  )


def save(
  path: str | os.PathLike,
  params: Mapping[str, Any],
  *,
  extra: Mapping[str, Any] | None = None,
  overwrite: bool = False,
  process_local: bool = False,
) -> pathlib.Path:
  """Atomically writes `params` (a pure nested dict of arrays) and the JSON record `extra`.

  An existing complete checkpoint at `path` is a `FileExistsError` unless `overwrite=True`.
  """
  path = pathlib.Path(path).absolute()
  _check_tree(params)
  extra = dict(extra or {})
  if path.exists():
    if not overwrite:
      kind = "checkpoint" if exists(path) else "incomplete/foreign directory"
      raise FileExistsError(f"{kind} already at {path}; pass overwrite=True to replace it")
    shutil.rmtree(path)
  for tmp in _tmp_dirs(path):  # left by a save that was killed half-way
    shutil.rmtree(tmp, ignore_errors=True)
  path.parent.mkdir(parents=True, exist_ok=True)
  host_params = jax.tree.map(_to_host, dict(params))
  if process_local and not all(isinstance(x, np.ndarray) for x in jax.tree.leaves(host_params)):
    raise ValueError(
      f"process-local checkpoint save to {path}: params hold arrays sharded over processes; "
      "save those collectively (every process calls save with the same path)"
    )
  items = {
    _PARAMS: ocp.args.PyTreeSave(host_params),
    _META: ocp.args.JsonSave(_json_safe(extra)),
  }
  if all(isinstance(x, np.ndarray) for x in jax.tree.leaves(host_params)):
    hashes = {k: _digest({k: v}) for k, v in host_params.items()}
    items[_INTEGRITY] = ocp.args.JsonSave({"algorithm": _HASH_ALGORITHM, "subtrees": hashes})
  with _quiet():
    _checkpointer(process_local).save(path, args=ocp.args.Composite(**items))
  return path


def _digest(tree: Mapping[str, Any]) -> str:
  """sha256 over every leaf's key path, dtype, shape and bytes, leaves in sorted key order."""
  h = hashlib.sha256()
  leaves = jax.tree_util.tree_flatten_with_path(tree)[0]
  for key, leaf in sorted(leaves, key=lambda kv: jax.tree_util.keystr(kv[0])):
    a = np.ascontiguousarray(np.asarray(leaf))
    h.update(f"{jax.tree_util.keystr(key)}|{a.dtype.str}|{a.shape}|".encode())
    h.update(a.tobytes())
  return h.hexdigest()


def tree_hash(params: Mapping[str, Any]) -> str:
  """The content hash `save` records for `params` (host arrays), as `content_hash` reports it."""
  return _combine({k: _digest({k: v}) for k, v in dict(params).items()})


def _combine(subtrees: Mapping[str, str]) -> str:
  text = "\n".join(f"{k}:{subtrees[k]}" for k in sorted(subtrees))
  return hashlib.sha256(text.encode()).hexdigest()


def _json_safe(value: Any) -> Any:
  if isinstance(value, np.generic | np.ndarray | jax.Array):
    return np.asarray(value).tolist()
  if isinstance(value, Mapping):
    return {str(k): _json_safe(v) for k, v in value.items()}
  if isinstance(value, list | tuple):
    return [_json_safe(v) for v in value]
  if isinstance(value, os.PathLike):
    return os.fspath(value)
  return value


def _require(path: str | os.PathLike) -> pathlib.Path:
  path = pathlib.Path(path).absolute()
  if not path.exists():
    raise FileNotFoundError(f"no checkpoint at {path}")
  if not exists(path):
    tmp = " (a save to it was interrupted)" if _tmp_dirs(path) else ""
    raise ValueError(f"incomplete or corrupt checkpoint at {path}{tmp}: missing params/meta")
  return path


def metadata(path: str | os.PathLike) -> dict[str, Any]:
  """Shapes and dtypes of the saved params: nested dict of `jax.ShapeDtypeStruct`."""
  path = _require(path)
  try:
    with _quiet():
      tree = _checkpointer(True).metadata(path).item_metadata[_PARAMS].tree
  except Exception as e:  # orbax/tensorstore raise many types; name the path once
    raise ValueError(f"corrupt checkpoint at {path}: cannot read its metadata ({e})") from e
  return jax.tree.map(lambda m: jax.ShapeDtypeStruct(tuple(m.shape), m.dtype), tree)


def read_extra(path: str | os.PathLike) -> dict[str, Any]:
  """The JSON record saved as `extra`."""
  return _read_item(path, _META)


def read_extra_and_hash(path: str | os.PathLike) -> tuple[dict[str, Any], str | None]:
  """(`read_extra(path)`, `content_hash(path)`) in one read (a zoo scan reads many)."""
  path = _require(path)
  items = [_META, *([_INTEGRITY] if (path / _INTEGRITY).is_dir() else [])]
  out = _read_items(path, items)
  return out[_META], (_combine(_hashes(path, out[_INTEGRITY])) if len(items) > 1 else None)


def content_hash(path: str | os.PathLike) -> str | None:
  """The content hash recorded when the checkpoint was saved (None for older checkpoints)."""
  recorded = _recorded_hashes(_require(path))
  return None if recorded is None else _combine(recorded)


def subtree_hashes(path: str | os.PathLike) -> dict[str, str] | None:
  """The recorded content hash of each top-level subtree ("backbone", "head", `REST`), from
  the integrity record alone (no array is read); None for checkpoints saved without one."""
  return _recorded_hashes(_require(path))


def _recorded_hashes(path: pathlib.Path) -> dict[str, str] | None:
  if not (path / _INTEGRITY).is_dir():
    return None
  return _hashes(path, _read_item(path, _INTEGRITY))


def _hashes(path: pathlib.Path, record: Mapping[str, Any]) -> dict[str, str]:
  if record.get("algorithm") != _HASH_ALGORITHM:
    raise ValueError(f"checkpoint {path} uses unknown hash {record.get('algorithm')!r}")
  return dict(record["subtrees"])


def _verify(path: pathlib.Path, params: Mapping[str, Any]) -> None:
  """Raises `CorruptCheckpointError` when a restored subtree differs from its recorded hash."""
  recorded = _recorded_hashes(path)
  if recorded is None:
    return  # saved before content hashes existed
  bad = [k for k, v in params.items() if k in recorded and _digest({k: v}) != recorded[k]]
  if bad:
    raise CorruptCheckpointError(
      f"checkpoint {path} is corrupt: the content hash of {bad} differs from the one recorded "
      "at save time (its data files were changed on disk)"
    )


def verify(path: str | os.PathLike) -> None:
  """Reads the whole checkpoint and checks its content hash (`CorruptCheckpointError` if not)."""
  restore(path)


def _read_item(path: str | os.PathLike, item: str) -> dict[str, Any]:
  return _read_items(_require(path), [item])[item]


def _read_items(path: pathlib.Path, items: Sequence[str]) -> dict[str, dict[str, Any]]:
  try:
    with _quiet():
      out = _checkpointer(True).restore(
        path, args=ocp.args.Composite(**{k: ocp.args.JsonRestore() for k in items})
      )
  except Exception as e:
    raise CorruptCheckpointError(
      f"corrupt checkpoint at {path}: cannot read its {'/'.join(items)} record ({e})"
    ) from e
  return {k: dict(out[k] or {}) for k in items}


def restore(path: str | os.PathLike, *, subtrees: Sequence[str] | None = None) -> dict[str, Any]:
  """The saved params as NumPy arrays; `subtrees=("backbone",)` reads only those top-level keys."""
  path = _require(path)
  if subtrees is None:
    params = _restore_plain(path)
    if params is not None:
      _verify(path, params)
      return params
  shapes = metadata(path)
  if subtrees is not None:
    missing = [k for k in subtrees if k not in shapes]
    if missing:
      raise ValueError(f"checkpoint at {path} has no subtree(s) {missing}; has {sorted(shapes)}")
    shapes = {k: shapes[k] for k in subtrees}
  item = jax.tree.map(lambda s: np.empty(s.shape, s.dtype), shapes)
  restore_args = jax.tree.map(lambda _: ocp.RestoreArgs(restore_type=np.ndarray), shapes)
  try:
    with _quiet():
      out = _checkpointer(True).restore(
        path,
        args=ocp.args.Composite(
          **{
            _PARAMS: ocp.args.PyTreeRestore(
              item=item, restore_args=restore_args, partial_restore=subtrees is not None
            )
          }
        ),
      )
  except Exception as e:
    raise CorruptCheckpointError(
      f"corrupt checkpoint at {path}: cannot read its params ({e})"
    ) from e
  params = out[_PARAMS]
  # A truncated data file can come back short instead of raising; never hand that on.
  bad = [
    jax.tree_util.keystr(kp)
    for kp, (got, want) in _leaf_pairs(params, shapes)
    if got.shape != want.shape or got.dtype != want.dtype
  ]
  if bad:
    raise CorruptCheckpointError(
      f"corrupt checkpoint at {path}: leaves {bad} differ from the saved shapes"
    )
  _verify(path, params)
  return params


def _restore_plain(path: pathlib.Path) -> dict[str, Any] | None:
  """Fast path (no separate metadata read): the params when every leaf comes back as NumPy.

  Single-process saves always store host arrays, which orbax restores as NumPy by default.
  Anything else (arrays saved sharded over hosts, or an error) -> None: take the checked path.
  """
  try:
    with _quiet():
      out = _checkpointer(True).restore(
        path, args=ocp.args.Composite(**{_PARAMS: ocp.args.PyTreeRestore()})
      )
  except Exception:  # the checked path names the problem
    return None
  params = out[_PARAMS]
  if not all(isinstance(x, np.ndarray) for x in jax.tree.leaves(params)):
    return None
  return params


def _leaf_pairs(got: Any, want: Any) -> list:
  got_leaves = jax.tree_util.tree_leaves_with_path(got)
  want_leaves = jax.tree.leaves(want)
  if len(got_leaves) != len(want_leaves):
    raise ValueError("restored tree structure differs from the saved one")
  return [(kp, (g, w)) for (kp, g), w in zip(got_leaves, want_leaves, strict=True)]


def with_rest(params: Mapping[str, Any], rest: Mapping[str, Any] | None) -> dict[str, Any]:
  """The tree a model checkpoint stores: params plus, when the model has any, its non-parameter
  state (batch-norm statistics) under `REST`, so a restored model normalises as it was trained."""
  tree = dict(params)
  if rest and jax.tree.leaves(rest):
    tree[REST] = rest
  return tree


def split_rest(tree: Mapping[str, Any]) -> tuple[dict[str, Any], dict[str, Any]]:
  """(params, rest) of a restored checkpoint tree (rest = {} when none was stored)."""
  params = {k: v for k, v in tree.items() if k != REST}
  return params, dict(tree.get(REST, {}))


def restore_backbone(path: str | os.PathLike) -> dict[str, Any]:
  """Only `params["backbone"]` (partial restore: the head is not read)."""
  return restore(path, subtrees=("backbone",))["backbone"]


def restore_backbone_rest(path: str | os.PathLike) -> dict[str, Any]:
  """The backbone's batch-norm statistics stored with the checkpoint ({} when there are none)."""
  if REST not in metadata(path):
    return {}
  return restore(path, subtrees=(REST,))[REST].get("backbone", {})


def stack(trees: Sequence[Mapping[str, Any]]) -> dict[str, Any]:
  """Stacks same-structured param trees on a new leading axis (NumPy), e.g. for `jax.vmap`."""
  if not trees:
    raise ValueError("stack needs at least one param tree")
  ref = jax.tree.structure(trees[0])
  ref_shapes = [(np.shape(x), np.asarray(x).dtype) for x in jax.tree.leaves(trees[0])]
  for i, tree in enumerate(trees[1:], start=1):
    if jax.tree.structure(tree) != ref:
      raise ValueError(f"param tree {i} has a different structure from tree 0")
    shapes = [(np.shape(x), np.asarray(x).dtype) for x in jax.tree.leaves(tree)]
    if shapes != ref_shapes:
      raise ValueError(f"param tree {i} has different leaf shapes/dtypes from tree 0")
  return jax.tree.map(lambda *xs: np.stack([np.asarray(x) for x in xs]), *trees)


def restore_stacked(
  paths: Sequence[str | os.PathLike], *, subtrees: Sequence[str] | None = None
) -> dict[str, Any]:
  """`stack([restore(p) for p in paths])`: leaves shaped `[len(paths), ...]`."""
  return stack([restore(p, subtrees=subtrees) for p in paths])


def checkpoint_path(
  workdir: str | os.PathLike, source: str, arch: str, seed: int, step: int
) -> pathlib.Path:
  """The zoo layout: `<workdir>/zoo/<source>/<arch>/seed_<seed>/<step>`.

  The architecture is part of the path so two models pre-trained on one source never share (or
  silently reuse) each other's checkpoints.
  """
  for what, name in (("source", source), ("arch", arch)):
    if not name or "/" in name:
      raise ValueError(f"{what} must be a non-empty name without '/', got {name!r}")
  return pathlib.Path(workdir) / "zoo" / source / arch / f"seed_{int(seed)}" / str(int(step))


def complete_steps(directory: str | os.PathLike) -> list[int]:
  """Sorted steps `s` with a complete checkpoint at `<directory>/<s>` (e.g. a seed's folder)."""
  directory = pathlib.Path(directory)
  if not directory.is_dir():
    return []
  return sorted(int(p.name) for p in directory.iterdir() if p.name.isdigit() and exists(p))


def restore_pytree(path: str | os.PathLike) -> dict[str, Any]:
  """A PyTree written by another program's orbax (`StandardCheckpointer`, `PyTreeCheckpointer`,
  or one item of a `CheckpointManager` step) as nested dicts of NumPy arrays."""
  path = pathlib.Path(path).absolute()
  if not (path / "_METADATA").is_file():
    raise ValueError(f"{path} is not an orbax PyTree directory (no _METADATA file)")
  try:
    with _quiet():
      tree = ocp.PyTreeCheckpointer().restore(path)
  except Exception as e:
    raise ValueError(f"cannot read the orbax PyTree at {path} ({e})") from e
  return jax.tree.map(np.asarray, tree)

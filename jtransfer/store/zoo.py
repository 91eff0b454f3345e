"""The zoo: every checkpoint a job can use, each carrying one record that says what it is.

  entry = zoo.write_entry(workdir, zoo.Entry(source="mnist", arch="cnn", seed=0, step=300,
                          num_classes=10, model_kwargs={}, index=6, epoch=0.32), params)
  entries = zoo.select(workdir, sources=["mnist"], steps=[300])   # what a job works on
  entry.path, entry.model_kwargs, entry.index, entry.content_hash

Layout: `<workdir>/zoo/<source>/<arch>/seed_<k>/<step>/` (`checkpointing.checkpoint_path`), a
checkpoint whose metadata (`checkpointing.save`'s `extra`) holds the record under "zoo". The
zoo on disk is the truth: `select` lists it by walking that tree, so a workdir whose
`results.sqlite` was lost still finds every checkpoint. The store's `checkpoints` table is an
index of it (`index_row`), which pre-training rebuilds from the zoo on every run.

The record (`Entry`): source, arch, seed, step, epoch, `index` (the step's position in the
pre-training schedule, which pre-training knows when it saves), `num_classes` and
`model_kwargs` (the model's constructor arguments: `functional.init(arch, num_classes=...,
**model_kwargs)` rebuilds it), `origin` ("trained" here or "imported", with `imported_from`:
at least file, file_sha256 and original_keys), the metrics measured at save time, and, filled
when read, `path` (where it lies) and `content_hash` (`checkpointing.content_hash`).

Every checkpoint carries its record: one without (saved before the record existed) is an error
naming `python -m jtransfer migrate WORKDIR`, which derives and writes it
(`jtransfer.jobs.migrate`).
"""

from __future__ import annotations

import dataclasses
import json
import os
import pathlib
from collections.abc import Iterable, Iterator, Mapping, Sequence
from typing import Any

from jtransfer.store import checkpointing
from jtransfer.store import workdir as workdir_files

RECORD_KEY = "zoo"  # key of the record in a checkpoint's saved `extra`
TRAINED, IMPORTED = "trained", "imported"
ORIGINS = (TRAINED, IMPORTED)
INDEX_METRICS = ("train_acc", "test_acc", "train_loss", "test_loss")  # checkpoints columns
# An imported entry's provenance: the file it came from, that file's sha256, the original key
# names (the importers' dict may hold more, e.g. "format", "head").
IMPORT_FIELDS = ("file", "file_sha256", "original_keys")


@dataclasses.dataclass(frozen=True)
class Entry:
  """One checkpoint of the zoo: what every job needs to find, rebuild and describe its model.

  `index` is None for an imported model without a place in a schedule (`select` numbers a run's
  entries by step); `num_classes` / `model_kwargs` are None only in a stub for a checkpoint that
  is not on disk (which `select` reports as missing).
  """

  source: str
  arch: str
  seed: int
  step: int
  num_classes: int | None
  model_kwargs: Mapping[str, Any] | None = None
  index: int | None = None  # position of `step` in the pre-training schedule (0 = untrained)
  epoch: float | None = None
  origin: str = TRAINED
  imported_from: Mapping[str, Any] | None = None  # IMPORT_FIELDS (and more) when imported
  metrics: Mapping[str, float] = dataclasses.field(default_factory=dict)
  path: str | None = None  # absolute directory; filled when read, not stored
  content_hash: str | None = None  # `checkpointing.content_hash`; filled when read

  def __post_init__(self):
    for what, name in (("source", self.source), ("arch", self.arch)):
      if not isinstance(name, str) or not name or "/" in name:
        raise ValueError(f"zoo entry {what} must be a non-empty name without '/', got {name!r}")
    if self.origin not in ORIGINS:
      raise ValueError(f"zoo entry origin must be one of {ORIGINS}, got {self.origin!r}")
    if (self.origin == IMPORTED) != (self.imported_from is not None):
      raise ValueError("imported_from is given exactly for entries of origin 'imported'")
    if self.imported_from is not None:
      lacking = [k for k in IMPORT_FIELDS if k not in self.imported_from]
      if lacking:
        raise ValueError(f"imported_from lacks {lacking}; it needs {IMPORT_FIELDS}")

  @property
  def key(self) -> tuple[str, str, int, int]:
    return (self.source, self.arch, self.seed, self.step)

  def record(self) -> dict[str, Any]:
    """The JSON record stored in the checkpoint (everything but `path` and `content_hash`)."""
    out = dataclasses.asdict(self)
    del out["path"], out["content_hash"]
    return out

  def index_row(self, workdir: str | os.PathLike) -> dict[str, Any]:
    """The row of the store's `checkpoints` table that indexes this entry."""
    path = pathlib.Path(self.path)
    try:
      path = path.relative_to(pathlib.Path(workdir).absolute())
    except ValueError:
      pass  # outside the workdir: keep it absolute
    row = dict(source=self.source, arch=self.arch, seed=self.seed, step=self.step,
               epoch=self.epoch, path=str(path))  # fmt: skip
    row.update({k: self.metrics[k] for k in INDEX_METRICS if k in self.metrics})
    return row


def _entry(record: Mapping[str, Any], path, content_hash) -> Entry:
  fields = {f.name for f in dataclasses.fields(Entry)} - {"path", "content_hash"}
  unknown = sorted(set(record) - fields)
  if unknown:
    raise ValueError(f"zoo record of {path} has unknown fields {unknown}")
  r = dict(record)
  for k in ("seed", "step"):
    r[k] = int(r[k])
  return Entry(**r, path=str(pathlib.Path(path).absolute()), content_hash=content_hash)


# -- writing --------------------------------------------------------------------------------


def write_entry(
  workdir: str | os.PathLike,
  entry: Entry,
  params: Mapping[str, Any],
  *,
  overwrite: bool = False,
  process_local: bool = False,
) -> Entry:
  """Saves `params` as the zoo checkpoint of `entry` with its record; returns the entry as read.

  `params`: the checkpoint tree, `{"backbone": ..., "head": ...}` plus `checkpointing.REST` for
  models with batch statistics (`checkpointing.with_rest`). The path is the zoo layout of
  `entry.key` under `workdir` (`entry.path` is ignored). An importer passes
  `origin=IMPORTED, imported_from={"file": ..., "file_sha256": ..., "original_keys": ...}`
  (more keys may follow) and `index=None` unless the model has a place in a schedule (`select`
  then numbers a run's entries by step). Registering it in the store is the caller's choice
  (`store.mark_done("pretrain", ..., {"checkpoints": [entry.index_row(workdir)]})`): jobs find
  it on disk either way.
  """
  if entry.num_classes is None or entry.model_kwargs is None:
    raise ValueError(f"zoo entry {entry.key} needs num_classes and model_kwargs to be written")
  workdir_files.ensure_format(workdir)
  path = checkpointing.checkpoint_path(workdir, entry.source, entry.arch, entry.seed, entry.step)
  checkpointing.save(
    path,
    params,
    extra={RECORD_KEY: entry.record()},
    overwrite=overwrite,
    process_local=process_local,
  )
  return dataclasses.replace(
    entry, path=str(path.absolute()), content_hash=checkpointing.content_hash(path)
  )


# -- reading --------------------------------------------------------------------------------


def read_entry(path: str | os.PathLike) -> Entry:
  """The record of the checkpoint at `path`, with its path and content hash."""
  path = pathlib.Path(path).absolute()
  extra, digest = checkpointing.read_extra_and_hash(path)
  if RECORD_KEY not in extra:
    raise ValueError(
      f"checkpoint {path} has no zoo record: it predates the record (run `python -m jtransfer "
      "migrate WORKDIR` on its workdir) or was not written by jtransfer (describe it with "
      "jtransfer.store.zoo.write_entry)"
    )
  return _entry(extra[RECORD_KEY], path, digest)


def checkpoint_dirs(
  workdir: str | os.PathLike,
  *,
  sources: Sequence[str] | None = None,
  archs: Sequence[str] | None = None,
) -> Iterator[tuple[pathlib.Path, tuple[str, str, int, int]]]:
  """(step directory, key) of every checkpoint in the zoo tree, sorted; an incomplete one is an
  error naming it (a zoo never silently loses a checkpoint)."""
  workdir = pathlib.Path(workdir).absolute()
  for seed_dir in sorted((workdir / "zoo").glob("*/*/seed_*")):
    if not seed_dir.is_dir() or not seed_dir.name[len("seed_") :].isdigit():
      continue
    source, arch = seed_dir.parent.parent.name, seed_dir.parent.name
    if (sources is not None and source not in sources) or (archs is not None and arch not in archs):
      continue
    for step_dir in sorted(p for p in seed_dir.iterdir() if p.name.isdigit()):
      if not checkpointing.exists(step_dir):
        raise ValueError(
          f"zoo checkpoint {step_dir} is incomplete or damaged (no params/meta): delete it "
          "and rerun pre-training to rewrite it"
        )
      yield step_dir, (source, arch, int(seed_dir.name[len("seed_") :]), int(step_dir.name))


def scan(
  workdir: str | os.PathLike,
  *,
  sources: Sequence[str] | None = None,
  archs: Sequence[str] | None = None,
) -> list[Entry]:
  """Every checkpoint under `<workdir>/zoo/` (of the given sources / archs), read from disk; a
  checkpoint whose record cannot be read, or belongs elsewhere, is an error naming it."""
  out = []
  for step_dir, key in checkpoint_dirs(workdir, sources=sources, archs=archs):
    try:
      entry = read_entry(step_dir)
    except ValueError as e:
      raise ValueError(f"cannot read zoo checkpoint {step_dir}: {e}") from e
    if entry.key != key:
      raise ValueError(
        f"zoo checkpoint {step_dir} records {entry.key}, which belongs elsewhere in the zoo"
      )
    out.append(entry)
  return _fill_indices(out)


def _fill_indices(entries: list[Entry]) -> list[Entry]:
  """Entries without an index (imported models): their position among their run's steps."""
  runs: dict[tuple, set[int]] = {}
  for e in entries:
    runs.setdefault(e.key[:3], set()).add(e.step)
  return [
    e
    if e.index is not None
    else dataclasses.replace(e, index=sorted(runs[e.key[:3]]).index(e.step))
    for e in entries
  ]


# -- selecting ------------------------------------------------------------------------------


def select(
  workdir: str | os.PathLike,
  checkpoints: Iterable[Any] | None = None,
  *,
  sources: Sequence[str] | None = None,
  archs: Sequence[str] | None = None,
  seeds: Sequence[int] | None = None,
  steps: Sequence[int] | None = None,
) -> list[Entry]:
  """The entries a job works on, sorted by (source, arch, seed, step).

  `checkpoints`: None (the zoo on disk, plus rows of the store's `checkpoints` table that lie
  outside it) or explicit items: `Entry`s, checkpoint directories, or dicts with source, arch,
  seed, step and optionally path (default: the zoo layout; relative paths are relative to the
  workdir), num_classes, model_kwargs, epoch. The filters keep the given values only.
  """
  workdir = pathlib.Path(workdir).absolute()
  workdir_files.check_format(workdir)
  if checkpoints is None:
    rows = _store_rows(workdir, sources, archs)
    out = scan(workdir, sources=sources, archs=archs)  # complete, checked
    on_disk = {e.key for e in out}
    unchecked = [_normalise(row, workdir) for key, row in rows.items() if key not in on_disk]
  else:
    out, unchecked = [], [_normalise(item, workdir) for item in checkpoints]
  keys = [e.key for e in out + unchecked]
  dup = sorted({k for k in keys if keys.count(k) > 1})
  if dup:
    raise ValueError(f"checkpoints listed twice (source, arch, seed, step): {dup[:5]}")
  absent = [e.path for e in unchecked if not checkpointing.exists(e.path)]
  out += unchecked
  if absent:
    raise ValueError(f"{len(absent)} checkpoint(s) missing or incomplete, e.g. {absent[:3]}")
  keep = lambda v, allowed: allowed is None or v in set(allowed)  # noqa: E731
  out = [
    e
    for e in out
    if keep(e.source, sources) and keep(e.arch, archs) and keep(e.seed, seeds)
    and keep(e.step, steps)
  ]  # fmt: skip
  return sorted(_fill_indices(out), key=lambda e: e.key)


def _store_rows(workdir: pathlib.Path, sources, archs) -> dict[tuple, dict[str, Any]]:
  """{key: row} of the store's `checkpoints` table (checkpoints outside the zoo tree are only
  found here), without empty cells."""
  from jtransfer.store import results

  if not results.shard_paths(workdir):
    return {}
  out = {}
  for r in results.load(workdir, "checkpoints").to_dict("records"):
    if (sources is None or r["source"] in sources) and (archs is None or r["arch"] in archs):
      row = {k: v for k, v in r.items() if k not in ("extra", "created_at") and v == v}
      out[(r["source"], r["arch"], int(r["seed"]), int(r["step"]))] = row
  return out


def _normalise(item: Any, workdir: pathlib.Path) -> Entry:
  if isinstance(item, Entry):
    return item
  if isinstance(item, str | os.PathLike):
    return read_entry(item)
  if not isinstance(item, Mapping):
    raise ValueError(f"a checkpoint must be a path, a dict or a zoo.Entry, got {item!r}")
  missing = [k for k in ("source", "arch", "seed", "step") if item.get(k) is None]
  if missing:
    raise ValueError(f"checkpoint record {dict(item)!r} lacks {missing}")
  path = item.get("path") or checkpointing.checkpoint_path(
    ".", item["source"], item["arch"], item["seed"], item["step"]
  )
  path = pathlib.Path(os.fspath(path))
  path = (path if path.is_absolute() else workdir / path).absolute()
  # Not on disk: a stub, which `select` reports as missing.
  entry = read_entry(path) if checkpointing.exists(path) else _stub(item, path)
  asked = (str(item["source"]), str(item["arch"]), int(item["seed"]), int(item["step"]))
  if entry.key != asked:
    raise ValueError(f"checkpoint {path} records {entry.key}, not {asked}")
  overrides = {k: item[k] for k in ("num_classes", "model_kwargs") if item.get(k) is not None}
  return dataclasses.replace(entry, **overrides) if overrides else entry


def _stub(item: Mapping[str, Any], path: pathlib.Path) -> Entry:
  return Entry(
    source=str(item["source"]),
    arch=str(item["arch"]),
    seed=int(item["seed"]),
    step=int(item["step"]),
    num_classes=None,
    path=str(path),
  )


def shared_model_kwargs(entries: Iterable[Entry], arch: str, fit=None) -> dict[str, Any] | None:
  """The constructor arguments the entries of `arch` share (None when none records any).

  `fit(kwargs)` maps each entry's kwargs first (e.g. `models.base.fit_to_data` for a target, so
  input hyperparameters that follow the data do not count as a difference). Entries of one
  architecture built with different arguments are an error: pass model_kwargs explicitly.
  """
  found = {}
  for e in entries:
    if e.arch == arch and e.model_kwargs is not None:
      kw = dict(e.model_kwargs) if fit is None else fit(dict(e.model_kwargs))
      found.setdefault(json.dumps(kw, sort_keys=True, default=str), kw)
  if len(found) > 1:
    raise ValueError(
      f"checkpoints of {arch!r} were built with different model_kwargs {list(found.values())}; "
      "pass model_kwargs explicitly"
    )
  return next(iter(found.values()), None)

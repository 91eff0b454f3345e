"""Streaming training batches: a random-access source read through grain, in the seeded order.

    src = pipeline.RecordSource("/data/cifar10_train.arrayrecord")    # or ArraySource(x, y),
                                                                     # or data.source(name, split)
    it = pipeline.train_batches(src, seeds=[0, 1, 2], batch_size=64, start_step=k,
                                transform=pipeline.normalizer("cifar10"),
                                augment=augment.for_dataset("cifar10"))
    x, y = next(it)     # x [num_seeds, 64, H, W, C] float32, y [num_seeds, 64] int32: step k

Order. Step `t` of member seed `s` reads exactly the rows the in-memory path gathers:
`batches.batch_indices([s], t, ...)`, i.e. batch `t % spe` of the permutation
`batches.epoch_permutation(s, t // spe, n)` (remainder dropped). So for data that fits in memory
`next(it)` equals `(normalize(train_x)[idx], train_y[idx])` with `idx` from `batches.index_stream`,
and a run resumed at step k (`start_step=k`) sees the batches it would have seen.

Pipeline. `grain.MapDataset.range(start_step, stop_step)` of step numbers, `.map` to the
step's batch (compute the [S, B] indices, read those rows from the source in one batched read,
augment, normalise), `.to_iter_dataset(ReadOptions(num_threads, prefetch))`: `num_threads` host
threads build the next `prefetch` steps while the device trains on this one (grain keeps them
in step order). `device_prefetch` then keeps the next batches' host-to-device copies in flight.
Host memory is bounded by `prefetch` batches plus the source's read buffers, whatever the size of
the dataset (BENCHMARKS.md, "Streaming training data"). glibc gives each reading thread its own
malloc arena and the arenas keep freed batch buffers: with large batches set MALLOC_ARENA_MAX=2.

Processes. `shard_by="member"`: process `i` of `n` reads the members `seeds[i::n]` (the way the
jobs split seeds), output [len(seeds[i::n]), B, ...]. `shard_by="batch"`: every process has every
member and reads rows `[i*B/n, (i+1)*B/n)` of each member's batch (a data-parallel global batch
over hosts; assemble with `jax.make_array_from_process_local_data`). Either way the processes'
reads are disjoint and together cover the global step batch.

Sources. Anything with `len(src)` and `src[i] -> (input, label)` (the registry's convention, e.g.
the tfds `data.source(name, split)`); a `read(indices) -> (inputs, labels)` method is used when
present (one batched read instead of one call per example). `RecordSource` reads ArrayRecord
files written by `write_records` (one example per record: int32 label + raw array bytes;
uint8 images stay uint8 on disk and are normalised by `normalizer` after augmentation).

Jobs. `pretrain.run(input_pipeline="stream", augment=...)` trains from this pipeline (see
`pretrain._stream_source` and `pretrain._inputs`): the source is `datasets.source(name,
"train")` where the dataset has one, else `ArraySource` of the loaded raw split (`Rows(src,
arange(train_examples))` for a prefix), `normalizer(name)` the transform, the train-accuracy rows
from `eval_subset`, and `engine.build_fns(..., inputs="batch")` the step; with `augment=None` a
streamed zoo is bit-identical to the in-memory one (tests/pretrain_stream_test.py).

`finetune.run(input_pipeline="stream")` likewise (`finetune._stream_target`,
`finetune._inputs`): `train_batches(src, [data_seed(ft_seed)], ..., start_step=0,
stop_step=total_steps)` and `device_prefetch(..., place.batch_index, repeat=g)` (every member
of a group of `g` sees one batch), a validation split as `Rows(src, keep)` for train and
`read_rows(src, held)` (normalised) for val, held out by the labels only (`labels_of`). Curves
bit-identical to the in-memory job's (tests/finetune_stream_test.py).
"""

from __future__ import annotations

import dataclasses
import json
import os
import sys
import threading
from collections import deque
from collections.abc import Callable, Iterator, Sequence

import numpy as np

from jtransfer.data import augment as augment_lib
from jtransfer.data import batches, normalization, subsets

SHARD_BY = ("member", "batch")
_LABEL = np.dtype("<i4")  # the label prefix of every record


# -- sources --------------------------------------------------------------------------------


class ArraySource:
  """Random access to in-memory arrays (data that fits; tests): `src[i] -> (x[i], y[i])`."""

  def __init__(self, x: np.ndarray, y: np.ndarray):
    if len(x) != len(y):
      raise ValueError(f"{len(x)} inputs for {len(y)} labels")
    self.x, self.y = x, np.asarray(y, np.int32)

  def __len__(self) -> int:
    return len(self.x)

  def __getitem__(self, i: int):
    return self.x[i], int(self.y[i])

  def read(self, indices: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    return self.x[indices], self.y[indices]


def _meta_path(path) -> str:
  return os.fspath(path) + ".json"


def write_records(
  path, x: np.ndarray, y: np.ndarray, *, options: str = "group_size:1,uncompressed", chunk=4096
) -> None:
  """Writes examples `x[i]` (any fixed shape and dtype) with int32 labels `y[i]` to one
  ArrayRecord file at `path`, plus `<path>.json` with their shape and dtype.

  `x` may be any sliceable array (e.g. a `np.memmap`): it is read `chunk` examples at a time.
  options: ArrayRecord writer options. `group_size:1` makes each record its own chunk, so a
  random read decodes one example, not a group of them; uncompressed, because random reads of
  image bytes are CPU-bound on decompression (drop it to trade read speed for disk).
  """
  from array_record.python import array_record_module  # noqa: PLC0415

  if len(x) != len(y):
    raise ValueError(f"{len(x)} inputs for {len(y)} labels")
  writer = array_record_module.ArrayRecordWriter(os.fspath(path), options)
  try:
    for start in range(0, len(x), chunk):
      xs = np.ascontiguousarray(x[start : start + chunk])
      ys = np.asarray(y[start : start + chunk]).astype(_LABEL)
      for xi, yi in zip(xs, ys, strict=True):
        writer.write(yi.tobytes() + xi.tobytes())
  finally:
    writer.close()
  meta = {"shape": list(x.shape[1:]), "dtype": np.dtype(x.dtype).str, "count": len(x)}
  with open(_meta_path(path), "w") as f:
    json.dump(meta, f)


class RecordSource:
  """Random access to ArrayRecord file(s) written by `write_records` (same shape and dtype).

  One `ArrayRecordReader` per file, shared by the pipeline's threads (reads are const), and one
  `read(positions)` call per file and step: the C++ reader fetches the records in parallel.
  (grain's `ArrayRecordDataSource.__getitems__` does the same but starts a Python thread pool
  per call, a cost of the order of the step's whole read; BENCHMARKS.md.)
  """

  def __init__(self, paths: str | os.PathLike | Sequence[str | os.PathLike]):
    from array_record.python import array_record_module  # noqa: PLC0415

    paths = [paths] if isinstance(paths, str | os.PathLike) else list(paths)
    if not paths:
      raise ValueError("RecordSource needs at least one file")
    metas = []
    for p in paths:
      if not os.path.exists(_meta_path(p)):
        raise ValueError(f"{p}: no {_meta_path(p)} (write the file with pipeline.write_records)")
      with open(_meta_path(p)) as f:
        metas.append(json.load(f))
    if any((m["shape"], m["dtype"]) != (metas[0]["shape"], metas[0]["dtype"]) for m in metas):
      raise ValueError(f"record files with different example shapes or dtypes: {paths}")
    self.shape = tuple(metas[0]["shape"])
    self.dtype = np.dtype(metas[0]["dtype"])
    self._x_bytes = int(np.prod(self.shape)) * self.dtype.itemsize
    # readahead 0: random reads, no sequential read-ahead buffer per reader.
    self._readers = [
      array_record_module.ArrayRecordReader(os.fspath(p), "readahead_buffer_size:0") for p in paths
    ]
    counts = [r.num_records() for r in self._readers]
    if counts != [m["count"] for m in metas]:
      raise ValueError(f"{paths}: record counts {counts} disagree with the .json files")
    self._starts = np.cumsum([0, *counts])  # file f holds examples [starts[f], starts[f+1])

  def __len__(self) -> int:
    return int(self._starts[-1])

  def __getitem__(self, i: int):
    x, y = self.read(np.asarray([i]))
    return x[0], int(y[0])

  def read(self, indices: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(inputs [n, *shape], int32 labels [n]) of `indices`, in order (one batched read)."""
    indices = np.asarray(indices, np.int64).reshape(-1)
    if indices.size and (indices.min() < 0 or indices.max() >= len(self)):
      raise IndexError(f"record indices out of range for {len(self)} records")
    files = np.searchsorted(self._starts, indices, side="right") - 1
    raw: list = [b""] * len(indices)
    for f in np.unique(files):
      at = np.flatnonzero(files == f)
      records = self._readers[f].read([int(i) for i in indices[at] - self._starts[f]])
      for j, r in zip(at, records, strict=True):
        raw[j] = r
    flat = np.frombuffer(b"".join(raw), np.uint8)
    if flat.size != len(indices) * (_LABEL.itemsize + self._x_bytes):
      raise ValueError("a record has the wrong size for the shape and dtype of its .json file")
    rows = flat.reshape(len(indices), -1)
    y = rows[:, : _LABEL.itemsize].copy().view(_LABEL).reshape(-1).astype(np.int32)
    x = rows[:, _LABEL.itemsize :].copy().view(self.dtype).reshape(len(indices), *self.shape)
    return x, y


def read_rows(source, indices: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
  """(inputs, int32 labels) of `indices` from any source (batched `read` when it has one)."""
  indices = np.asarray(indices).reshape(-1)
  if hasattr(source, "read"):
    return source.read(indices)
  if hasattr(source, "take"):  # the tfds `Source`
    return source.take(indices)
  pairs = [source[int(i)] for i in indices]
  return np.stack([np.asarray(p[0]) for p in pairs]), np.asarray([p[1] for p in pairs], np.int32)


class Rows:
  """The examples `index` of a source, renumbered 0..len(index)-1, without reading them: a
  job's `train_examples` (`Rows(src, np.arange(n))`) or fine-tuning's train part of a
  train/validation split (`Rows(src, keep)`)."""

  def __init__(self, source, index):
    index = np.asarray(index, np.int64).reshape(-1)
    if index.size == 0 or index.min() < 0 or index.max() >= len(source):
      raise ValueError(f"row indices must be a non-empty subset of [0, {len(source)})")
    self.source, self.index = source, index

  def __len__(self) -> int:
    return len(self.index)

  def __getitem__(self, i: int):
    return self.source[int(self.index[int(i)])]

  def read(self, indices: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    return read_rows(self.source, self.index[np.asarray(indices).reshape(-1)])


def eval_subset(source, examples: int | None, subset_seed: int | None, transform=None):
  """(x, y) of the rows `engine.eval_arrays` evaluates for a split of `len(source)` examples
  (`examples` of them, the first ones or a seeded sorted subset), read from the source, so the
  streamed job measures train accuracy on the same fixed subset as the in-memory job."""
  index = subsets.eval_subset_index(len(source), examples, subset_seed)
  x, y = read_rows(source, index)
  return (x if transform is None else transform(x)), np.asarray(y, np.int32)


def normalizer(name: str) -> Callable[[np.ndarray], np.ndarray]:
  """Raw inputs -> what `engine.load_source` puts on the device for dataset `name`: uint8 is
  divided by 255 (as the loaders do), then the dataset's declared (x - mean) / std, float32."""

  def transform(x: np.ndarray) -> np.ndarray:
    if x.dtype == np.uint8:
      x = x.astype(np.float32)
      x /= 255.0
    return normalization.normalize(name, x)

  return transform


# -- the jobs' option -----------------------------------------------------------------------

INPUT_PIPELINES = ("memory", "stream")  # the jobs' `input_pipeline` values


def check_job_options(input_pipeline: str, augment: bool, dataset: str) -> None:
  """The training jobs' `input_pipeline` / `augment` checks (one line naming the problem)."""
  if input_pipeline not in INPUT_PIPELINES:
    raise ValueError(
      f"unknown input_pipeline {input_pipeline!r}; valid: {', '.join(INPUT_PIPELINES)}"
    )
  if augment and input_pipeline != "stream":
    raise ValueError("augment=True needs input_pipeline='stream' (memory does not augment)")
  if augment and augment_lib.for_dataset(dataset) is None:
    raise ValueError(
      f"augment=True: dataset {dataset!r} declares no augmentation "
      f"(declared for: {', '.join(sorted(augment_lib.DATASET_AUGMENT))})"
    )


def job_source(name: str, split: str, *, data_dir=None, examples: int | None = None):
  """(raw random-access rows, their transform) of a dataset split for a streamed job.

  The dataset's random-access source (`data.source`, the tfds datasets) where it has one, else
  `ArraySource` of its loaded split (datasets that fit); `examples`: the first n rows only (a
  job's `train_examples`). The transform is `normalizer(name)`, so a streamed batch equals the
  rows of the split `engine.load_source` normalises whole.
  """
  from jtransfer import data as datasets  # noqa: PLC0415 (the registry imports this package)

  if datasets.get(name).source is not None:
    src = datasets.source(name, split, data_dir=data_dir)
  else:
    src = ArraySource(*datasets.load(name, split, data_dir=data_dir))
  if examples is not None:
    if not 0 < examples <= len(src):
      raise ValueError(f"train_examples must be in [1, {len(src)}], got {examples}")
    src = Rows(src, np.arange(examples))
  return src, normalizer(name)


def labels_of(source, chunk: int = 4096) -> np.ndarray:
  """int32 labels of every row of a source, read `chunk` rows at a time (bounded memory)."""
  n = len(source)
  parts = [read_rows(source, np.arange(i, min(i + chunk, n)))[1] for i in range(0, n, chunk)]
  return np.concatenate(parts).astype(np.int32) if parts else np.zeros(0, np.int32)


# -- process shares -------------------------------------------------------------------------


def member_share(members: Sequence[int], process_index: int, process_count: int) -> list[int]:
  """The members process `process_index` of `process_count` trains (the jobs' split)."""
  _check_process(process_index, process_count)
  return list(members)[process_index::process_count]


def batch_share(batch_size: int, process_index: int, process_count: int) -> slice:
  """The rows of every member's batch that process `process_index` reads (`shard_by="batch"`)."""
  _check_process(process_index, process_count)
  if batch_size % process_count:
    raise ValueError(f"batch_size {batch_size} is not divisible by {process_count} processes")
  per = batch_size // process_count
  return slice(process_index * per, (process_index + 1) * per)


def _check_process(process_index: int, process_count: int) -> None:
  if not 0 <= process_index < process_count:
    raise ValueError(f"need 0 <= process_index < process_count: {process_index}, {process_count}")


# -- the step -> batch map ------------------------------------------------------------------


class _Permutations:
  """Each member's permutation of an epoch, computed once, shared by the reading threads.

  Holds the two newest epochs (the threads work at most `prefetch` steps apart); an older one
  asked for again is recomputed (same values), never served wrong."""

  def __init__(self, seeds: Sequence[int], num_examples: int):
    self.seeds, self.n = tuple(seeds), num_examples
    self._lock = threading.Lock()
    self._by_epoch: dict[int, np.ndarray] = {}

  def __call__(self, epoch: int) -> np.ndarray:
    with self._lock:
      perms = self._by_epoch.get(epoch)
    if perms is None:
      perms = np.stack([batches.epoch_permutation(s, epoch, self.n) for s in self.seeds])
      with self._lock:
        self._by_epoch[epoch] = perms
        for old in sorted(self._by_epoch)[:-2]:
          del self._by_epoch[old]
    return perms


@dataclasses.dataclass
class StepBatch:
  """The grain map: training step -> (x [S, b, ...], y [S, b]) of this process's share."""

  source: object
  seeds: tuple[int, ...]
  batch_size: int
  rows: slice
  augment: augment_lib.Augment | None
  transform: Callable | None

  def __post_init__(self):
    self.num_examples = len(self.source)
    self.steps_per_epoch = batches.steps_per_epoch(self.num_examples, self.batch_size)
    self._perms = _Permutations(self.seeds, self.num_examples)

  def indices(self, step: int) -> np.ndarray:
    """[S, b] example indices of `step` (this process's rows)."""
    epoch, pos = divmod(step, self.steps_per_epoch)
    start = pos * self.batch_size
    return self._perms(epoch)[:, start : start + self.batch_size][:, self.rows]

  def __call__(self, step: int) -> tuple[np.ndarray, np.ndarray]:
    step = int(step)
    idx = self.indices(step)
    x, y = read_rows(self.source, idx.reshape(-1))
    x = x.reshape(*idx.shape, *x.shape[1:])
    if self.augment is not None and self.augment.active:
      x = np.stack(
        [
          augment_lib.apply(self.augment, x[m], seed=s, step=step, examples=idx[m])
          for m, s in enumerate(self.seeds)
        ]
      )
    if self.transform is not None:
      x = self.transform(x)
    return x, np.asarray(y, np.int32).reshape(idx.shape)


def train_batches(
  source,
  seeds: Sequence[int],
  *,
  batch_size: int,
  start_step: int = 0,
  stop_step: int | None = None,
  transform: Callable[[np.ndarray], np.ndarray] | None = None,
  augment: augment_lib.Augment | None = None,
  shard_by: str = "member",
  process_index: int = 0,
  process_count: int = 1,
  num_threads: int = 2,
  prefetch: int = 4,
) -> Iterator[tuple[np.ndarray, np.ndarray]]:
  """Steps `start_step, start_step + 1, ...` (to `stop_step`, else endless) as (x, y) batches of
  this process's share, read `num_threads`-parallel and `prefetch` steps ahead through grain.

  seeds: every member's data seed (its order: `batches.epoch_permutation(seed, epoch, n)`).
  transform: raw inputs -> model inputs, after augmentation (e.g. `normalizer(name)`).
  augment: per-example crop / flip (`augment.Augment`), keyed by (seed, step, example); None: off.
  shard_by / process_index / process_count: see the module docstring (one process: everything).
  num_threads 0: no prefetch, each step is read when asked for (the debugging path).
  """
  import grain  # noqa: PLC0415

  if shard_by not in SHARD_BY:
    raise ValueError(f"unknown shard_by {shard_by!r}; valid: {', '.join(SHARD_BY)}")
  if not seeds:
    raise ValueError("need at least one member seed")
  if batch_size < 1 or batch_size > len(source):
    raise ValueError(f"batch_size must be in [1, {len(source)}] (source size), got {batch_size}")
  if start_step < 0 or (stop_step is not None and stop_step < start_step):
    raise ValueError(f"need 0 <= start_step <= stop_step, got {start_step}, {stop_step}")
  if num_threads < 0 or prefetch < 1:
    raise ValueError(f"need num_threads >= 0 and prefetch >= 1, got {num_threads}, {prefetch}")
  if shard_by == "member":
    seeds, rows = member_share(seeds, process_index, process_count), slice(None)
    if not seeds:
      raise ValueError(f"process {process_index} of {process_count} has no member to read")
  else:
    rows = batch_share(batch_size, process_index, process_count)
  step_batch = StepBatch(source, tuple(int(s) for s in seeds), batch_size, rows, augment, transform)
  stop = sys.maxsize if stop_step is None else stop_step
  options = grain.ReadOptions(num_threads=num_threads, prefetch_buffer_size=prefetch)
  dataset = grain.MapDataset.range(start_step, stop).map(step_batch).to_iter_dataset(options)
  return iter(dataset)


def device_prefetch(iterator: Iterator, sharding, size: int = 2, repeat: int = 1) -> Iterator:
  """`jax.device_put(batch, sharding)` of the next `size` batches kept in flight, so a step's
  host-to-device copy overlaps the previous step (flax's `prefetch_to_device` pattern).

  repeat: copies of the member axis (fine-tuning: the `g` members of a group see one batch).
  """
  import jax  # noqa: PLC0415

  if size < 1 or repeat < 1:
    raise ValueError(f"need size >= 1 and repeat >= 1, got {size}, {repeat}")
  queue: deque = deque()
  for batch in iterator:
    if repeat > 1:
      batch = tuple(np.repeat(a, repeat, axis=0) for a in batch)
    queue.append(jax.device_put(batch, sharding))
    if len(queue) > size:
      yield queue.popleft()
  while queue:
    yield queue.popleft()

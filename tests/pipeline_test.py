"""The streaming input pipeline: the in-memory path's batches, shards, resume, bounded memory."""

import itertools
import json
import os
import pathlib
import subprocess
import sys
import textwrap

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jtransfer import data as datasets
from jtransfer.data import augment, batches, pipeline
from jtransfer.models import functional
from jtransfer.train import engine, optim

N, B = 103, 10  # 10 steps per epoch, 3 examples dropped each epoch
SEEDS = [0, 3, 5, 11]


def _raw(n=N, shape=(6, 5, 1), seed=0):
  rng = np.random.default_rng(seed)
  return rng.integers(0, 256, (n, *shape)).astype(np.uint8), rng.integers(0, 10, n).astype(np.int32)


def _memory(x, y, seeds, steps, start_step=0):
  """The in-memory path: normalise the whole split, gather `index_stream`'s rows."""
  x = datasets.normalize("mnist", x.astype(np.float32) / 255.0)
  stream = batches.index_stream(seeds, num_examples=len(x), batch_size=B, start_step=start_step)
  return [(x[idx], y[idx]) for idx in itertools.islice(stream, steps)]


def _assert_same(got, want):
  assert len(got) == len(want)
  for t, ((gx, gy), (wx, wy)) in enumerate(zip(got, want, strict=True)):
    assert gx.dtype == np.float32 and gy.dtype == np.int32, t
    np.testing.assert_array_equal(gx, wx, err_msg=f"step {t}")
    np.testing.assert_array_equal(gy, wy, err_msg=f"step {t}")


@pytest.fixture(scope="module")
def records(tmp_path_factory):
  x, y = _raw()
  path = tmp_path_factory.mktemp("rec") / "train.arrayrecord"
  pipeline.write_records(path, x, y, chunk=7)  # chunks that do not divide N
  return path, x, y


@pytest.mark.parametrize("kind", ["array", "records", "getitem"])
def test_batches_equal_the_in_memory_gather_across_epochs(kind, records):
  path, x, y = records

  class GetItemOnly:  # the bare registry convention: len(src), src[i] -> (input, label)
    def __len__(self):
      return N

    def __getitem__(self, i):
      return x[i], int(y[i])

  source = {
    "array": pipeline.ArraySource(x, y),
    "records": pipeline.RecordSource(path),
    "getitem": GetItemOnly(),
  }[kind]
  steps = 25  # 2.5 epochs: two epoch boundaries
  got = pipeline.train_batches(
    source, SEEDS, batch_size=B, stop_step=steps, transform=pipeline.normalizer("mnist")
  )
  got = list(got)
  _assert_same(got, _memory(x, y, SEEDS, steps))
  assert got[0][0].shape == (len(SEEDS), B, 6, 5, 1)
  # Each member's epoch is a permutation of N - 3 distinct examples.
  labels_seen = np.concatenate([g[1][2] for g in got[10:20]])
  assert labels_seen.shape == (100,)


def test_resume_at_step_k_and_unthreaded_reads_give_the_same_batches(records):
  path, x, y = records
  src = pipeline.RecordSource(path)
  norm = pipeline.normalizer("mnist")
  full = list(pipeline.train_batches(src, SEEDS, batch_size=B, stop_step=30, transform=norm))
  for k in (7, 10, 19):  # inside an epoch, at a boundary, just before one
    resumed = pipeline.train_batches(
      src, SEEDS, batch_size=B, start_step=k, stop_step=30, transform=norm, num_threads=0
    )
    _assert_same(list(resumed), full[k:])
    _assert_same(full[k:], _memory(x, y, SEEDS, 30 - k, start_step=k))


def test_endless_stream_and_a_single_member():
  x, y = _raw()
  it = pipeline.train_batches(pipeline.ArraySource(x, y), [9], batch_size=B, prefetch=2)
  got = [next(it) for _ in range(23)]
  want = [
    (x[i], y[i])
    for i in itertools.islice(batches.index_stream([9], num_examples=N, batch_size=B), 23)
  ]
  for (gx, gy), (wx, wy) in zip(got, want, strict=True):
    np.testing.assert_array_equal(gx, wx)
    np.testing.assert_array_equal(gy, wy)


def test_member_shards_are_disjoint_cover_the_members_and_read_their_rows():
  x, y = _raw()
  src = pipeline.ArraySource(x, y)
  whole = list(pipeline.train_batches(src, SEEDS, batch_size=B, stop_step=12))
  for n in (1, 2, 3, 4):
    shares = [pipeline.member_share(SEEDS, i, n) for i in range(n)]
    flat = [s for share in shares for s in share]
    assert sorted(flat) == sorted(SEEDS) and len(flat) == len(set(flat))  # disjoint, covering
    for i in range(n):
      got = list(
        pipeline.train_batches(
          src, SEEDS, batch_size=B, stop_step=12, process_index=i, process_count=n
        )
      )
      rows = [SEEDS.index(s) for s in shares[i]]
      for (gx, gy), (wx, wy) in zip(got, whole, strict=True):
        np.testing.assert_array_equal(gx, wx[rows])
        np.testing.assert_array_equal(gy, wy[rows])
  with pytest.raises(ValueError, match="process 4 of 5 has no member to read"):
    pipeline.train_batches(src, SEEDS, batch_size=B, process_index=4, process_count=5)


def test_batch_shards_split_every_members_batch_and_keep_its_augmentation():
  x, y = _raw(shape=(6, 6, 3))
  src = pipeline.ArraySource(x, y)
  aug = augment.Augment(crop_padding=2, flip=True)
  kw = dict(batch_size=B, stop_step=12, augment=aug)
  whole = list(pipeline.train_batches(src, SEEDS, **kw))
  parts = [
    list(
      pipeline.train_batches(src, SEEDS, shard_by="batch", process_index=i, process_count=2, **kw)
    )
    for i in range(2)
  ]
  for t in range(12):
    assert parts[0][t][0].shape == (len(SEEDS), B // 2, 6, 6, 3)
    np.testing.assert_array_equal(np.concatenate([p[t][0] for p in parts], 1), whole[t][0])
    np.testing.assert_array_equal(np.concatenate([p[t][1] for p in parts], 1), whole[t][1])
  assert [pipeline.batch_share(B, i, 2) for i in range(2)] == [slice(0, 5), slice(5, 10)]
  with pytest.raises(ValueError, match="batch_size 10 is not divisible by 3 processes"):
    pipeline.train_batches(src, SEEDS, batch_size=B, shard_by="batch", process_count=3)


def test_augmentation_in_the_pipeline_is_per_member_and_before_normalisation():
  x, y = _raw(shape=(6, 6, 3))
  aug = augment.Augment(crop_padding=2, flip=True)
  got = list(
    pipeline.train_batches(
      pipeline.ArraySource(x, y), SEEDS, batch_size=B, stop_step=12, augment=aug,
      transform=pipeline.normalizer("cifar10"),
    )
  )  # fmt: skip
  stream = batches.index_stream(SEEDS, num_examples=N, batch_size=B)
  for t, idx in enumerate(itertools.islice(stream, 12)):
    for m, s in enumerate(SEEDS):
      raw = augment.apply(aug, x[idx[m]], seed=s, step=t, examples=idx[m])  # uint8, black pad
      want = datasets.normalize("cifar10", raw.astype(np.float32) / 255.0)
      np.testing.assert_array_equal(got[t][0][m], want)
  # Off by default: the same call without `augment` is the plain gather.
  plain = next(pipeline.train_batches(pipeline.ArraySource(x, y), SEEDS, batch_size=B))
  np.testing.assert_array_equal(
    plain[0], x[next(batches.index_stream(SEEDS, num_examples=N, batch_size=B))]
  )
  assert not np.array_equal(got[0][0], pipeline.normalizer("cifar10")(plain[0]))


def test_bad_input_fails_with_a_clear_message(tmp_path):
  x, y = _raw()
  src = pipeline.ArraySource(x, y)
  with pytest.raises(ValueError, match="unknown shard_by 'rows'; valid: member, batch"):
    pipeline.train_batches(src, SEEDS, batch_size=B, shard_by="rows")
  with pytest.raises(ValueError, match=r"batch_size must be in \[1, 103\]"):
    pipeline.train_batches(src, SEEDS, batch_size=104)
  with pytest.raises(ValueError, match="need 0 <= start_step <= stop_step"):
    pipeline.train_batches(src, SEEDS, batch_size=B, start_step=5, stop_step=4)
  with pytest.raises(ValueError, match="need at least one member seed"):
    pipeline.train_batches(src, [], batch_size=B)
  with pytest.raises(ValueError, match="no .*json"):
    pipeline.RecordSource(tmp_path / "missing.arrayrecord")
  with pytest.raises(ValueError, match="3 inputs for 2 labels"):
    pipeline.ArraySource(x[:3], y[:2])
  path = tmp_path / "a.arrayrecord"
  pipeline.write_records(path, x[:5], y[:5])
  meta = json.loads(pathlib.Path(str(path) + ".json").read_text())
  meta["shape"] = [6, 5, 2]
  pathlib.Path(str(path) + ".json").write_text(json.dumps(meta))
  with pytest.raises(ValueError, match="wrong size"):
    pipeline.RecordSource(path).read(np.arange(3))


@pytest.mark.parametrize("mode", ["loop", "devices"])
def test_stream_step_trains_exactly_like_the_index_step(mode):
  """Three steps from streamed batches equal three steps of `engine.build_fns` from indices."""
  rng = np.random.default_rng(0)
  n, bs, seeds = 40, 8, [2, 7]
  x = rng.normal(size=(n, 28, 28, 1)).astype(np.float32)
  y = rng.integers(0, 10, n).astype(np.int32)
  graphdef, params, rest = functional.init_stacked("cnn_tiny", num_classes=10, seeds=seeds)
  spec = ("adam", (("learning_rate", 1e-3),))
  tx = optim.make_optimizer("adam", learning_rate=1e-3)
  mesh = engine.make_mesh(mode, num_seeds=2, batch_size=bs, devices=jax.devices()[:2])
  place = engine.placement(mesh, mode)
  host = jax.device_get({"params": params, "rest": rest, "opt_state": jax.vmap(tx.init)(params)})
  fresh = lambda: jax.device_put(jax.tree.map(np.array, host), place.state)  # own buffers: donated
  drop = jax.device_put(np.asarray(seeds, np.int32), place.state)
  index_fn, _ = engine.build_fns(graphdef, spec, mesh, mode, "cpu")
  batch_fn, _ = engine.build_fns(graphdef, spec, mesh, mode, "cpu", inputs="batch")
  a, b = fresh(), fresh()
  xd, yd = jax.device_put(x, place.replicated), jax.device_put(y, place.replicated)
  stream = batches.index_stream(seeds, num_examples=n, batch_size=bs, start_step=3)
  it = pipeline.train_batches(pipeline.ArraySource(x, y), seeds, batch_size=bs, start_step=3)
  it = pipeline.device_prefetch(it, place.batch_index)
  for t in range(3, 8):  # across the epoch boundary at step 5
    a, ma = index_fn(a, drop, xd, yd, jax.device_put(next(stream), place.batch_index), jnp.int32(t))
    bx, by = next(it)
    b, mb = batch_fn(b, drop, bx, by, jnp.int32(t))
  np.testing.assert_allclose(ma["loss"], mb["loss"], rtol=1e-6)
  for u, v in zip(jax.tree.leaves(a["params"]), jax.tree.leaves(b["params"]), strict=True):
    np.testing.assert_allclose(u, v, rtol=1e-6, atol=1e-7)
  assert float(np.max(np.abs(np.asarray(ma["loss"])))) > 0


_STREAM_SCRIPT = textwrap.dedent(
  """
  import json, sys
  import numpy as np
  from jtransfer.data import pipeline
  path, n, shape = sys.argv[1], int(sys.argv[2]), tuple(json.loads(sys.argv[3]))
  def peak_rss():
    # VmHWM, not getrusage's ru_maxrss: Linux carries ru_maxrss over exec from the forking
    # parent (here the test process), VmHWM belongs to this process's memory alone.
    status = open("/proc/self/status").read().split("VmHWM:")[1]
    return int(status.split()[0]) * 1024
  before = peak_rss()  # the imports (jax via grain)
  src = pipeline.RecordSource(path)
  seeds, bs = [0, 1], 256
  steps = n // bs  # one epoch of each member: every record read twice
  it = pipeline.train_batches(src, seeds, batch_size=bs, stop_step=steps, prefetch=4)
  seen = np.zeros(n, np.int64)
  perms = [pipeline.batches.epoch_permutation(s, 0, n) for s in seeds]
  for t, (x, y) in enumerate(it):
    idx = np.stack([p[t * bs:(t + 1) * bs] for p in perms])
    assert x.shape == (2, bs, *shape), x.shape
    # Every record carries its own index in its first 4 bytes and label index % 10.
    head = np.ascontiguousarray(x.reshape(2, bs, -1)[:, :, :4]).view("<u4")[..., 0]
    assert np.array_equal(head, idx) and np.array_equal(y, idx % 10), t
    np.add.at(seen, idx.reshape(-1), 1)
  peak = peak_rss()
  print(json.dumps({"before": before, "peak": peak, "reads": int(seen.sum()), "steps": steps}))
  """
)


@pytest.mark.slow
def test_streaming_a_dataset_larger_than_the_rss_budget(tmp_path):
  """768 MB of incompressible uint8 records stream through a subprocess whose peak RSS stays
  far below the dataset size (the whole file is read twice, once per member)."""
  n, shape = 62_500, (64, 64, 3)
  path = tmp_path / "big.arrayrecord"

  class Generated:  # rows made chunk by chunk: the test process never holds the dataset either
    dtype = np.uint8

    def __len__(self):
      return n

    def __getitem__(self, s):
      rows = np.arange(n)[s]
      x = np.random.default_rng(s.start).integers(0, 256, (len(rows), *shape), dtype=np.uint8)
      x.reshape(len(rows), -1)[:, :4] = rows.astype("<u4").view(np.uint8).reshape(-1, 4)
      return x

  Generated.shape = (n, *shape)

  pipeline.write_records(path, Generated(), np.arange(n) % 10, chunk=2500)
  size = path.stat().st_size
  assert size > 765e6
  # MALLOC_ARENA_MAX: glibc gives each reading thread its own malloc arena, and the arenas keep
  # freed batch buffers; uncapped, RSS creeps up by ~100-200 MB more over the epoch (measured).
  env = {
    **os.environ,
    "PYTHONPATH": str(pathlib.Path(__file__).resolve().parents[1]),
    "MALLOC_ARENA_MAX": "2",
  }
  out = subprocess.run(
    [sys.executable, "-c", _STREAM_SCRIPT, str(path), str(n), json.dumps(list(shape))],
    capture_output=True, text=True, env=env, timeout=600, check=False,
  )  # fmt: skip
  assert out.returncode == 0, out.stderr[-3000:]
  r = json.loads(out.stdout.strip().splitlines()[-1])
  assert r["reads"] == 2 * (n // 256) * 256
  # The whole process (imports ~200-230 MB, the ArrayRecord reader, 4 prefetched steps of 2 x 256
  # examples, the permutations) stays well under the dataset, which it read twice (1.5 GB).
  # Measured peaks: 287-388 MB, of which streaming 60-160 MB (the spread is the allocator's and the
  # reader's buffers on a loaded machine), so the ceilings leave that spread room but would catch
  # a pipeline that held a sizeable part of the file (or of what it has read).
  assert r["peak"] < 0.6 * size, (r, size)
  assert r["peak"] - r["before"] < 0.3 * size, (r, size)


def test_a_tfds_data_source_feeds_the_pipeline_like_the_materialised_split():
  tfds = pytest.importorskip("tensorflow_datasets")
  with tfds.testing.mock_data(num_examples=50):
    x, y = datasets.load("tfds:mnist", "train")  # what engine.load_source starts from
    src = datasets.source("tfds:mnist", "train")  # tfds.data_source, random access
    got = list(
      pipeline.train_batches(
        src, [1, 4], batch_size=16, stop_step=7, transform=pipeline.normalizer("tfds:mnist")
      )
    )
  x = datasets.normalize("tfds:mnist", x)
  stream = batches.index_stream([1, 4], num_examples=50, batch_size=16)
  for (gx, gy), idx in zip(got, stream, strict=False):  # 3 steps per epoch: 2 boundaries
    np.testing.assert_array_equal(gx, x[idx])
    np.testing.assert_array_equal(gy, y[idx])
  assert "tensorflow" not in sys.modules


def test_eval_subset_and_prefix_pick_the_in_memory_jobs_rows(records):
  path, x, y = records
  src = pipeline.RecordSource(path)
  norm = pipeline.normalizer("mnist")
  xn = norm(x)
  for examples, subset_seed in ((40, 0), (40, None), (None, 3), (500, 0)):
    ex, ey = pipeline.eval_subset(src, examples, subset_seed, norm)
    wx, wy, mask = engine.eval_arrays(
      xn, y, examples=examples, batch_size=16, subset_seed=subset_seed
    )
    np.testing.assert_array_equal(ex, wx.reshape(-1, *x.shape[1:])[mask.reshape(-1)])
    np.testing.assert_array_equal(ey, wy.reshape(-1)[mask.reshape(-1)])
  # train_examples=50: the stream of the first 50 rows is the in-memory stream of x[:50].
  head = pipeline.Rows(src, np.arange(50))
  got = list(pipeline.train_batches(head, [2], batch_size=B, stop_step=8))
  for (gx, gy), idx in zip(
    got, batches.index_stream([2], num_examples=50, batch_size=B), strict=False
  ):
    np.testing.assert_array_equal(gx, x[:50][idx])
    np.testing.assert_array_equal(gy, y[:50][idx])
  # A train/validation split's train part: the stream of x[keep] (renumbered).
  keep = np.sort(np.random.default_rng(0).permutation(N)[:60])
  got = list(pipeline.train_batches(pipeline.Rows(src, keep), [2], batch_size=B, stop_step=8))
  for (gx, gy), idx in zip(
    got, batches.index_stream([2], num_examples=60, batch_size=B), strict=False
  ):
    np.testing.assert_array_equal(gx, x[keep][idx])
    np.testing.assert_array_equal(gy, y[keep][idx])
  with pytest.raises(ValueError, match=r"non-empty subset of \[0, 103\)"):
    pipeline.Rows(src, [0, 103])


def test_device_prefetch_keeps_order_and_repeats_the_member_axis():
  x, y = _raw()
  src = pipeline.ArraySource(x, y)
  mesh = engine.make_mesh("devices", num_seeds=3, batch_size=B, devices=jax.devices()[:3])
  place = engine.placement(mesh, "devices")
  host = list(pipeline.train_batches(src, [4], batch_size=B, stop_step=5))
  moved = list(
    pipeline.device_prefetch(
      pipeline.train_batches(src, [4], batch_size=B, stop_step=5), place.batch_index, repeat=3
    )
  )
  assert len(moved) == 5
  for (hx, hy), (dx, dy) in zip(host, moved, strict=True):
    assert dx.sharding == place.batch_index and dx.shape == (3, B, 6, 5, 1)
    np.testing.assert_array_equal(np.asarray(dx), np.repeat(hx, 3, axis=0))
    np.testing.assert_array_equal(np.asarray(dy), np.repeat(hy, 3, axis=0))


def test_a_source_of_several_record_files_is_their_concatenation(tmp_path):
  x, y = _raw()
  cuts = [0, 40, 41, N]  # a one-record file in the middle
  paths = []
  for f in range(3):
    paths.append(tmp_path / f"part{f}.arrayrecord")
    pipeline.write_records(paths[-1], x[cuts[f] : cuts[f + 1]], y[cuts[f] : cuts[f + 1]])
  src = pipeline.RecordSource(paths)
  assert len(src) == N
  k = np.array([40, 0, 102, 39, 41, 40])
  got_x, got_y = src.read(k)
  np.testing.assert_array_equal(got_x, x[k])
  np.testing.assert_array_equal(got_y, y[k])
  _assert_same(
    list(
      pipeline.train_batches(
        src, SEEDS, batch_size=B, stop_step=12, transform=pipeline.normalizer("mnist")
      )
    ),
    _memory(x, y, SEEDS, 12),
  )
  with pytest.raises(IndexError, match="out of range for 103 records"):
    src.read(np.array([103]))
  pipeline.write_records(tmp_path / "rgb.arrayrecord", np.zeros((2, 6, 5, 3), np.uint8), [0, 1])
  with pytest.raises(ValueError, match="different example shapes or dtypes"):
    pipeline.RecordSource([paths[0], tmp_path / "rgb.arrayrecord"])

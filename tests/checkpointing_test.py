"""Checkpoints: bit-exact round trips, partial (backbone) restore, stacking, corruption errors."""

import json
import os
import pathlib
import re
import shutil
import signal
import subprocess
import sys
import textwrap

import jax
import jax.numpy as jnp
import ml_dtypes
import numpy as np
import pytest
from two_processes import run_two

from jtransfer.store import checkpointing as ckpt

REPO = pathlib.Path(__file__).resolve().parents[1]


def _params(seed: int) -> dict:
  rng = np.random.default_rng(seed)
  special = np.array([np.nan, -0.0, np.inf, -np.inf, 1e-45, 3.4e38], np.float32)  # denormal too
  return {
    "backbone": {
      "conv1": {"kernel": rng.standard_normal((3, 3, 1, 4), np.float32), "bias": special},
      "fc1": {
        "kernel": rng.standard_normal((16, 8), np.float32).astype(ml_dtypes.bfloat16),
        "count": np.arange(5, dtype=np.int32),
        "scalar": np.int32(7),  # 0-d leaves (optimiser step counts)
      },
    },
    "head": {"logits": {"kernel": jnp.asarray(rng.standard_normal((8, 3), np.float32))}},
  }


def _bits(x) -> np.ndarray:
  x = np.atleast_1d(np.asarray(x))
  return x.view(np.dtype(f"u{x.dtype.itemsize}"))


def _assert_bit_equal(got, want):
  assert jax.tree.structure(got) == jax.tree.structure(want)
  for g, w in zip(jax.tree.leaves(got), jax.tree.leaves(want), strict=True):
    assert isinstance(g, np.ndarray)
    assert g.dtype == np.asarray(w).dtype and g.shape == np.shape(w)
    np.testing.assert_array_equal(_bits(g), _bits(w))


def test_round_trip_is_bit_exact(tmp_path):
  params = _params(0)
  path = ckpt.save(tmp_path / "c", params, extra={"step": 3, "epoch": 0.25, "acc": np.float32(1)})
  assert ckpt.exists(path)
  _assert_bit_equal(ckpt.restore(path), params)
  assert ckpt.read_extra(path) == {"step": 3, "epoch": 0.25, "acc": 1.0}
  shapes = ckpt.metadata(path)
  assert shapes["backbone"]["fc1"]["kernel"] == jax.ShapeDtypeStruct((16, 8), jnp.bfloat16)


def test_restore_backbone_is_exactly_the_saved_backbone(tmp_path):
  params = _params(1)
  ckpt.save(tmp_path / "c", params)
  backbone = ckpt.restore_backbone(tmp_path / "c")
  _assert_bit_equal(backbone, params["backbone"])
  head_only = ckpt.restore(tmp_path / "c", subtrees=("head",))
  _assert_bit_equal(head_only, {"head": params["head"]})
  with pytest.raises(ValueError, match="no subtree"):
    ckpt.restore(tmp_path / "c", subtrees=("neck",))


def test_stack_and_restore_stacked(tmp_path):
  trees = [_params(s) for s in range(3)]
  paths = [ckpt.save(tmp_path / str(s), t) for s, t in enumerate(trees)]
  stacked = ckpt.restore_stacked(paths)
  for i, tree in enumerate(trees):
    _assert_bit_equal(jax.tree.map(lambda x, i=i: x[i, ...], stacked), tree)
  assert stacked["backbone"]["fc1"]["kernel"].shape == (3, 16, 8)
  bb = ckpt.restore_stacked(paths, subtrees=("backbone",))
  assert set(bb) == {"backbone"}
  with pytest.raises(ValueError, match="different structure"):
    ckpt.stack([trees[0], {"backbone": trees[0]["backbone"]}])
  other = _params(0)
  other["head"]["logits"]["kernel"] = np.zeros((8, 4), np.float32)
  with pytest.raises(ValueError, match="shapes"):
    ckpt.stack([trees[0], other])
  with pytest.raises(ValueError, match="at least one"):
    ckpt.stack([])


def test_exists_overwrite_and_bad_params(tmp_path):
  path = tmp_path / "zoo" / "c"
  assert not ckpt.exists(path)
  ckpt.save(path, _params(0))
  with pytest.raises(FileExistsError, match=str(path)):
    ckpt.save(path, _params(1))
  ckpt.save(path, _params(1), overwrite=True)
  _assert_bit_equal(ckpt.restore(path), _params(1))
  with pytest.raises(ValueError, match="pure dict"):
    ckpt.save(tmp_path / "d", {"backbone": [np.zeros(3)]})
  with pytest.raises(ValueError, match="empty"):
    ckpt.save(tmp_path / "e", {"backbone": {}, "head": {"w": np.zeros(2)}})


def test_missing_and_corrupt_checkpoints_name_the_path(tmp_path):
  with pytest.raises(FileNotFoundError, match=str(tmp_path / "nope")):
    ckpt.restore(tmp_path / "nope")
  # A directory that is not a complete checkpoint.
  (tmp_path / "empty").mkdir()
  assert not ckpt.exists(tmp_path / "empty")
  with pytest.raises(ValueError, match=str(tmp_path / "empty")):
    ckpt.restore(tmp_path / "empty")
  # Missing parameter metadata.
  ckpt.save(tmp_path / "a", _params(0))
  (tmp_path / "a" / "params" / "_METADATA").unlink()
  assert not ckpt.exists(tmp_path / "a")
  with pytest.raises(ValueError, match=str(tmp_path / "a")):
    ckpt.restore(tmp_path / "a")
  # Truncated data: cut the largest file of the checkpoint (the array data) in half.
  ckpt.save(tmp_path / "b", _params(0))
  biggest = max((p for p in (tmp_path / "b").rglob("*") if p.is_file()), key=os.path.getsize)
  with open(biggest, "r+b") as f:
    f.truncate(os.path.getsize(biggest) // 2)
  with pytest.raises(ValueError, match=f"corrupt checkpoint at {tmp_path / 'b'}"):
    ckpt.restore(tmp_path / "b")
  # Garbled parameter metadata.
  ckpt.save(tmp_path / "c", _params(0))
  (tmp_path / "c" / "params" / "_METADATA").write_text("{not json")
  with pytest.raises(ValueError, match=str(tmp_path / "c")):
    ckpt.restore_backbone(tmp_path / "c")


def test_interrupted_save_leaves_no_checkpoint_and_is_cleaned_up(tmp_path):
  path = tmp_path / "c"
  tmp = tmp_path / "c.orbax-checkpoint-tmp-1234"
  (tmp / "params").mkdir(parents=True)
  assert not ckpt.exists(path) and not ckpt.exists(tmp)
  with pytest.raises(FileNotFoundError):
    ckpt.restore(path)
  ckpt.save(path, _params(0))
  assert not tmp.exists()
  _assert_bit_equal(ckpt.restore(path), _params(0))


_SAVER = textwrap.dedent(
  """
  import sys, numpy as np
  from jtransfer.store import checkpointing as ckpt
  root = sys.argv[1]
  for step in range(1000):
    rng = np.random.default_rng(step)
    params = {"backbone": {"w": rng.standard_normal((256, 256), np.float32)},
              "head": {"b": np.full((10,), step, np.float32)}}
    ckpt.save(f"{root}/{step}", params, extra={"step": step})
    print("SAVED", step, flush=True)
  """
)


@pytest.mark.slow  # SIGKILLs a subprocess
def test_kill_during_saves_leaves_only_complete_checkpoints(tmp_path):
  script = tmp_path / "saver.py"
  script.write_text(_SAVER)
  root = tmp_path / "zoo"
  env = dict(os.environ, PYTHONPATH=str(REPO), JAX_PLATFORMS="cpu")
  proc = subprocess.Popen(
    [sys.executable, str(script), str(root)], stdout=subprocess.PIPE, text=True, env=env
  )
  for line in proc.stdout:
    if line.startswith("SAVED 3"):
      os.kill(proc.pid, signal.SIGKILL)
      break
  proc.communicate(timeout=60)  # reaps it and closes the pipe
  steps = ckpt.complete_steps(root)
  assert steps[:4] == [0, 1, 2, 3] and steps == list(range(len(steps)))
  for step in steps:
    params = ckpt.restore(root / str(step))
    want = np.random.default_rng(step).standard_normal((256, 256), np.float32)
    np.testing.assert_array_equal(params["backbone"]["w"], want)
    assert np.all(params["head"]["b"] == step)
    assert ckpt.read_extra(root / str(step)) == {"step": step}
  # Whatever the kill interrupted is not a checkpoint; saving it again works.
  nxt = len(steps)
  assert not ckpt.exists(root / str(nxt))
  ckpt.save(root / str(nxt), {"backbone": {"w": np.ones(2, np.float32)}}, overwrite=True)
  assert ckpt.complete_steps(root) == list(range(nxt + 1))


def test_checkpoint_path_layout(tmp_path):
  assert ckpt.checkpoint_path(tmp_path, "mnist", "cnn", 2, 938) == (
    tmp_path / "zoo" / "mnist" / "cnn" / "seed_2" / "938"
  )
  # Two architectures on one source get two paths.
  assert ckpt.checkpoint_path(tmp_path, "mnist", "vgg16", 2, 938) != ckpt.checkpoint_path(
    tmp_path, "mnist", "cnn", 2, 938
  )
  with pytest.raises(ValueError, match="source"):
    ckpt.checkpoint_path(tmp_path, "a/b", "cnn", 0, 0)
  with pytest.raises(ValueError, match="arch"):
    ckpt.checkpoint_path(tmp_path, "mnist", "", 0, 0)


def test_extra_is_plain_json(tmp_path):
  ckpt.save(tmp_path / "c", _params(0), extra={"metrics": {"acc": np.float64(0.5)}, "p": tmp_path})
  raw = json.loads((tmp_path / "c" / "meta" / "metadata").read_text())
  assert raw == {"metrics": {"acc": 0.5}, "p": str(tmp_path)}


_MULTI = textwrap.dedent(
  """
  import sys
  import numpy as np
  from jtransfer.store import checkpointing as ckpt
  from jtransfer.runtime import sharding
  pid, port, root = int(sys.argv[1]), sys.argv[2], sys.argv[3]
  assert sharding.maybe_initialize_distributed(f"localhost:{port}", 2, pid)
  # each process restores on its own
  assert np.all(ckpt.restore_backbone(f"{root}/single")["w"] == 5)
  # process-local: each process saves its own params on its own, process 1 too, at the same
  # time and without a barrier (process 1 saves more than process 0)
  mine = {"backbone": {"w": np.full(3, 7.0 + pid, np.float32)}, "head": {"n": np.int32(pid)}}
  for k in range(6 + 3 * pid):
    ckpt.save(f"{root}/p{pid}_{k}", mine, extra={"by": pid}, process_local=True)
  g = sharding.shard_batch(np.full((1, 3), pid, np.float32), sharding.make_mesh())
  try:  # an array sharded over the processes cannot be saved by one of them
    ckpt.save(f"{root}/bad{pid}", {"backbone": {"g": g}}, process_local=True)
    raise SystemExit("a process-local save of a global array should refuse")
  except ValueError as e:
    assert "collectively" in str(e), e
  # collective: identical host params plus a global array with one row per process
  ckpt.save(f"{root}/both", {"backbone": {"w": np.arange(3, dtype=np.float32)}, "head": {"g": g}})
  r = ckpt.restore(f"{root}/both")
  print("RESULT", pid, r["backbone"]["w"].tolist(), r["head"]["g"].tolist(), flush=True)
  """
)


@pytest.mark.slow
def test_two_processes_restore_locally_and_save_collectively(tmp_path):
  ckpt.save(tmp_path / "single", {"backbone": {"w": np.full(3, 5.0, np.float32)}})
  outs = run_two(_MULTI, tmp_path, tmp_path)
  for pid, out in enumerate(outs):
    assert f"RESULT {pid} [0.0, 1.0, 2.0] [[0.0, 0.0, 0.0], [1.0, 1.0, 1.0]]" in out
  # Every process-local save, process 1's included, holds its process's params, bit for bit,
  # with the same content hash and data files as a single-process save of the same params.
  for pid, count in ((0, 6), (1, 9)):
    want = {"backbone": {"w": np.full(3, 7.0 + pid, np.float32)}, "head": {"n": np.int32(pid)}}
    single = ckpt.save(tmp_path / f"single{pid}", want, extra={"by": pid})
    for k in range(count):
      path = tmp_path / f"p{pid}_{k}"
      _assert_bit_equal(ckpt.restore(path), want)
      assert ckpt.read_extra(path) == {"by": pid}
      assert ckpt.content_hash(path) == ckpt.content_hash(single) == ckpt.tree_hash(want)
      assert _layout(path) == _layout(single)
    assert not (tmp_path / f"bad{pid}").exists()


def _layout(path: pathlib.Path) -> list[str]:
  """A checkpoint's kinds of files, the OCDBT per-process folder and hashed data names blanked
  (how many data files tensorstore writes for a few small arrays varies)."""
  names = (str(p.relative_to(path)) for p in path.rglob("*") if p.is_file())
  return sorted({re.sub(r"process_\d+", "process_N", re.sub(r"/d/\w+$", "/d/*", n)) for n in names})


def test_batch_norm_statistics_travel_with_the_checkpoint(tmp_path):
  rng = np.random.default_rng(0)
  params = {
    "backbone": {"conv1": {"kernel": rng.normal(size=(3, 3, 1, 4)).astype(np.float32)}},
    "head": {"logits": {"kernel": rng.normal(size=(4, 2)).astype(np.float32)}},
  }
  rest = {
    "backbone": {"bn1": {"mean": rng.normal(size=4).astype(np.float32)}},
    "head": {"bn2": {"var": rng.random(4).astype(np.float32)}},
  }
  with_stats, without = tmp_path / "bn", tmp_path / "plain"
  ckpt.save(with_stats, ckpt.with_rest(params, rest))
  ckpt.save(without, ckpt.with_rest(params, {}))

  got_params, got_rest = ckpt.split_rest(ckpt.restore(with_stats))
  np.testing.assert_array_equal(
    got_params["head"]["logits"]["kernel"], params["head"]["logits"]["kernel"]
  )
  np.testing.assert_array_equal(got_rest["head"]["bn2"]["var"], rest["head"]["bn2"]["var"])
  np.testing.assert_array_equal(
    ckpt.restore_backbone_rest(with_stats)["bn1"]["mean"], rest["backbone"]["bn1"]["mean"]
  )
  assert set(ckpt.restore_backbone(with_stats)) == {"conv1"}
  # A model without batch norm stores exactly its params.
  assert ckpt.split_rest(ckpt.restore(without))[1] == {}
  assert ckpt.restore_backbone_rest(without) == {}


def flip_bytes(path, count: int = 64) -> pathlib.Path:
  """Inverts `count` bytes in the middle of the checkpoint's largest array data file."""
  files = (pathlib.Path(path) / "params").rglob("*")
  data = [p for p in files if p.is_file() and p.parent.name == "d"]
  biggest = max(data, key=os.path.getsize)
  raw = bytearray(biggest.read_bytes())
  mid = len(raw) // 2 - count // 2
  raw[mid : mid + count] = bytes(b ^ 0xFF for b in raw[mid : mid + count])
  biggest.write_bytes(bytes(raw))
  return biggest


def _digest_reference(tree) -> str:
  """The documented hash, written out independently: sha256 per top-level subtree over sorted
  (key path, dtype, shape, bytes), then sha256 over the sorted 'key:hex' lines."""
  import hashlib

  def walk(prefix, node, out):
    if isinstance(node, dict):
      for k, v in node.items():
        walk(f"{prefix}['{k}']", v, out)
    else:
      out.append((prefix, np.ascontiguousarray(np.asarray(node))))

  lines = []
  for top in sorted(tree):
    leaves = []
    walk(f"['{top}']", tree[top], leaves)
    h = hashlib.sha256()
    for key, a in sorted(leaves, key=lambda kv: kv[0]):
      h.update(f"{key}|{a.dtype.str}|{a.shape}|".encode() + a.tobytes())
    lines.append(f"{top}:{h.hexdigest()}")
  return hashlib.sha256("\n".join(lines).encode()).hexdigest()


def test_content_hash_is_recorded_and_matches_an_independent_digest(tmp_path):
  params = jax.tree.map(np.asarray, _params(0))
  path = ckpt.save(tmp_path / "c", params, extra={"step": 1})
  assert ckpt.content_hash(path) == _digest_reference(params) == ckpt.tree_hash(params)
  assert ckpt.read_extra(path) == {"step": 1}  # the hash is not part of the caller's record
  other = jax.tree.map(np.copy, params)
  other["head"]["logits"]["kernel"][0, 0] += 1
  assert ckpt.tree_hash(other) != ckpt.tree_hash(params)


def test_flipped_bytes_are_a_named_corruption_error(tmp_path):
  rng = np.random.default_rng(0)
  params = {
    "backbone": {"w": rng.standard_normal((64, 64), np.float32)},
    "head": {"w": rng.standard_normal((128, 64), np.float32)},
  }
  path = ckpt.save(tmp_path / "c", params)
  flip_bytes(path)
  with pytest.raises(ckpt.CorruptCheckpointError, match=f"checkpoint {path} is corrupt"):
    ckpt.restore(path)
  with pytest.raises(ckpt.CorruptCheckpointError, match="corrupt"):
    ckpt.verify(path)
  # The intact subtree still restores on its own; the damaged one is refused on its own too.
  damaged = []
  for key in ("backbone", "head"):
    try:
      got = ckpt.restore(path, subtrees=(key,))[key]
    except ckpt.CorruptCheckpointError:
      damaged.append(key)
      continue
    np.testing.assert_array_equal(got["w"], params[key]["w"])
  assert "head" in damaged  # the larger leaf lives in the largest data file


def test_checkpoints_without_a_hash_still_restore(tmp_path):
  # Written as before content hashes: no integrity record.
  params = {"backbone": {"w": np.arange(6, dtype=np.float32)}}
  path = ckpt.save(tmp_path / "c", params, extra={"step": 2})
  shutil.rmtree(path / "integrity")
  assert ckpt.content_hash(path) is None
  np.testing.assert_array_equal(ckpt.restore(path)["backbone"]["w"], params["backbone"]["w"])

"""Mesh helpers on the 8 fake CPU devices: sharded results equal unsharded ones."""

import logging

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jtransfer.runtime import progress, sharding


def test_mesh_shapes():
  assert jax.device_count() == 8
  mesh = sharding.make_mesh()
  assert mesh.axis_names == ("data",) and mesh.devices.shape == (8,)
  mesh2 = sharding.make_mesh(("data", "model"), shape=(-1, 2))
  assert mesh2.devices.shape == (4, 2)
  assert sharding.make_mesh(devices=jax.devices()[:2]).devices.shape == (2,)
  with pytest.raises(ValueError, match="shape"):
    sharding.make_mesh(("data", "model"))
  with pytest.raises(ValueError, match="cannot be split"):
    sharding.make_mesh(("data", "model"), shape=(-1, 3))
  with pytest.raises(ValueError, match="needs 6 devices"):
    sharding.make_mesh(("data", "model"), shape=(3, 2))
  with pytest.raises(ValueError, match="no axis"):
    sharding.batch_sharded(mesh, "model")


def test_sharded_jit_equals_unsharded_float64_reference():
  mesh = sharding.make_mesh()
  rng = np.random.default_rng(0)
  x = rng.standard_normal((64, 5)).astype(np.float32)
  y = rng.integers(0, 3, size=64).astype(np.int32)
  w = rng.standard_normal((5, 3)).astype(np.float32)
  batch = sharding.shard_batch({"x": x, "y": y}, mesh)
  assert batch["x"].sharding.is_equivalent_to(sharding.batch_sharded(mesh), 2)
  # each device holds 8 distinct rows, in order
  shards = sorted(batch["x"].addressable_shards, key=lambda s: s.index[0].start)
  assert [s.data.shape for s in shards] == [(8, 5)] * 8
  np.testing.assert_array_equal(np.concatenate([np.asarray(s.data) for s in shards]), x)
  w_rep = jax.device_put(w, sharding.replicated(mesh))
  assert w_rep.sharding.is_fully_replicated

  @jax.jit
  def f(w, b):
    logits = jnp.dot(b["x"], w, precision="highest")
    return jnp.sum(logits * jax.nn.one_hot(b["y"], 3)), jnp.sum(b["x"] ** 2)

  got = f(w_rep, batch)
  one_device = f(w, {"x": x, "y": y})
  ref_logits = x.astype(np.float64) @ w.astype(np.float64)
  ref = (ref_logits[np.arange(64), y].sum(), (x.astype(np.float64) ** 2).sum())
  for g, o, r in zip(got, one_device, ref, strict=True):
    np.testing.assert_allclose(float(g), r, rtol=1e-5)
    np.testing.assert_allclose(float(g), float(o), rtol=1e-6)


def test_shard_batch_checks_divisibility():
  mesh = sharding.make_mesh()
  with pytest.raises(ValueError, match="not divisible by the 8 local devices"):
    sharding.shard_batch(np.zeros((12, 3)), mesh)
  with pytest.raises(ValueError, match="scalar"):
    sharding.shard_batch(np.float32(1), mesh)


def test_distributed_only_when_configured():
  assert sharding.maybe_initialize_distributed() is False
  with pytest.raises(ValueError, match="give all of"):
    sharding.maybe_initialize_distributed(coordinator="localhost:1234")


def test_progress_logs_instead_of_drawing_when_quiet(monkeypatch, caplog):
  monkeypatch.setenv("JTRANSFER_QUIET", "1")
  assert progress.quiet()
  with caplog.at_level(logging.INFO, logger="jtransfer.runtime.progress"):
    items = list(progress.progress(range(7), desc="pretrain", log_every_s=0.0))
  assert items == list(range(7))
  lines = [r.getMessage() for r in caplog.records]
  # one line per update (log_every_s=0) but the last, whose line is the final one
  assert len(lines) == 7
  assert lines[0].startswith("pretrain: 1/7 it") and lines[-1].startswith("pretrain: 7/7 it")
  assert lines[-1].endswith("done")
  caplog.clear()
  with caplog.at_level(logging.INFO, logger="jtransfer.runtime.progress"):
    bar = progress.progress(total=100, desc="score", log_every_s=3600.0)
    bar.set_postfix(loss=0.12345678)
    bar.update(40)
    bar.update(60)
    bar.close()
    bar.close()
  lines = [r.getMessage() for r in caplog.records]
  assert len(lines) == 1 and "100/100" in lines[0] and "loss=0.1235" in lines[0]

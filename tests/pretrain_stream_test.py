"""Pre-training from the streamed input pipeline equals pre-training from the in-memory set."""

import numpy as np
import pytest

from jtransfer import checkpointing, results
from jtransfer.data import pipeline
from jtransfer.train import pretrain

# 320 training images at batch 32: 10 steps per epoch; 14 steps cross the epoch boundary and
# checkpoint at 0, 1, 3, 10 (the boundary) and 14.
STEPS, WANT = 14, [0, 1, 3, 10, 14]
KW = dict(
  source="mnist",
  arch="cnn_tiny",
  num_seeds=2,
  batch_size=32,
  train_examples=320,
  duration={"steps": STEPS},
  eval_batch_size=64,
  eval_train_examples=64,
  eval_test_examples=64,
  optimizer="adam",
  optimizer_kwargs={"learning_rate": 1e-2},
  save_every_steps=5,
  show_progress=False,
)
METRICS = ["train_loss", "train_acc", "test_loss", "test_acc"]


def _params(workdir, seed, step):
  return checkpointing.restore(
    checkpointing.checkpoint_path(workdir, "mnist", "cnn_tiny", seed, step)
  )


def _assert_same_zoo(a, b):
  """Every checkpoint of both seeds bit-identical, and the same checkpoint rows."""
  for seed in (0, 1):
    for step in WANT:
      pa, pb = _params(a, seed, step), _params(b, seed, step)
      la, lb = _leaves(pa), _leaves(pb)
      assert len(la) == len(lb) > 0
      for x, y in zip(la, lb, strict=True):
        np.testing.assert_array_equal(x, y, err_msg=f"seed {seed} step {step}")
  ra, rb = (results.load(w, "checkpoints").sort_values(["seed", "step"]) for w in (a, b))
  assert ra.step.tolist() == rb.step.tolist() == WANT * 2
  np.testing.assert_array_equal(ra[METRICS].to_numpy(), rb[METRICS].to_numpy())


def _leaves(tree):
  import jax

  return [np.asarray(x) for x in jax.tree.leaves(tree)]


@pytest.fixture(scope="module")
def memory(tmp_path_factory, data_dir):
  workdir = tmp_path_factory.mktemp("memory")
  summary = pretrain.run(workdir=workdir, data_dir=data_dir, **KW)
  return workdir, summary


@pytest.fixture(scope="module")
def stream(tmp_path_factory, data_dir):
  workdir = tmp_path_factory.mktemp("stream")
  summary = pretrain.run(workdir=workdir, data_dir=data_dir, input_pipeline="stream", **KW)
  return workdir, summary


def test_streamed_zoo_equals_the_in_memory_zoo(memory, stream):
  # Seeds on the "model" mesh axis (one per fake device) in both runs.
  assert memory[1]["seed_parallel"] == stream[1]["seed_parallel"] == "devices"
  assert stream[1]["steps_run"] == STEPS and stream[1]["checkpoint_steps"] == WANT
  _assert_same_zoo(memory[0], stream[0])
  # The run trained: the two seeds differ, and the loss fell from about ln 10.
  a, b = _leaves(_params(stream[0], 0, STEPS)), _leaves(_params(stream[0], 1, STEPS))
  assert any(not np.allclose(x, y, atol=1e-3) for x, y in zip(a, b, strict=True))
  df = results.load(stream[0], "checkpoints").set_index(["seed", "step"])
  for seed in (0, 1):
    assert abs(df.train_loss[seed, 0] - np.log(10)) < 0.2
    assert df.train_loss[seed, STEPS] < 0.9 * df.train_loss[seed, 0]


def test_streamed_batch_split_over_devices_equals_the_in_memory_one(tmp_path, data_dir):
  # Both seeds vmapped in one step, each batch split over a `data` axis of 8 devices: the
  # streamed rows arrive sharded like the in-memory indices.
  kw = dict(KW, seed_parallel="vmap", data_dir=data_dir)
  mem = pretrain.run(workdir=tmp_path / "memory", **kw)
  st = pretrain.run(workdir=tmp_path / "stream", input_pipeline="stream", **kw)
  assert mem["mesh"] == st["mesh"] == {"data": 8}
  _assert_same_zoo(tmp_path / "memory", tmp_path / "stream")


class _Crash(Exception):
  pass


def test_resumed_streamed_run_equals_the_uninterrupted_one(stream, tmp_path, data_dir, monkeypatch):
  # The streamed run again, crashing after 7 steps (the train state of step 5 is on disk);
  # the rerun resumes at step 5, its pipeline starting at step 5 of the seeded order.
  real = pipeline.device_prefetch

  def crashing(iterator, sharding, **kw):
    for i, batch in enumerate(real(iterator, sharding, **kw)):
      if i == 7:
        raise _Crash("simulated crash")
      yield batch

  monkeypatch.setattr(pipeline, "device_prefetch", crashing)
  kw = dict(KW, input_pipeline="stream", data_dir=data_dir)
  with pytest.raises(_Crash):
    pretrain.run(workdir=tmp_path, **kw)
  monkeypatch.setattr(pipeline, "device_prefetch", real)
  resumed = pretrain.run(workdir=tmp_path, **kw)
  assert resumed["start_step"] == 5 and resumed["steps_run"] == STEPS - 5
  _assert_same_zoo(stream[0], tmp_path)


def test_config_records_the_input_pipeline(stream):
  import json

  recorded = json.loads((stream[0] / "config.json").read_text())[-1]["config"]
  assert recorded["input_pipeline"] == "stream" and recorded["augment"] is False


@pytest.mark.parametrize(
  ("kw", "message"),
  [
    ({"input_pipeline": "disk"}, "unknown input_pipeline 'disk'; valid: memory, stream"),
    ({"augment": True}, "augment=True needs input_pipeline='stream'"),
    (
      {"augment": True, "input_pipeline": "stream"},
      "augment=True: dataset 'mnist' declares no augmentation",
    ),
    ({"input_pipeline": "stream", "train_examples": 0}, r"train_examples must be in \[1, "),
  ],
)
def test_bad_combinations_fail_in_one_line_before_any_work(tmp_path, data_dir, kw, message):
  with pytest.raises(ValueError, match=message) as err:
    pretrain.run(workdir=tmp_path, source="mnist", data_dir=data_dir, **kw)
  assert "\n" not in str(err.value)
  if "train_examples" not in kw:  # checked with the typed config: nothing read or written
    assert [p.name for p in tmp_path.iterdir()] == [".lock"]

"""Pre-training from the streamed input pipeline equals pre-training from the in-memory set."""

import logging

import numpy as np
import pytest
from stage_calls import run_job

from jtransfer.data import pipeline
from jtransfer.jobs import pretrain
from jtransfer.store import checkpointing, results

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
  summary = run_job(pretrain, workdir=workdir, data_dir=data_dir, **KW)
  return workdir, summary


@pytest.fixture(scope="module")
def stream(tmp_path_factory, data_dir):
  workdir = tmp_path_factory.mktemp("stream")
  summary = run_job(pretrain, workdir=workdir, data_dir=data_dir, input_pipeline="stream", **KW)
  return workdir, summary


def test_streamed_zoo_equals_the_in_memory_zoo(memory, stream):
  # The CPU default in both runs: one seed after another, its batch over the fake devices.
  assert memory[1]["seed_parallel"] == stream[1]["seed_parallel"] == "sequential"
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
  mem = run_job(pretrain, workdir=tmp_path / "memory", **kw)
  st = run_job(pretrain, workdir=tmp_path / "stream", input_pipeline="stream", **kw)
  assert mem["mesh"] == st["mesh"] == {"data": 8}
  _assert_same_zoo(tmp_path / "memory", tmp_path / "stream")


class _Crash(Exception):
  pass


def test_resumed_streamed_run_equals_the_uninterrupted_one(
  stream, tmp_path, data_dir, monkeypatch, caplog
):
  # The streamed run again, crashing after 7 steps of seed 0 (the CPU default trains seed 0,
  # then seed 1; seed 0's train state of step 5 is on disk); the rerun resumes seed 0 at step 5,
  # its pipeline starting at step 5 of the seeded order, and trains seed 1 from the start.
  real = pipeline.device_prefetch

  def crashing(iterator, sharding, **kw):
    for i, batch in enumerate(real(iterator, sharding, **kw)):
      if i == 7:
        raise _Crash("simulated crash")
      yield batch

  monkeypatch.setattr(pipeline, "device_prefetch", crashing)
  kw = dict(KW, input_pipeline="stream", data_dir=data_dir)
  with pytest.raises(_Crash):
    run_job(pretrain, workdir=tmp_path, **kw)
  monkeypatch.setattr(pipeline, "device_prefetch", real)
  with caplog.at_level(logging.INFO, logger="jtransfer.pretrain"):
    resumed = run_job(pretrain, workdir=tmp_path, **kw)
  assert "restored the train state of seeds [0] at step 5" in caplog.text
  assert "restored the train state of seeds [1]" not in caplog.text
  assert resumed["start_step"] == 0 and resumed["steps_run"] == STEPS  # seed 1 ran them all
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
    run_job(pretrain, workdir=tmp_path, source="mnist", data_dir=data_dir, **kw)
  assert "\n" not in str(err.value)
  if "train_examples" not in kw:  # checked with the typed config: nothing read or written
    assert list(tmp_path.iterdir()) == []  # not even the job's lock taken


def test_augmented_stream_trains_on_the_declared_crops_and_flips(tmp_path, data_dir):
  """CIFAR-10 (declared: 4-pixel crop with padding, flip): the first step of the job equals
  one step of the same stack on batches augmented here by hand, and differs from the plain one.
  """
  import jax
  import jax.numpy as jnp

  from jtransfer import data as datasets
  from jtransfer.data import augment, batches
  from jtransfer.models import base, functional
  from jtransfer.train import engine, optim

  kw = dict(
    KW,
    source="cifar10",
    model_kwargs={"image_size": 32, "in_channels": 3},
    train_examples=128,
    duration={"steps": 1},
    seed_parallel="vmap",
    num_devices=1,
    save_every_steps=None,
    data_dir=data_dir,
    input_pipeline="stream",
  )
  run_job(pretrain, workdir=tmp_path / "aug", augment=True, **kw)
  run_job(pretrain, workdir=tmp_path / "plain", **kw)

  # The reference: raw [0, 1] images of step 0's rows, cropped / flipped by (seed, 0, example),
  # then normalised; the stack built as the job builds it (seed s: init key s).
  x, y = datasets.load("cifar10", "train", data_dir=data_dir)
  idx = batches.batch_indices([0, 1], 0, num_examples=128, batch_size=32)
  aug = augment.for_dataset("cifar10")
  xb = np.stack(
    [
      datasets.normalize("cifar10", augment.apply(aug, x[idx[m]], seed=m, step=0, examples=idx[m]))
      for m in (0, 1)
    ]
  )
  kwargs = base.fit_to_data("cnn_tiny", kw["model_kwargs"], datasets.get("cifar10"))
  graphdef, params, rest = functional.init_stacked(
    "cnn_tiny", num_classes=10, seeds=[0, 1], **kwargs
  )
  spec = ("adam", tuple(sorted({"learning_rate": 1e-2, "steps_per_epoch": 4}.items())))
  opt_state = jax.vmap(optim.make_optimizer("adam", **dict(spec[1])).init)(params)
  mesh = engine.make_mesh("vmap", num_seeds=2, batch_size=32, devices=jax.devices()[:1])
  train_fn, _ = engine.build_fns(graphdef, spec, mesh, "vmap", "cpu", inputs="batch")
  state = {"params": params, "rest": rest, "opt_state": opt_state}
  state, _ = train_fn(state, jnp.asarray([0, 1], jnp.int32), xb, y[idx], jnp.int32(0))
  want = jax.device_get(state["params"])

  def ckpt(run, seed):
    return checkpointing.restore(
      checkpointing.checkpoint_path(tmp_path / run, "cifar10", "cnn_tiny", seed, 1)
    )

  for seed in (0, 1):
    got = _leaves(ckpt("aug", seed))
    ref = [a[seed] for a in _leaves(want)]
    assert len(got) == len(ref)
    for a, b in zip(got, ref, strict=True):
      np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6)
    plain = _leaves(ckpt("plain", seed))
    assert any(not np.allclose(a, b, atol=1e-5) for a, b in zip(plain, got, strict=True))

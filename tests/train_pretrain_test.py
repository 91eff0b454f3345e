"""The pre-training job on real MNIST (tiny model, a few hundred images, a few steps)."""

import dataclasses
import json
import math
import os
import signal
import sqlite3
import subprocess
import sys
import time

import jax
import numpy as np
import pytest
from stage_calls import run_job

from jtransfer import data as datasets
from jtransfer.jobs import pretrain
from jtransfer.models import functional
from jtransfer.store import checkpointing, results

# 320 training images at batch 32: 10 steps per epoch.
KW = dict(
  source="mnist",
  arch="cnn_tiny",
  batch_size=32,
  train_examples=320,
  eval_batch_size=64,
  eval_train_examples=64,
  eval_test_examples=64,
  optimizer="adam",
  optimizer_kwargs={"learning_rate": 1e-2},
  show_progress=False,
)


def _final_params(workdir, seed, step, source="mnist"):
  return checkpointing.restore(
    checkpointing.checkpoint_path(workdir, source, "cnn_tiny", seed, step)
  )


def _assert_trees_close(a, b, **tol):
  la, lb = jax.tree.leaves(a), jax.tree.leaves(b)
  assert len(la) == len(lb)
  for x, y in zip(la, lb, strict=True):
    np.testing.assert_allclose(x, y, **tol)


@pytest.fixture(scope="module")
def zoo(tmp_path_factory, data_dir):
  # Seeds stacked over the devices ("devices"): the reference the other layouts are compared
  # with ("auto" on CPU trains one seed after another, "sequential").
  workdir = tmp_path_factory.mktemp("zoo")
  summary = run_job(
    pretrain,
    workdir=workdir,
    num_seeds=2,
    duration={"steps": 25},
    data_dir=data_dir,
    seed_parallel="devices",
    **KW,
  )
  return workdir, summary


def test_checkpoints_at_exactly_the_scheduled_steps(zoo):
  workdir, summary = zoo
  # Thesis schedule 0, 1, 3, 10, 30, 100, 300 batches and 1, 3, ... epochs (10 steps here),
  # cut at 25 steps, plus the final step.
  want = [0, 1, 3, 10, 25]
  df = results.load(workdir, "checkpoints")
  for seed in (0, 1):
    rows = df[df.seed == seed]
    assert rows.step.tolist() == want
    np.testing.assert_allclose(rows.epoch, np.asarray(want) / 10)
    dirs = sorted(
      int(p.name) for p in (workdir / "zoo" / "mnist" / "cnn_tiny" / f"seed_{seed}").iterdir()
    )
    assert dirs == want
  done = results.Store(workdir).done_keys("pretrain")
  want_keys = {("mnist", "cnn_tiny", s, t) for s in (0, 1) for t in want}
  assert done == {results.key_str(k) for k in want_keys}
  assert pretrain.done_key("mnist", "cnn_tiny", 0, 3) == ("mnist", "cnn_tiny", 0, 3)
  config = json.loads((workdir / "config.json").read_text())
  assert config[-1]["job"] == "pretrain" and config[-1]["config"]["num_seeds"] == 2
  assert (workdir / "logs" / "pretrain.log").stat().st_size > 0


def test_checkpoints_round_trip_and_metrics_match_numpy(zoo, data_dir):
  workdir, _ = zoo
  x, y = datasets.load("mnist", "test", data_dir=data_dir)
  x, y = datasets.normalize("mnist", x)[:64], y[:64]
  graphdef, _, rest = functional.abstract_init("cnn_tiny", num_classes=10)
  df = results.load(workdir, "checkpoints")
  for row in df.itertuples():
    params = checkpointing.restore(workdir / row.path)
    logits, _ = functional.apply(graphdef, params, {}, x)
    logits = np.asarray(logits, np.float64)
    z = logits - logits.max(-1, keepdims=True)
    nll = -(z - np.log(np.exp(z).sum(-1, keepdims=True)))[np.arange(64), y]
    np.testing.assert_allclose(row.test_loss, nll.mean(), rtol=1e-4)
    np.testing.assert_allclose(row.test_acc, (logits.argmax(-1) == y).mean())
  assert rest == {}


def test_a_few_steps_reduce_the_loss(zoo):
  df = results.load(zoo[0], "checkpoints")
  for seed in (0, 1):
    rows = df[df.seed == seed].set_index("step")
    # An untrained 10-class net predicts about uniformly: loss near ln 10.
    assert abs(rows.train_loss[0] - math.log(10)) < 0.2
    assert rows.train_loss[25] < rows.train_loss[10] < rows.train_loss[0]
    assert rows.train_loss[25] < 0.75 * rows.train_loss[0]
    assert rows.test_loss[25] < 0.8 * rows.test_loss[0]
    assert rows.test_acc[25] > 0.4  # chance is 0.1


def test_rerun_does_nothing(zoo, data_dir):
  workdir, _ = zoo
  before = results.load(workdir, "checkpoints").created_at.tolist()
  again = run_job(
    pretrain, workdir=workdir, num_seeds=2, duration={"steps": 25}, data_dir=data_dir, **KW
  )
  assert again["trained_seeds"] == [] and again["steps_run"] == 0
  assert results.load(workdir, "checkpoints").created_at.tolist() == before


def test_a_workdir_with_the_string_done_keys_of_before_is_read(tmp_path, data_dir):
  # Pre-training marked its checkpoints "mnist/cnn_tiny/seed_0/step_3" before every job keyed
  # its units by a tuple; the zoo on disk is indexed again, so nothing is trained twice.
  kw = {**KW, "duration": {"steps": 3}, "num_seeds": 1, "data_dir": data_dir}
  run_job(pretrain, workdir=tmp_path, **kw)
  before = results.load(tmp_path, "checkpoints").drop(columns="created_at")
  with sqlite3.connect(tmp_path / results.MAIN_FILE) as conn:
    for step in before.step:
      old = f"mnist/cnn_tiny/seed_0/step_{step}"
      new = results.key_str(("mnist", "cnn_tiny", 0, int(step)))
      conn.execute("UPDATE done SET key = ? WHERE job = 'pretrain' AND key = ?", (old, new))
  again = run_job(pretrain, workdir=tmp_path, **kw)
  assert again["trained_seeds"] == [] and again["steps_run"] == 0
  after = results.load(tmp_path, "checkpoints").drop(columns="created_at")
  assert after.equals(before)
  keys = results.Store(tmp_path).done_keys("pretrain")
  assert results.key_str(("mnist", "cnn_tiny", 0, 3)) in keys


def test_two_architectures_on_one_source_keep_their_own_checkpoints(tmp_path, data_dir):
  # Regression: with the architecture missing from the zoo path, the second model found the
  # first one's checkpoints, skipped saving and recorded rows pointing at the wrong weights.
  kw = {**KW, "duration": {"steps": 3}, "num_seeds": 1, "data_dir": data_dir}
  run_job(pretrain, workdir=tmp_path, **kw)
  # The same architecture at another width is a different model; it needs its own name only in
  # the registry, so here the second model is the thesis CNN at a quarter width.
  run_job(
    pretrain,
    workdir=tmp_path,
    **{**kw, "arch": "cnn", "model_kwargs": {"width": 0.25, "hidden": 16}},
  )
  df = results.load(tmp_path, "checkpoints")
  assert sorted(df.groupby("arch").size().items()) == [("cnn", 3), ("cnn_tiny", 3)]
  assert df.path.is_unique
  for arch, hyper in (("cnn_tiny", {}), ("cnn", {"width": 0.25, "hidden": 16})):
    got = checkpointing.restore(checkpointing.checkpoint_path(tmp_path, "mnist", arch, 0, 3))
    _, params, rest = functional.abstract_init(arch, num_classes=10, **hyper)
    want = checkpointing.with_rest(params, rest)
    assert jax.tree.structure(got) == jax.tree.structure(want)
    assert [a.shape for a in jax.tree.leaves(got)] == [a.shape for a in jax.tree.leaves(want)]


def test_batched_seeds_equal_separate_seeds_and_sharded_equals_single_device(
  zoo, tmp_path, data_dir
):
  # The zoo fixture: seeds 0 and 1 on a "model" mesh axis (one seed per fake CPU device).
  assert zoo[1]["seed_parallel"] == "devices" and zoo[1]["mesh"] == {"model": 2}
  kw = dict(KW, duration={"steps": 25}, data_dir=data_dir)
  alone = run_job(
    pretrain,
    workdir=tmp_path / "alone",
    num_seeds=1,
    seed_offset=1,
    seed_parallel="vmap",
    num_devices=1,
    **kw,
  )
  assert alone["mesh"] == {"data": 1}
  # Both seeds vmapped in one step, the batch split over 8 devices.
  sharded = run_job(pretrain, workdir=tmp_path / "sharded", num_seeds=2, seed_parallel="vmap", **kw)
  assert sharded["mesh"] == {"data": 8}
  tol = dict(rtol=1e-4, atol=1e-5)
  single = _final_params(tmp_path / "alone", 1, 25)
  _assert_trees_close(_final_params(zoo[0], 1, 25), single, **tol)  # seed-sharded, batched
  _assert_trees_close(_final_params(tmp_path / "sharded", 1, 25), single, **tol)  # vmap + data
  _assert_trees_close(  # seed 0 (never trained alone here): vmap + data = seed-sharded
    _final_params(tmp_path / "sharded", 0, 25), _final_params(zoo[0], 0, 25), **tol
  )
  # The two seeds really are different models.
  a, b = _final_params(zoo[0], 0, 25), single
  assert not np.allclose(a["head"]["logits"]["kernel"], b["head"]["logits"]["kernel"], atol=1e-3)


def test_sequential_seeds_equal_stacked_seeds(zoo, tmp_path, data_dir):
  # "sequential": seed 0 trained to the end, then seed 1, each alone with its batch split over
  # the 8 devices; every checkpoint and its metrics equal the stacked ("devices") zoo's.
  kw = dict(KW, duration={"steps": 25}, data_dir=data_dir)
  seq = run_job(pretrain, workdir=tmp_path, num_seeds=2, seed_parallel="sequential", **kw)
  assert seq["seed_parallel"] == "sequential" and seq["mesh"] == {"data": 8}
  assert seq["trained_seeds"] == [0, 1] and seq["steps_run"] == 25 and seq["start_step"] == 0
  want = [0, 1, 3, 10, 25]
  for seed in (0, 1):
    for step in want:
      _assert_trees_close(
        _final_params(tmp_path, seed, step), _final_params(zoo[0], seed, step), rtol=1e-4, atol=1e-5
      )
  cols = ["seed", "step", "test_loss", "test_acc", "train_loss"]
  got = results.load(tmp_path, "checkpoints").sort_values(["seed", "step"])[cols]
  ref = results.load(zoo[0], "checkpoints").sort_values(["seed", "step"])[cols]
  assert got.seed.tolist() == ref.seed.tolist() and got.step.tolist() == ref.step.tolist()
  np.testing.assert_allclose(got.test_loss, ref.test_loss, rtol=1e-4)
  np.testing.assert_allclose(got.train_loss, ref.train_loss, rtol=1e-4)
  # Each seed kept only its latest train state, as a stacked run does.
  for seed in (0, 1):
    state_dir = tmp_path / "train_state" / "mnist" / "cnn_tiny" / f"seed_{seed}"
    assert checkpointing.complete_steps(state_dir) == [25]


_CHILD = """
import json, sys
from jtransfer.jobs import context as job
from jtransfer.jobs import pretrain
pretrain.run(*job.build(pretrain.PretrainConfig, json.loads(sys.argv[1])))
"""


@pytest.mark.slow  # SIGKILLs a subprocess
@pytest.mark.parametrize("seed_parallel", ["devices", "sequential"])
def test_resume_after_sigkill_equals_uninterrupted_run(zoo, tmp_path, data_dir, seed_parallel):
  # The zoo fixture's run again in a child process (same 8 fake devices, inherited XLA_FLAGS),
  # also saving the train state every 5 steps; killed with SIGKILL once seed 1 has one on disk
  # ("sequential": seed 0 is finished by then and seed 1 is part-way).
  killed = tmp_path / "killed"
  kw = dict(
    KW,
    num_seeds=2,
    duration={"steps": 25},
    data_dir=str(data_dir),
    save_every_steps=5,
    seed_parallel=seed_parallel,
  )
  child = subprocess.Popen(
    [sys.executable, "-c", _CHILD, json.dumps(dict(kw, workdir=str(killed)))],
    env=dict(os.environ, JTRANSFER_QUIET="1"),
    stdout=subprocess.DEVNULL,
    stderr=subprocess.DEVNULL,
  )
  state_dir = killed / "train_state" / "mnist" / "cnn_tiny" / "seed_1"
  deadline = time.time() + 600
  while time.time() < deadline and child.poll() is None:
    if any(step > 0 for step in checkpointing.complete_steps(state_dir)):
      break
    time.sleep(0.01)
  assert child.poll() is None, "the child finished before it could be killed"
  child.send_signal(signal.SIGKILL)
  child.wait()

  resumed = run_job(pretrain, workdir=killed, **kw)
  assert 0 < resumed["start_step"] < 25 and resumed["steps_run"] == 25 - resumed["start_step"]
  # The same layout as the reference, bit for bit up to float noise; another layout to the
  # tolerance of the batched = separate test.
  same = seed_parallel == "devices"
  tol = dict(rtol=1e-6, atol=1e-7) if same else dict(rtol=1e-4, atol=1e-5)
  if not same:
    assert resumed["trained_seeds"] == [1]  # seed 0 finished before the kill
  want = [0, 1, 3, 10, 25]
  df = results.load(killed, "checkpoints").sort_values(["seed", "step"])
  for seed in (0, 1):
    assert df[df.seed == seed].step.tolist() == want
    seed_dir = killed / "zoo" / "mnist" / "cnn_tiny" / f"seed_{seed}"
    assert sorted(int(p.name) for p in seed_dir.iterdir()) == want  # no leftovers
    for step in want:
      _assert_trees_close(
        _final_params(killed, seed, step), _final_params(zoo[0], seed, step), **tol
      )
  # Metrics of the resumed run equal the uninterrupted run's.
  ref = results.load(zoo[0], "checkpoints").sort_values(["seed", "step"])
  np.testing.assert_allclose(df.test_loss, ref.test_loss, rtol=1e-5 if same else 1e-4)


def test_config_is_typed_recorded_and_checked_before_any_work(zoo, tmp_path):
  workdir, _ = zoo
  recorded = json.loads((workdir / "config.json").read_text())[-1]["config"]
  # The typed config as run: defaults filled in, the workdir left out, paths as strings.
  assert recorded["duration"] == {"steps": 25} and recorded["seed_parallel"] == "devices"
  # The config record holds the config's fields (what was computed), nothing of the runtime.
  assert set(recorded) == {f.name for f in dataclasses.fields(pretrain.PretrainConfig)}
  assert not {"workdir", "data_dir", "show_progress"} & set(recorded)
  config = pretrain.PretrainConfig(source="mnist", num_seeds=3, seed_offset=2)
  assert config.seeds == [2, 3, 4] and config.optimizer_kwargs == {"learning_rate": 1e-4}
  with pytest.raises(dataclasses.FrozenInstanceError):
    config.num_seeds = 4
  bad = tmp_path / "bad"
  with pytest.raises(ValueError, match="unknown seed_parallel 'pmap'"):
    run_job(pretrain, workdir=bad, source="mnist", seed_parallel="pmap")
  with pytest.raises(ValueError, match="num_seeds >= 1"):
    run_job(pretrain, workdir=bad, source="mnist", num_seeds=0)
  assert not bad.exists()  # checked before the job touches the workdir

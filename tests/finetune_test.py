"""The fine-tune job on real MNIST (tiny CNN, a fake zoo of 4 checkpoints, 30 steps)."""

import json
import os
import signal
import sqlite3
import subprocess
import sys
import time

import jax
import numpy as np
import pandas as pd
import pytest
from flax import nnx
from references import pairwise_auroc
from stage_calls import run_job

from jtransfer.jobs import finetune
from jtransfer.models import base, functional
from jtransfer.store import checkpointing, results, tracking
from jtransfer.store import zoo as zoo_lib
from jtransfer.train import finetune_plan as plan
from jtransfer.train import transfer

ARCH = "cnn_tiny"
# 320 training images at batch 32: 10 steps per epoch; 30 steps = 3 epochs.
KW = dict(
  target="mnist",
  batch_size=32,
  train_examples=320,
  eval_examples=64,
  eval_batch_size=64,
  duration={"steps": 30},
  optimizer="adam",
  optimizer_kwargs={"learning_rate": 1e-2},
  show_progress=False,
)
# The thesis schedule (0, 1, 3, 10, 30, 100, 300 batches; 1, 3, ... epochs) cut at 30 steps.
EVAL_STEPS = [0, 1, 3, 10, 30]
CKPTS = [(seed, step) for seed in (0, 1) for step in (0, 7)]


def _bits(x):
  return np.asarray(x).view(np.uint32)


def _make_zoo(workdir):
  """Four checkpoints written the way pre-training writes them (params + checkpoints rows)."""
  store = results.Store(workdir)
  rng = np.random.default_rng(0)
  for seed, step in CKPTS:
    _, params, _ = functional.init(ARCH, num_classes=10, seed=seed)
    params = jax.tree.map(np.array, params)  # writable copies
    if step:  # "trained": moved away from the init
      params = jax.tree.map(lambda a: a + 0.05 * rng.normal(size=a.shape).astype(a.dtype), params)
    params["backbone"]["conv1"]["bias"][0] = -0.0  # a signed zero for the bit-exact checks
    _write(workdir, store, "mnist", seed, step, params)
  store.close()


def _write(workdir, store, source, seed, step, params):
  """A zoo checkpoint with its record and store row, as pre-training writes it (10 steps per
  epoch: steps 0 and 7 are at places 0 and 3 of the schedule 0, 1, 3, 10, ...)."""
  entry = zoo_lib.Entry(source=source, arch=ARCH, seed=seed, step=step, num_classes=10,
                        model_kwargs={}, index={0: 0, 7: 3}[step], epoch=step / 10)  # fmt: skip
  store.add_checkpoint(**zoo_lib.write_entry(workdir, entry, params).index_row(workdir))


@pytest.fixture(scope="module")
def zoo(tmp_path_factory):
  workdir = tmp_path_factory.mktemp("ftzoo")
  _make_zoo(workdir)
  return workdir


MODES = ("full", "head", "last_block", "frozen=1")


@pytest.fixture(scope="module")
def grouped(zoo, data_dir):
  """Every checkpoint (+ baselines) of one freezing in one stacked group (3 freezings).

  "devices" (members over the fake devices): the reference the other layouts are compared
  with; "auto" on CPU would train them one after another ("sequential").
  """
  summary = run_job(
    finetune, workdir=zoo, modes=MODES, data_dir=data_dir, seed_parallel="devices", **KW
  )
  return zoo, summary


def _rows(workdir):
  df = results.load(workdir, "finetune")
  return df.set_index(list(results.KEYS["finetune"])).sort_index()


def test_schedule():
  assert finetune.eval_schedule(320, batch_size=32, duration={"steps": 30}) == (10, 30, EVAL_STEPS)
  # A final step off the schedule is evaluated only with eval_final.
  assert finetune.eval_schedule(320, batch_size=32, duration={"steps": 25})[2] == [0, 1, 3, 10, 25]
  assert finetune.eval_schedule(320, batch_size=32, duration={"steps": 25}, eval_final=False)[
    2
  ] == [0, 1, 3, 10]
  # Full MNIST at batch 64 (937 full batches per epoch), 100 epochs: the thesis' 12 points.
  spe, total, steps = finetune.eval_schedule(60000, batch_size=64, duration={"epochs": 100})
  assert (spe, total) == (937, 93700)
  assert steps == [0, 1, 3, 10, 30, 100, 300, 937, 2811, 9370, 28110, 93700]


def test_starts_from_the_backbone_and_a_head_shared_by_every_checkpoint(zoo):
  ckpts = zoo_lib.select(zoo)
  assert [(c.seed, c.step) for c in ckpts] == CKPTS
  info = plan.arch_info(ARCH, num_classes=10, model_kwargs={})
  members = plan.plan_members(ckpts, info=info, modes=("full",), ft_seeds=(3,), baselines=True)
  assert [m.source for m in members] == ["mnist"] * 4 + ["random_init", "scratch"]
  _, params, _ = transfer.initial_state(members, workdir=zoo, num_classes=10)
  _, want_head, _ = functional.init(ARCH, num_classes=10, seed=plan.head_seed(3))
  for i, m in enumerate(members[:5]):
    got = functional.unstack(params, i)
    if m.source == "mnist":  # exactly the saved backbone, bit for bit (incl. the -0.0)
      ref = checkpointing.restore(zoo / m.path)["backbone"]
      jax.tree.map(
        lambda a, b: np.testing.assert_array_equal(_bits(a), _bits(b)), got["backbone"], ref
      )
    jax.tree.map(
      lambda a, b: np.testing.assert_array_equal(_bits(a), _bits(b)), got["head"], want_head["head"]
    )
  # The random-init baseline has its own backbone; scratch is a whole fresh model.
  _, rnd, _ = functional.init(ARCH, num_classes=10, seed=plan.random_backbone_seed(3))
  np.testing.assert_array_equal(
    params["backbone"]["conv1"]["kernel"][4], rnd["backbone"]["conv1"]["kernel"]
  )
  _, scr, _ = functional.init(ARCH, num_classes=10, seed=plan.scratch_seed(3))
  np.testing.assert_array_equal(
    params["head"]["logits"]["kernel"][5], scr["head"]["logits"]["kernel"]
  )
  # Another ft_seed, another (shared) head.
  other = transfer.initial_state(
    [plan.Member("mnist", ARCH, 0, 0, members[0].path, 0, 4, ("full",))],
    workdir=zoo,
    num_classes=10,
  )[1]
  assert not np.allclose(
    other["head"]["logits"]["kernel"][0], want_head["head"]["logits"]["kernel"]
  )


def test_frozen_layers_keep_every_bit_and_the_rest_train(zoo, data_dir):
  # The same set-up as the job (`grouped`), so the compiled steps are shared.
  target = finetune.load_target(
    "mnist", data_dir=data_dir, train_examples=320, batch_size=32, duration={"steps": 6}
  )
  ckpts = zoo_lib.select(zoo)
  info = plan.arch_info(ARCH, num_classes=10, model_kwargs={})
  for spec, frozen in (("head", {"conv1", "conv2"}), ("frozen=1", {"conv1"})):
    members = plan.plan_members(ckpts, info=info, modes=(spec,), ft_seeds=(0,), baselines=True)
    members = [m for m in members if m.source != "scratch"]  # 4 checkpoints + random_init
    graphdef, params, rest = transfer.initial_state(members, workdir=zoo, num_classes=10)
    trainer = finetune.Trainer(
      graphdef=graphdef,
      layers=info.layers,
      optimizer=KW["optimizer"],
      optimizer_kwargs=KW["optimizer_kwargs"],
      batch_size=32,
      devices=jax.local_devices(),
      seed_parallel="auto",
      steps_per_epoch=10,
    )
    _, final = finetune.train_group(
      members,
      params=params,
      rest=rest,
      target=target,
      trainer=trainer,
      eval_examples=64,
      eval_train_examples=None,
      eval_batch_size=64,
    )
    assert set(info.layers[: members[0].frozen_layers]) == frozen
    for part in params:
      for layer, leaves in params[part].items():
        for leaf, start in leaves.items():
          got = final["params"][part][layer][leaf]
          for i in range(len(members)):
            if layer in frozen:  # bit for bit, the planted -0.0 included
              np.testing.assert_array_equal(_bits(got[i]), _bits(start[i]), err_msg=layer)
            else:
              assert np.mean(got[i] != start[i]) > 0.5, (spec, layer, leaf)


class _Block(nnx.Module):
  def __init__(self, cin, cout, rngs):
    self.conv = nnx.Conv(cin, cout, (3, 3), rngs=rngs)
    self.bn = nnx.BatchNorm(cout, momentum=0.9, rngs=rngs)

  def __call__(self, x, *, train):
    return jax.nn.relu(self.bn(self.conv(x), use_running_average=not train))


class _TinyBN(base.Model):
  """Two conv + batch-norm layers and a linear head: the smallest model with statistics."""

  def __init__(self, *, num_classes, rngs):
    self.backbone = nnx.Dict(a=_Block(3, 4, rngs), b=_Block(4, 4, rngs))
    self.head = nnx.Dict(logits=nnx.Linear(4, num_classes, rngs=rngs))
    self.layers = self.taps = ("a", "b", "logits")

  def _forward(self, x, *, train, dropout_key):
    x = self.backbone["a"](x, train=train)
    yield "a", x
    x = self.backbone["b"](x, train=train)
    yield "b", x
    yield "logits", self.head["logits"](x.mean(axis=(1, 2)))


if "tiny_bn_test" not in base.names():
  base.register("tiny_bn_test")(_TinyBN)


def _train_tiny_group(
  members, state, target, info, *, num_devices=1, seed_parallel="vmap", margins=False,
  eval_train_examples=None,
):  # fmt: skip
  """`train_group` of the tiny batch-norm model: Adam 1e-2, batch 16, evaluation batch 16."""
  graphdef, params, rest = state
  trainer = finetune.Trainer(
    graphdef=graphdef,
    layers=info.layers,
    optimizer="adam",
    optimizer_kwargs={"learning_rate": 1e-2},
    batch_size=16,
    devices=jax.local_devices()[:num_devices],
    seed_parallel=seed_parallel,
    steps_per_epoch=target.steps_per_epoch,
    margins=margins,
  )
  return finetune.train_group(
    members,
    params=params,
    rest=rest,
    target=target,
    trainer=trainer,
    eval_examples=None,
    eval_train_examples=eval_train_examples,
    eval_batch_size=16,
  )


def test_frozen_batch_norm_layers_keep_their_statistics():
  rng = np.random.default_rng(0)
  x = rng.normal(size=(64, 6, 6, 3)).astype(np.float32)
  y = rng.integers(0, 3, size=64).astype(np.int32)
  target = finetune.Target("noise", 3, (x, y), (x[:16], y[:16]), 4, 3, [0, 3])
  info = plan.arch_info("tiny_bn_test", num_classes=3, model_kwargs={})
  members = [  # layer "a" frozen
    plan.Member("random_init", "tiny_bn_test", 0, 0, None, 1, 0, ("frozen",)),
    plan.Member("scratch", "tiny_bn_test", 0, 0, None, 1, 0, ("frozen",)),
  ]
  graphdef, params, rest = transfer.initial_state(members, workdir=".", num_classes=3)
  # Statistics that are not the init's (as a trained checkpoint's would be).
  rest = jax.tree.map(lambda a: a + rng.uniform(0.5, 1.0, a.shape).astype(a.dtype), rest)
  _, final = _train_tiny_group(members, (graphdef, params, rest), target, info)
  for layer in ("a", "b"):
    for stat in ("mean", "var"):
      got, start = final["rest"]["backbone"][layer]["bn"][stat], rest["backbone"][layer]["bn"][stat]
      if layer == "a":
        np.testing.assert_array_equal(_bits(got), _bits(start))
      else:  # a trained layer moves its running statistics towards the batch's
        assert np.all(got != start), (layer, stat)
    for kp, start in jax.tree_util.tree_flatten_with_path(params["backbone"][layer])[0]:
      got = final["params"]["backbone"][layer]
      for k in kp:
        got = got[k.key]
      assert np.array_equal(_bits(got), _bits(start)) == (layer == "a"), (layer, kp)


@pytest.mark.parametrize("seed_parallel, num_devices", [("vmap", 1), ("devices", 2)])
def test_binary_target_rows_carry_the_auroc_of_the_final_models(seed_parallel, num_devices):
  # 50 test clips at eval batch 16: the last batch is padded, and padding must not count.
  rng = np.random.default_rng(1)
  x = rng.normal(size=(114, 6, 6, 3)).astype(np.float32)
  y = (x.mean(axis=(1, 2, 3)) + 0.1 * rng.normal(size=114) > 0).astype(np.int32)
  target = finetune.Target("binary", 2, (x[:64], y[:64]), (x[64:], y[64:]), 4, 3, [0, 3])
  info = plan.arch_info("tiny_bn_test", num_classes=2, model_kwargs={})
  members = [
    plan.Member("random_init", "tiny_bn_test", 0, 0, None, 0, 0, ("full",)),
    plan.Member("scratch", "tiny_bn_test", 0, 0, None, 0, 0, ("full",)),
  ]
  graphdef, params, rest = transfer.initial_state(members, workdir=".", num_classes=2)
  curves, final = _train_tiny_group(
    members,
    (graphdef, params, rest),
    target,
    info,
    num_devices=num_devices,
    seed_parallel=seed_parallel,
    margins=True,
    eval_train_examples=40,
  )
  test_x, test_y = target.test
  for i in range(len(members)):
    p_i, r_i = (jax.tree.map(lambda a, i=i: a[i], final[k]) for k in ("params", "rest"))
    logits = np.asarray(functional.apply(graphdef, p_i, r_i, test_x, train=False)[0], np.float64)
    want = pairwise_auroc(logits[:, 1] - logits[:, 0], test_y)
    assert 0.0 < want < 1.0
    assert curves[3]["test_auroc"][i] == pytest.approx(want, abs=1e-12)
    assert 0.0 <= curves[3]["train_auroc"][i] <= 1.0
  # The two members differ, so their AUROCs come from their own margins.
  assert curves[3]["test_auroc"][0] != curves[3]["test_auroc"][1]
  rows = finetune.curve_rows(members[0], "full", target, curves, 0)
  assert [r["test_auroc"] for r in rows] == [curves[s]["test_auroc"][0] for s in (0, 3)]


MODE_ROWS = (("full", 0), ("head", 2), ("last_block", 1), ("frozen", 1))


def test_job_rows_cover_every_unit_at_the_schedule(grouped):
  workdir, summary = grouped
  assert summary["eval_steps"] == EVAL_STEPS and summary["total_steps"] == 30
  # One group per freezing (0, 1, 2 layers); last_block and frozen=1 share one trajectory.
  assert (summary["groups"], summary["members"], summary["units"]) == (3, 16, 21)
  df = results.load(workdir, "finetune")
  units = df.groupby(["source", "seed", "step", "mode", "frozen_layers", "ft_seed"])
  want = {("mnist", s, t, m, f, 0) for s, t in CKPTS for m, f in MODE_ROWS}
  want |= {("random_init", 0, 0, m, f, 0) for m, f in MODE_ROWS}
  want |= {("scratch", 0, 0, "full", 0, 0)}
  assert set(units.groups) == want
  assert df.test_auroc.isna().all() and df.train_auroc.isna().all()  # ten classes: no AUROC
  for _, rows in units:
    assert rows.ft_step.tolist() == EVAL_STEPS
    np.testing.assert_allclose(rows.ft_epoch, np.asarray(EVAL_STEPS) / 10)
  done = results.Store(workdir).done_keys("finetune")
  keys = [plan.done_key(s, ARCH, se, st, "mnist", m, f, fs) for s, se, st, m, f, fs in want]
  assert done == {results.key_str(k) for k in keys}
  assert (workdir / "logs" / "finetune.log").stat().st_size > 0
  assert json.loads((workdir / "config.json").read_text())[-1]["job"] == "finetune"
  rows = _rows(workdir)
  last = rows.xs(30, level="ft_step")
  assert last.test_acc.min() > 0.2  # it learned something (chance is 0.1)
  full = last.xs("full", level="mode").test_loss.to_numpy()
  # Same trajectory, same numbers; more freezing, less fitting on the whole.
  frozen1 = last.xs("frozen", level="mode").test_loss.to_numpy()
  np.testing.assert_array_equal(last.xs("last_block", level="mode").test_loss, frozen1)
  head = last.xs("head", level="mode").test_loss.to_numpy()
  assert np.mean(full[:-1] < head) > 0.5  # full also holds the scratch row, last


def test_step0_metrics_are_those_of_backbone_plus_shared_head(grouped, data_dir):
  from jtransfer import data as datasets

  workdir, _ = grouped
  x, y = datasets.load("mnist", "test", data_dir=data_dir)
  x, y = datasets.normalize("mnist", x)[:64], y[:64]
  graphdef, head, _ = functional.init(ARCH, num_classes=10, seed=plan.head_seed(0))
  rows = _rows(workdir)
  for seed, step in CKPTS:
    path = checkpointing.checkpoint_path(workdir, "mnist", ARCH, seed, step)
    params = {"backbone": checkpointing.restore_backbone(path), "head": head["head"]}
    logits = np.asarray(functional.apply(graphdef, params, {}, x)[0], np.float64)
    z = logits - logits.max(-1, keepdims=True)
    nll = -(z - np.log(np.exp(z).sum(-1, keepdims=True)))[np.arange(64), y]
    for mode, frozen in (("full", 0), ("head", 2)):
      row = rows.loc[("mnist", ARCH, seed, step, "mnist", mode, frozen, 0, 0)]
      np.testing.assert_allclose(row.test_loss, nll.mean(), rtol=1e-5)
      np.testing.assert_allclose(row.test_acc, (logits.argmax(-1) == y).mean())


# One checkpoint per group, on one device (as the SIGKILL child below, which shares the compile).
ONE_BY_ONE = dict(KW, modes=["full"], baselines=False, group_size=1, num_devices=1)


def test_vmapped_group_equals_one_by_one(grouped, tmp_path, data_dir):
  workdir, _ = grouped
  one = tmp_path / "one"
  _make_zoo(one)
  summary = run_job(finetune, workdir=one, steps=[7], data_dir=data_dir, **ONE_BY_ONE)
  assert summary["groups"] == 2
  b = _rows(one)
  a = _rows(workdir).loc[b.index]
  assert len(b) == 2 * len(EVAL_STEPS)
  np.testing.assert_allclose(b.test_loss, a.test_loss, rtol=2e-4, atol=1e-5)
  assert np.abs(a.test_acc - b.test_acc).max() <= 1 / 64 + 1e-9  # at most one borderline image


def test_sequential_members_equal_the_vmapped_group(grouped, tmp_path, data_dir):
  # "sequential": each member of a group trained alone in turn, its batch split over the 8
  # devices. Two freezings with baselines (groups of 5 and 6): the same rows, batch metrics
  # and final states as the vmapped groups of the `grouped` job.
  workdir, _ = grouped
  seq = tmp_path / "seq"
  _make_zoo(seq)
  summary = run_job(
    finetune,
    workdir=seq,
    modes=("full", "head"),
    seed_parallel="sequential",
    data_dir=data_dir,
    **KW,
  )
  assert (summary["groups"], summary["members"], summary["units"]) == (2, 11, 11)
  b = _rows(seq)
  a = _rows(workdir).loc[b.index]
  assert len(b) == 11 * len(EVAL_STEPS)
  np.testing.assert_allclose(b.test_loss, a.test_loss, rtol=2e-4, atol=1e-5)
  assert np.abs(a.test_acc - b.test_acc).max() <= 1 / 64 + 1e-9  # at most one borderline image
  # The batch metrics go to each member's own unit, at the same steps as in a group.
  mb = results.load(seq, "metrics").query("name == 'train/loss'")
  ma = results.load(workdir, "metrics").query("name == 'train/loss'")
  ma = ma[ma.unit.isin(set(mb.unit))]
  key = ["unit", "step"]
  mb, ma = mb.sort_values(key).reset_index(drop=True), ma.sort_values(key).reset_index(drop=True)
  assert len(mb) > 0 and mb[key].equals(ma[key])
  np.testing.assert_allclose(mb.value, ma.value, rtol=2e-4, atol=1e-5)


def test_sequential_group_stacks_the_members_own_runs(zoo, data_dir):
  # `train_group` in mode "sequential" on a group of three equals each member's own group of
  # one (vmap, the batch over the devices): curves and final states stacked in member order.
  target = finetune.load_target(
    "mnist", data_dir=data_dir, train_examples=320, batch_size=32, duration={"steps": 4}
  )
  info = plan.arch_info(ARCH, num_classes=10, model_kwargs={})
  members = plan.plan_members(
    zoo_lib.select(zoo)[:3], info=info, modes=("full",), ft_seeds=(0,), baselines=False
  )
  graphdef, params, rest = transfer.initial_state(members, workdir=zoo, num_classes=10)

  def trainer(mode):
    return finetune.Trainer(
      graphdef=graphdef, layers=info.layers, optimizer="adam",
      optimizer_kwargs={"learning_rate": 1e-2}, batch_size=32, devices=jax.local_devices(),
      seed_parallel=mode, steps_per_epoch=10,
    )  # fmt: skip

  kw = dict(target=target, eval_examples=64, eval_train_examples=None, eval_batch_size=64)
  logged = {}
  curves, final = finetune.train_group(
    members,
    params=params,
    rest=rest,
    trainer=trainer("sequential"),
    on_train_metrics=lambda step, host: logged.update({step: host}),
    **kw,
  )
  assert sorted(curves) == [0, 1, 3, 4] and curves[4]["test_acc"].shape == (3,)
  assert sorted(logged) == sorted(tracking.record_steps(4)) and logged[0]["loss"].shape == (3,)
  alone = trainer("vmap")
  for i, m in enumerate(members):
    take = lambda t, i=i: jax.tree.map(lambda a: a[i : i + 1], t)  # noqa: E731
    c_i, f_i = finetune.train_group([m], params=take(params), rest=take(rest), trainer=alone, **kw)
    for step in curves:
      for name, value in c_i[step].items():
        np.testing.assert_allclose(curves[step][name][i], value[0], rtol=1e-6, err_msg=name)
    jax.tree.map(lambda a, b, i=i: np.testing.assert_array_equal(a[i], b[0]), final, f_i)
  # "sequential" reaches the engine as one-member "vmap" stacks (`engine.stacks`): no mesh.
  with pytest.raises(ValueError, match="'sequential' has no mesh"):
    trainer("sequential").get(0, 3, "sequential")


def test_rerun_skips_finished_units(grouped, data_dir):
  workdir, _ = grouped
  before = results.load(workdir, "finetune")
  again = run_job(finetune, workdir=workdir, modes=MODES, data_dir=data_dir, **KW)
  assert again["groups"] == 0 and again["units"] == 0
  after = results.load(workdir, "finetune")
  assert after.created_at.tolist() == before.created_at.tolist()
  # A new mode only runs its new units: frozen=2 (= what "head" freezes) for 4 checkpoints and
  # random_init, one group; same trajectories as "head" in the same layout, so the same numbers.
  more = run_job(
    finetune,
    workdir=workdir,
    modes=("frozen=1", "frozen=2"),
    data_dir=data_dir,
    seed_parallel="devices",
    **KW,
  )
  assert (more["groups"], more["units"]) == (1, 5)
  rows = _rows(workdir)
  np.testing.assert_array_equal(
    rows.xs(("frozen", 2), level=("mode", "frozen_layers")).test_loss.to_numpy(),
    rows.xs(("head", 2), level=("mode", "frozen_layers")).test_loss.to_numpy(),
  )


_CHILD = """
import json, sys
from jtransfer.jobs import context as job
from jtransfer.jobs import finetune
finetune.run(*job.build(finetune.FinetuneConfig, json.loads(sys.argv[1])))
"""


def _done_count(workdir):
  path = workdir / results.MAIN_FILE
  if not path.exists():
    return 0
  conn = sqlite3.connect(f"file:{path}?mode=ro", uri=True, timeout=30)
  try:
    return conn.execute("SELECT COUNT(*) FROM done WHERE job = 'finetune'").fetchone()[0]
  except sqlite3.OperationalError:  # tables not created yet
    return 0
  finally:
    conn.close()


@pytest.mark.slow  # SIGKILLs a subprocess
def test_sigkill_leaves_complete_curves_and_a_resume_finishes(grouped, tmp_path, data_dir):
  workdir = tmp_path / "killed"
  _make_zoo(workdir)
  kw = dict(ONE_BY_ONE, data_dir=str(data_dir))  # four groups of one checkpoint
  env = dict(os.environ, JTRANSFER_QUIET="1", XLA_FLAGS="")  # the child: one CPU device
  child = subprocess.Popen(
    [sys.executable, "-c", _CHILD, json.dumps(dict(kw, workdir=str(workdir)))],
    env=env,
    stdout=subprocess.DEVNULL,
    stderr=subprocess.PIPE,
  )
  t0 = time.time()
  while _done_count(workdir) < 1:
    assert child.poll() is None, child.stderr.read().decode()[-3000:]
    assert time.time() - t0 < 300, "the child did not finish a group in 300 s"
    time.sleep(0.01)
  child.send_signal(signal.SIGKILL)
  child.wait()
  child.stderr.close()

  killed = results.load(workdir, "finetune")  # the store opens
  done = results.Store(workdir).done_keys("finetune")
  assert 1 <= len(done) < 4, "the kill came after the job had finished"
  # Only complete curves, each with its done marker.
  units = killed.groupby(["source", "seed", "step", "mode", "frozen_layers", "ft_seed"])
  assert len(units) == len(done)
  for (src, seed, step, mode, fl, fs), rows in units:
    assert rows.ft_step.tolist() == EVAL_STEPS
    assert results.key_str(plan.done_key(src, ARCH, seed, step, "mnist", mode, fl, fs)) in done

  summary = run_job(finetune, workdir=workdir, **kw)
  assert summary["groups"] == 4 - len(done)
  final = _rows(workdir)
  assert len(final) == 4 * len(EVAL_STEPS)
  # Rows written before the kill are kept; every curve equals the grouped run's.
  before = killed.set_index(list(results.KEYS["finetune"]))
  np.testing.assert_array_equal(final.loc[before.index].created_at, before.created_at)
  ref = _rows(grouped[0]).loc[final.index]
  np.testing.assert_allclose(final.test_loss, ref.test_loss, rtol=2e-4, atol=1e-5)


def _shared_init_zoo(workdir, *, nudge_backbone: bool):
  """Seed-0 step-0 checkpoints of three sources from one initialisation: "fashion_mnist" with
  another head (replaced by fine-tuning, so it still shares the start), "kmnist" identical or,
  with `nudge_backbone`, one backbone weight moved by 1e-3 (a different start)."""
  store = results.Store(workdir)
  _, params, _ = functional.init(ARCH, num_classes=10, seed=0)
  for source in ("mnist", "fashion_mnist", "kmnist"):
    p = jax.tree.map(np.array, params)
    if source == "fashion_mnist":
      p["head"] = jax.tree.map(lambda a: a + 1.0, p["head"])
    if source == "kmnist" and nudge_backbone:
      p["backbone"]["conv1"]["kernel"].flat[0] += 1e-3
    _write(workdir, store, source, 0, 0, p)
  store.close()


@pytest.mark.parametrize("nudge_backbone", [False, True])
def test_checkpoints_with_one_backbone_are_trained_once_and_equal_training_each(
  tmp_path, data_dir, nudge_backbone
):
  kw = dict(KW, modes=["full"], baselines=False, num_devices=1)
  shared = tmp_path / "shared"
  _shared_init_zoo(shared, nudge_backbone=nudge_backbone)
  summary = run_job(finetune, workdir=shared, data_dir=data_dir, **kw)
  # mnist is trained; fashion_mnist (same backbone, other head) copies it; kmnist copies it
  # only when its backbone is byte-identical.
  assert summary["members"] == (2 if nudge_backbone else 1)
  rows = _rows(shared).reset_index()
  assert sorted(rows.source.unique()) == ["fashion_mnist", "kmnist", "mnist"]
  curve = lambda s: rows[rows.source == s].sort_values("ft_step")  # noqa: E731
  cols = ["ft_step", "test_acc", "test_loss"]
  assert (
    curve("fashion_mnist")[cols].to_numpy().tolist() == curve("mnist")[cols].to_numpy().tolist()
  )
  assert (curve("kmnist").test_loss.to_numpy() != curve("mnist").test_loss.to_numpy()).any() == (
    nudge_backbone
  )
  # Each copy's rows are those that training it alone gives (deterministic CPU steps).
  for source in ("fashion_mnist", "kmnist"):
    alone = tmp_path / f"alone_{source}"
    _shared_init_zoo(alone, nudge_backbone=nudge_backbone)
    run_job(finetune, workdir=alone, data_dir=data_dir, sources=[source], **kw)
    own = _rows(alone).reset_index().sort_values("ft_step")
    np.testing.assert_allclose(own.test_loss, curve(source).test_loss, rtol=1e-6, atol=1e-7)
    np.testing.assert_array_equal(own.test_acc, curve(source).test_acc)
  # The copies' batch metrics are written under their own units too.
  units = set(results.load(shared, "metrics").query("name == 'train/loss'").unit)
  assert {u.split("/")[1] for u in units} == {"mnist", "fashion_mnist", "kmnist"}
  # A rerun finds every unit done.
  assert run_job(finetune, workdir=shared, data_dir=data_dir, **kw)["members"] == 0


def test_backbones_past_the_hold_budget_are_read_again_and_give_the_same_curves(
  tmp_path, data_dir, monkeypatch
):
  """With no room to hold backbones, every pending checkpoint is read once for the content
  check and once per member (two here: two freezings), the curves are bit-identical to a run
  that held them all, and nothing is held once the job ends."""
  from jtransfer.train import finetune_plan

  kw = {**KW, "duration": {"steps": 3}, "train_examples": 64, "eval_examples": 32,
        "modes": ("full", "frozen=1"), "ft_seeds": [0], "baselines": False}  # fmt: skip
  held, tight = tmp_path / "held", tmp_path / "tight"
  for w in (held, tight):
    _make_zoo(w)
  run_job(finetune, workdir=held, data_dir=data_dir, **kw)
  reads, made = [], []
  restore, init = checkpointing.restore, finetune_plan.Restored.__init__
  monkeypatch.setattr(
    checkpointing, "restore", lambda path, **k: reads.append(path) or restore(path, **k)
  )
  monkeypatch.setattr(finetune_plan, "HOLD_BYTES", 0)
  monkeypatch.setattr(
    finetune_plan.Restored,
    "__init__",
    lambda self, *a, **k: made.append(self) or init(self, *a, **k),
  )
  run_job(finetune, workdir=tight, data_dir=data_dir, **kw)
  paths = sorted(str(tight / e.path) for e in zoo_lib.select(tight))
  assert sorted(map(str, reads)) == sorted(paths * 3)
  assert [r.held_bytes for r in made] == [0] and made[0]._trees == {}
  cols = ["source", "seed", "step", "mode", "ft_step", "test_acc", "test_loss"]
  a, b = (results.load(w, "finetune")[cols].sort_values(cols[:5], ignore_index=True)
          for w in (held, tight))  # fmt: skip
  pd.testing.assert_frame_equal(a, b)


def test_each_pending_checkpoint_is_read_once_per_job(tmp_path, data_dir, monkeypatch):
  """A counting double around `checkpointing.restore` (which every read goes through: the
  content check, the backbone and its statistics): one read per checkpoint with work left, however
  many modes, ft_seeds and freezings start from it; none for a finished one."""
  _make_zoo(tmp_path)
  reads = []
  restore = checkpointing.restore
  monkeypatch.setattr(
    checkpointing, "restore", lambda path, **kw: reads.append(path) or restore(path, **kw)
  )
  kw = {**KW, "duration": {"steps": 3}, "train_examples": 64, "eval_examples": 32}
  run_job(finetune, workdir=tmp_path, modes=("full", "frozen=1"), ft_seeds=[0, 1],
          data_dir=data_dir, baselines=False, **kw)  # fmt: skip
  paths = [tmp_path / e.path for e in zoo_lib.select(tmp_path)]
  assert sorted(map(str, reads)) == sorted(map(str, paths))
  assert len(results.load(tmp_path, "finetune")) == len(paths) * 2 * 2 * 4  # 4 evaluations
  reads.clear()
  run_job(finetune, workdir=tmp_path, modes=("full", "frozen=1"), ft_seeds=[0, 1],
          data_dir=data_dir, baselines=False, **kw)  # fmt: skip
  assert reads == []  # nothing left to do: nothing read

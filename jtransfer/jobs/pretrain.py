"""Pre-training: a zoo of `num_seeds` models of one architecture on one source task.

  run(PretrainConfig(source="mnist", arch="cnn", num_seeds=10, duration={"epochs": 100}), rt)

`run(config, runtime)` plans (data sizes -> schedule -> seeds still to train), places (mesh,
data, model, optimizer, restore or init, step fns) and loops, saving at the checkpoint steps.
Every seed has its own init, data order and dropout keys as functions of (seed, step), so a
seed trained stacked with others, alone, or resumed gives the same checkpoints; how the seeds
share the devices is `seed_parallel` (`jtransfer.runtime.stacking`, `engine.run_members`).

Checkpoints go to `<workdir>/zoo/<source>/<arch>/seed_<k>/<step>/` at
`schedule.log_checkpoint_steps` with their zoo record; each is written with its `checkpoints`
row and done marker `(source, arch, seed, step)` in one transaction. The zoo on disk is the
truth: checkpoints the store does not know are indexed first, so a lost store is rebuilt. The
latest full train state per seed (`<workdir>/train_state/...`) is what a rerun resumes from.
"""

from __future__ import annotations

import dataclasses
import functools
import logging
import os
import pathlib
import shutil
import time
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from jtransfer import data as datasets
from jtransfer.data import augment as augment_lib
from jtransfer.data import batches, pipeline
from jtransfer.jobs import context as job
from jtransfer.models import base, functional
from jtransfer.runtime import stacking
from jtransfer.runtime.progress import progress
from jtransfer.store import checkpointing, results, tracking, zoo
from jtransfer.store import workdir as workdir_files
from jtransfer.train import engine, optim, schedule
from jtransfer.train import step as step_lib

JOB = "pretrain"

log = logging.getLogger("jtransfer.pretrain")


# -- small pieces ---------------------------------------------------------------------------


def done_key(source: str, arch: str, seed: int, step: int) -> tuple:
  """The done key of one checkpoint: the tuple of what names the unit (as in every job)."""
  return (source, arch, int(seed), int(step))


def train_state_dir(workdir, source: str, arch: str, seed: int) -> pathlib.Path:
  return pathlib.Path(workdir) / "train_state" / source / arch / f"seed_{seed}"


# -- train state on disk (resume) -----------------------------------------------------------


def _save_train_state(workdir, source, arch, seeds, step, host_state) -> None:
  """Each seed's (params, rest, opt_state) leaves at `step`; older states are removed after."""
  for i, seed in enumerate(seeds):
    leaves = jax.tree.leaves(jax.tree.map(lambda a, i=i: a[i], host_state))
    root = train_state_dir(workdir, source, arch, seed)
    path = root / str(step)
    if not checkpointing.exists(path):
      checkpointing.save(
        path,
        {"leaves": {f"{j:05d}": leaf for j, leaf in enumerate(leaves)}},
        extra={"step": step, "seed": seed},
        process_local=jax.process_count() > 1,
      )
    for old in root.iterdir():
      if old.name != str(step) and old.name.isdigit() and int(old.name) < step:
        shutil.rmtree(old, ignore_errors=True)


def _latest_common_train_state(workdir, source, arch, seeds) -> int | None:
  common = None
  for seed in seeds:
    root = train_state_dir(workdir, source, arch, seed)
    steps = set()
    if root.is_dir():
      steps = {int(p.name) for p in root.iterdir() if p.name.isdigit() and checkpointing.exists(p)}
    common = steps if common is None else common & steps
  return max(common) if common else None


def _restore_train_state(workdir, source, arch, seeds, step, template):
  """Stacked host state from disk, checked against the fresh `template` (same config)."""
  flat_template, treedef = jax.tree.flatten(jax.tree.map(lambda a: a[0], template))
  per_seed = []
  for seed in seeds:
    restored = checkpointing.restore(train_state_dir(workdir, source, arch, seed) / str(step))
    leaves = restored["leaves"]
    if len(leaves) != len(flat_template):
      raise ValueError(
        f"train state of seed {seed} at step {step} has {len(leaves)} arrays, the model and "
        f"optimizer need {len(flat_template)}: the config changed; use a new workdir"
      )
    arrays = [np.asarray(leaves[f"{j:05d}"]) for j in range(len(flat_template))]
    for a, t in zip(arrays, flat_template, strict=True):
      if a.shape != t.shape:
        raise ValueError(
          f"train state of seed {seed} has an array of shape {a.shape} where {t.shape} is "
          "expected: the config changed; use a new workdir"
        )
    per_seed.append(jax.tree.unflatten(treedef, arrays))
  return jax.tree.map(lambda *xs: np.stack(xs), *per_seed)


def _index_zoo(store, workdir, done: set[str], source, arch, seeds) -> None:
  """Registers checkpoints that are in the zoo but not in the store (e.g. after the store was
  lost): the zoo on disk is the truth, the `checkpoints` table and done markers its index.
  `done`: the job's done keys, updated with those it marks."""
  for entry in zoo.select(workdir, sources=[source], archs=[arch], seeds=seeds):
    key = done_key(source, arch, entry.seed, entry.step)
    if results.key_str(key) not in done:
      store.mark_done(JOB, key, {"checkpoints": [entry.index_row(workdir)]})
      done.add(results.key_str(key))
      log.info("indexed zoo checkpoint %s", entry.path)


# -- the config -----------------------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class PretrainConfig:
  """What one pre-training run computes: the pre-train stage's schema (types, defaults, checks).

  duration: `{"epochs": x}`, `{"steps": n}` or `{"examples": n}`.
  optimizer_kwargs: for `optim.make_optimizer` (learning_rate, momentum, decay_every_epochs...).
  eval_*_examples: the fixed train subset / test prefix evaluated at checkpoints (None = all).
  train_examples: keep only the first n training examples (quick runs and tests).
  seed_parallel: how the seeds share the devices (`jtransfer.runtime.stacking`).
  save_every_steps: also save the train state this often, to bound work lost to a crash.
  log_every_steps: the batch loss and accuracy of every seed are recorded at these steps and at
    log-spaced ones (`tracking.record_steps`): store table `metrics`, and TensorBoard under
    `<workdir>/tensorboard/pretrain` unless `tensorboard=False`.
  profile_steps: > 0 writes a `jax.profiler` trace of that many steps (after the compiling
    one) to `<workdir>/profile/pretrain` ("sequential": of the first seed trained).
  input_pipeline: "memory" puts the whole (normalised) training set on every device and steps
    send indices; "stream" reads each step's rows through the grain pipeline
    (`jtransfer.data.pipeline`): same batches, same checkpoints, and the training set need not
    fit on a device.
  augment: the source's declared augmentation (`data.augment.for_dataset`); "stream" only.
  checkpoint_steps: save at exactly these steps (and the final one) instead of the log
    schedule, e.g. for a zoo whose sources differ in size.
  """

  source: str
  arch: str = "cnn"
  num_seeds: int = 1
  seed_offset: int = 0
  batch_size: int = 64
  duration: dict[str, float] = dataclasses.field(default_factory=lambda: {"epochs": 100})
  optimizer: str = "adam"
  optimizer_kwargs: dict[str, Any] = dataclasses.field(
    default_factory=lambda: {"learning_rate": 1e-4}
  )
  model_kwargs: dict[str, Any] = dataclasses.field(default_factory=dict)
  eval_batch_size: int = 1000
  eval_train_examples: int | None = 10_000
  eval_test_examples: int | None = None
  train_examples: int | None = None
  seed_parallel: str = "auto"
  save_every_steps: int | None = None
  log_every_steps: int = 50
  tensorboard: bool = True
  profile_steps: int = 0
  input_pipeline: str = "memory"
  augment: bool = False
  checkpoint_steps: tuple[int, ...] | None = None

  def __post_init__(self):
    set_ = functools.partial(object.__setattr__, self)
    for name in ("duration", "optimizer_kwargs", "model_kwargs"):
      set_(name, dict(getattr(self, name)))
    if self.checkpoint_steps is not None:
      set_("checkpoint_steps", tuple(int(s) for s in self.checkpoint_steps))
    if self.num_seeds < 1 or self.seed_offset < 0:
      raise ValueError(
        f"need num_seeds >= 1 and seed_offset >= 0, got {self.num_seeds}, {self.seed_offset}"
      )
    for name in ("batch_size", "eval_batch_size"):
      if getattr(self, name) < 1:
        raise ValueError(f"{name} must be >= 1, got {getattr(self, name)}")
    engine.check_duration("duration", self.duration)
    set_("seed_parallel", stacking.canonical(self.seed_parallel, name="seed_parallel"))
    pipeline.check_job_options(self.input_pipeline, self.augment, self.source)

  @property
  def seeds(self) -> list[int]:
    return list(range(self.seed_offset, self.seed_offset + self.num_seeds))


# -- the job --------------------------------------------------------------------------------


def run(config: PretrainConfig, runtime: job.Runtime | str | os.PathLike) -> dict[str, Any]:
  """Trains the config's seeds (this process's share) in `runtime`'s workdir; a summary dict."""
  t_start = time.time()
  runtime = job.runtime(runtime)
  source, arch = config.source, config.arch
  with (
    workdir_files.locked(runtime.workdir, JOB),
    job.open_context(runtime, JOB, config, logger=log) as ctx,
  ):
    # Several processes (hosts): each trains its share of the seeds on its own devices and
    # writes its own store shard; nothing crosses hosts.
    plan = _plan(config, ctx)
    if not plan.seeds:
      log.info("%s/%s: all %d seeds already done, nothing to do", source, arch, len(plan.all_seeds))
      return {**plan.summary(), "seed_parallel": None, "steps_run": 0, "images_per_second": 0.0}
    ctx.record_config()
    summary = _train(config, ctx, plan)
    summary["total_seconds"] = time.time() - t_start
    log.info("%s/%s done: %s", source, arch, summary)
    return summary


# -- planning: data sizes, schedule, which seeds still need training ------------------------


@dataclasses.dataclass(frozen=True)
class _Plan:
  source: str
  arch: str
  num_classes: int
  train: tuple[np.ndarray, np.ndarray] | None  # host arrays, normalised ("memory")
  train_source: Any  # the random-access training rows, raw ("stream"; else None)
  transform: Any  # raw rows -> model inputs ("stream"; else None)
  test: tuple[np.ndarray, np.ndarray]
  steps_per_epoch: int
  total_steps: int
  checkpoint_steps: list[int]
  all_seeds: list[int]  # this process's share of the seeds
  seeds: list[int]  # those whose final checkpoint is not done yet
  done: frozenset[str]  # the job's done keys when the run started (`results.key_str`)

  def summary(self) -> dict[str, Any]:
    return {
      "source": self.source,
      "arch": self.arch,
      "seeds": self.all_seeds,
      "trained_seeds": self.seeds,
      "total_steps": self.total_steps,
      "steps_per_epoch": self.steps_per_epoch,
      "checkpoint_steps": self.checkpoint_steps,
    }


def _plan(config: PretrainConfig, ctx: job.Context) -> _Plan:
  """Loads the data (its size decides the schedule), indexes the zoo, finds the seeds to train."""
  source, arch = config.source, config.arch
  train_source = transform = None
  if config.input_pipeline == "stream":
    num_classes, train_source, test = _stream_source(config, ctx.data_dir)
    train, transform, num_train = None, pipeline.normalizer(source), len(train_source)
  else:
    num_classes, train, test = engine.load_source(source, ctx.data_dir, config.train_examples)
    num_train = len(train[0])
  spe = batches.steps_per_epoch(num_train, config.batch_size)
  total_steps = schedule.to_steps(
    config.duration, steps_per_epoch=spe, batch_size=config.batch_size
  )
  all_seeds = ctx.share(config.seeds)  # from the runtime's first_process
  done = set(ctx.done())
  _index_zoo(ctx.store, ctx.workdir, done, source, arch, all_seeds)
  final = lambda s: results.key_str(done_key(source, arch, s, total_steps))  # noqa: E731
  todo = [s for s in all_seeds if final(s) not in done]
  return _Plan(
    source=source,
    arch=arch,
    num_classes=num_classes,
    train=train,
    train_source=train_source,
    transform=transform,
    test=test,
    steps_per_epoch=spe,
    total_steps=total_steps,
    checkpoint_steps=_checkpoint_steps(config, spe, total_steps),
    all_seeds=all_seeds,
    seeds=todo,
    done=frozenset(done),
  )


def _checkpoint_steps(config: PretrainConfig, spe: int, total_steps: int) -> list[int]:
  if config.checkpoint_steps is None:
    return schedule.log_checkpoint_steps(spe, total_steps, include_final=True)
  steps = [int(s) for s in config.checkpoint_steps]
  if steps != sorted(set(steps)) or not steps or steps[0] < 0 or steps[-1] > total_steps:
    raise ValueError(
      f"checkpoint_steps must be increasing steps in [0, {total_steps}] (the run's length), "
      f"got {list(config.checkpoint_steps)}"
    )
  return steps if steps[-1] == total_steps else [*steps, total_steps]


def _stream_source(config: PretrainConfig, data_dir):
  """(num_classes, raw random-access training rows, normalised test arrays) for "stream"."""
  name = config.source
  src, _ = pipeline.job_source(name, "train", data_dir=data_dir, examples=config.train_examples)
  test_x, test_y = datasets.load(name, "test", data_dir=data_dir)
  test = (np.asarray(datasets.normalize(name, test_x), np.float32), np.asarray(test_y, np.int32))
  return datasets.get(name).num_classes, src, test


# -- placement: mesh, data on the devices, model, optimizer, restored state -----------------


@dataclasses.dataclass
class _Setup:
  """Everything the loop needs, on the devices."""

  mode: str
  mesh: Any
  place: engine.Placement
  train_x: jax.Array | None  # "memory": the whole training set, replicated (steps send indices)
  train_y: jax.Array | None
  eval_sets: dict[str, engine.EvalSet]
  model_kwargs: dict[str, Any]  # as built (input hyperparameters fitted to the source)
  state: dict  # stacked {"params", "rest", "opt_state"}
  dropout_seeds: jax.Array
  start_step: int
  train_fn: Any
  eval_fn: Any


def _place(config: PretrainConfig, ctx: job.Context, plan: _Plan, mode: str) -> _Setup:
  seeds, backend = plan.seeds, jax.default_backend()
  mesh = engine.make_mesh(
    mode, num_seeds=len(seeds), batch_size=config.batch_size, devices=ctx.devices
  )
  place = engine.placement(mesh, mode)
  log.info(
    "%s/%s seeds %s: %d steps (%d/epoch), checkpoints at %s, seed_parallel=%s, mesh %s",
    plan.source, plan.arch, seeds, plan.total_steps, plan.steps_per_epoch,
    plan.checkpoint_steps, mode, dict(mesh.shape),
  )  # fmt: skip
  test_x, test_y = plan.test
  if plan.train is not None:
    train_x, train_y = plan.train
    train_subset = (train_x, train_y, config.eval_train_examples, engine.EVAL_SUBSET_SEED)
  else:  # the same fixed rows, read from the source (nothing else of the train split is held)
    sub = pipeline.eval_subset(
      plan.train_source, config.eval_train_examples, engine.EVAL_SUBSET_SEED, plan.transform
    )
    train_subset = (*sub, None, None)
  eval_sets = engine.eval_sets(
    {"train": train_subset, "test": (test_x, test_y, config.eval_test_examples, None)},
    batch_size=config.eval_batch_size,
    place=place,
  )
  # Input hyperparameters (an audio model's clip length, sample rate) follow the source.
  model_kwargs = base.fit_to_data(plan.arch, config.model_kwargs, datasets.get(plan.source))
  graphdef, params, rest = functional.init_stacked(
    plan.arch, num_classes=plan.num_classes, seeds=seeds, **model_kwargs
  )
  optimizer_spec = (
    config.optimizer,
    tuple(sorted({**config.optimizer_kwargs, "steps_per_epoch": plan.steps_per_epoch}.items())),
  )
  tx = optim.make_optimizer(optimizer_spec[0], **dict(optimizer_spec[1]))
  opt_state = jax.jit(jax.vmap(tx.init))(params)  # one compile, not one per eager op
  state, start_step = _restore_or_init(ctx.workdir, plan, params, rest, opt_state)
  inputs = "indices" if plan.train is not None else "batch"
  train_fn, eval_fn = engine.build_fns(graphdef, optimizer_spec, mesh, mode, backend, inputs=inputs)
  train_x = train_y = None
  if plan.train is not None:
    train_x, train_y = jax.device_put(plan.train, place.replicated)
  return _Setup(
    mode=mode,
    mesh=mesh,
    place=place,
    train_x=train_x,
    train_y=train_y,
    eval_sets=eval_sets,
    model_kwargs=model_kwargs,
    state=jax.device_put(state, place.state),
    dropout_seeds=jax.device_put(np.asarray(seeds, np.int32), place.state),  # seed s: its own
    start_step=start_step,
    train_fn=train_fn,
    eval_fn=eval_fn,
  )


def _restore_or_init(workdir, plan: _Plan, params, rest, opt_state) -> tuple[dict, int]:
  """(host or fresh stacked state, its step): the latest train state all seeds have, else 0."""
  state = {"params": params, "rest": rest, "opt_state": opt_state}
  latest = _latest_common_train_state(workdir, plan.source, plan.arch, plan.seeds)
  if latest is None:
    return state, 0
  state = _restore_train_state(workdir, plan.source, plan.arch, plan.seeds, latest, state)
  log.info("restored the train state of seeds %s at step %d", plan.seeds, latest)
  return state, latest


# -- checkpoint saves -----------------------------------------------------------------------


def _evaluate(setup: _Setup, state) -> dict[str, list[float]]:
  """{"<split>_loss" / "<split>_acc": one value per seed} on the fixed eval sets."""
  metrics = {}
  for name, eval_set in setup.eval_sets.items():
    parts = engine.eval_outputs(setup.eval_fn, state, eval_set.batches)
    loss, acc = step_lib.mean_loss_and_accuracy(parts)
    metrics[f"{name}_loss"], metrics[f"{name}_acc"] = loss.tolist(), acc.tolist()
  return metrics


def _save_checkpoint(ctx: job.Context, plan: _Plan, setup: _Setup, writer, step: int, state):
  """Evaluates, writes each seed's zoo checkpoint and its row + done marker, then the train
  state (for resume) and the eval scalars."""
  metrics = _evaluate(setup, state)
  host = jax.device_get(state)
  for i, seed in enumerate(plan.seeds):
    key = done_key(plan.source, plan.arch, seed, step)
    if results.key_str(key) in plan.done:  # a resumed run: saved before
      continue
    path = checkpointing.checkpoint_path(ctx.workdir, plan.source, plan.arch, seed, step)
    if checkpointing.exists(path):  # a rerun after a crash recomputes the same params
      entry = zoo.read_entry(path)
    else:
      entry = zoo.write_entry(
        ctx.workdir,
        zoo.Entry(
          source=plan.source, arch=plan.arch, seed=seed, step=step,
          num_classes=plan.num_classes, model_kwargs=setup.model_kwargs,
          index=plan.checkpoint_steps.index(step), epoch=step / plan.steps_per_epoch,
          metrics={k: v[i] for k, v in metrics.items()},
        ),
        checkpointing.with_rest(
          jax.tree.map(lambda a, i=i: a[i], host["params"]),
          jax.tree.map(lambda a, i=i: a[i], host.get("rest") or {}),
        ),
        process_local=ctx.process_count > 1,
      )  # fmt: skip
    ctx.store.mark_done(JOB, key, {"checkpoints": [entry.index_row(ctx.workdir)]})
  _save_train_state(ctx.workdir, plan.source, plan.arch, plan.seeds, step, host)
  for i, seed in enumerate(plan.seeds):
    writer.scalars(_unit(plan, seed), step, {f"eval/{k}": v[i] for k, v in metrics.items()})
  writer.flush()
  log.info(
    "step %d (%.3g epochs): test acc %s",
    step,
    step / plan.steps_per_epoch,
    ", ".join(f"seed {s}={a:.4f}" for s, a in zip(plan.seeds, metrics["test_acc"], strict=True)),
  )


def _unit(plan: _Plan, seed: int) -> str:
  return f"{plan.source}/{plan.arch}/seed_{seed}"


# -- the loop -------------------------------------------------------------------------------


def _train(config: PretrainConfig, ctx: job.Context, plan: _Plan) -> dict[str, Any]:
  """Trains the plan's seeds in the resolved layout (`engine.run_members`); the summary."""
  mode = engine.resolve_seed_parallel(
    config.seed_parallel, backend=jax.default_backend(), num_seeds=len(plan.seeds)
  )
  if mode == "sequential":
    log.info("seed_parallel=sequential: seeds %s one after another", plan.seeds)

  def train(seeds: list[int], layout: str) -> dict[str, Any]:
    # Each stack: its own restore, loop, checkpoints and train-state saves, as if run alone;
    # one profiler trace, of the first stack.
    first = seeds[0] == plan.seeds[0]
    stack_config = config if first else dataclasses.replace(config, profile_steps=0)
    return _train_stack(stack_config, ctx, dataclasses.replace(plan, seeds=seeds), layout)

  parts = engine.run_members(mode, plan.seeds, train)
  start = min(p["start_step"] for p in parts)
  seconds = sum(p["seconds"] for p in parts)
  return {
    **plan.summary(),
    "seed_parallel": mode,
    "mesh": parts[0]["mesh"],
    "start_step": start,
    "steps_run": plan.total_steps - start,  # the steps the zoo advanced
    "seconds": seconds,
    "images_per_second": sum(p["images"] for p in parts) / seconds if seconds > 0 else 0.0,
  }


def _train_stack(config: PretrainConfig, ctx: job.Context, plan: _Plan, mode: str):
  """Places the plan's seeds as one stack in `mode`, runs the loop; its mesh, start step,
  seconds and images."""
  setup = _place(config, ctx, plan, mode)
  writer = tracking.MetricWriter(
    ctx.workdir, JOB, ctx.store, tensorboard=config.tensorboard, process_index=ctx.process_index
  )
  if ctx.process_index == 0:
    writer.config(workdir_files.config_record(config))
  try:
    seconds = _loop(config, ctx, plan, setup, writer)
  finally:
    writer.close()
  steps_run = plan.total_steps - setup.start_step
  return {
    "mesh": dict(setup.mesh.shape),
    "start_step": setup.start_step,
    "seconds": seconds,
    "images": steps_run * config.batch_size * len(plan.seeds),
  }


def _loop(config: PretrainConfig, ctx: job.Context, plan: _Plan, setup: _Setup, writer) -> float:
  """Steps `start_step .. total_steps`, saving at the checkpoint steps; seconds of the loop."""
  start, state = setup.start_step, setup.state
  ckpt_set = set(plan.checkpoint_steps)
  save = lambda step, state: _save_checkpoint(ctx, plan, setup, writer, step, state)  # noqa: E731
  if start in ckpt_set:
    with tracking.compile_note(None, "eval step (and the first checkpoint)", first=True):
      save(start, state)
  inputs = _inputs(config, plan, setup, start)
  record_at = tracking.record_steps(plan.total_steps, config.log_every_steps)
  steps = range(start, plan.total_steps)
  bar = None
  if ctx.show_progress:
    bar = progress(steps, total=len(steps), desc=f"{JOB} {plan.source}")
  profiler = tracking.Profiler(ctx.workdir / "profile" / JOB, start + 1, config.profile_steps)
  t_loop, pending = time.time(), None
  for step in bar or steps:
    data = next(inputs)
    profiler.step(step, state)
    with tracking.compile_note(bar, "train step", first=step == start):
      state, metrics = setup.train_fn(state, setup.dropout_seeds, *data, jnp.int32(step))
    # Record the previous record step's metrics: it is finished by now, so no pipeline stall.
    if pending is not None:
      _record(plan, writer, bar, *pending)
    pending = (step, metrics) if step in record_at else None
    done_steps = step + 1
    if done_steps in ckpt_set:
      save(done_steps, state)
    elif config.save_every_steps and done_steps % config.save_every_steps == 0:
      host = jax.device_get(state)
      _save_train_state(ctx.workdir, plan.source, plan.arch, plan.seeds, done_steps, host)
  if pending is not None:
    _record(plan, writer, bar, *pending)
  inputs.close()  # stops the pipeline's reading threads
  profiler.stop(state)
  if bar is not None:
    bar.close()
  jax.block_until_ready(state)
  return time.time() - t_loop


def _inputs(config: PretrainConfig, plan: _Plan, setup: _Setup, start: int):
  """The train step's data arguments for steps `start, start + 1, ...`, on the devices:
  (train_x, train_y, idx) in memory, (x, y) streamed. Either way member seed `s` sees the rows
  of `batches.epoch_permutation(s, epoch)` at every step, so the two train alike."""
  if plan.train is None:
    batch_iter = pipeline.train_batches(
      plan.train_source,
      plan.seeds,
      batch_size=config.batch_size,
      start_step=start,
      stop_step=plan.total_steps,
      transform=plan.transform,
      augment=augment_lib.for_dataset(plan.source) if config.augment else None,
    )
    yield from pipeline.device_prefetch(batch_iter, setup.place.batch_index)
    return
  stream = batches.index_stream(
    plan.seeds, num_examples=len(plan.train[0]), batch_size=config.batch_size, start_step=start
  )
  for idx in stream:
    yield setup.train_x, setup.train_y, jax.device_put(idx, setup.place.batch_index)


def _record(plan: _Plan, writer, bar, step: int, metrics) -> None:
  """Each seed's batch loss and accuracy at `step` (a finished step: no stall)."""
  host = jax.device_get(metrics)  # [S] per name
  for i, seed in enumerate(plan.seeds):
    writer.scalars(
      _unit(plan, seed),
      step,
      {"train/loss": host["loss"][i], "train/accuracy": host["accuracy"][i]},
    )
  if bar is not None:
    bar.set_postfix(loss=np.mean(host["loss"]), acc=np.mean(host["accuracy"]))

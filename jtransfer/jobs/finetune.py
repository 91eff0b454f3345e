"""Fine-tuning: the ground-truth transfer curve of every (checkpoint, target, mode, ft_seed).

  run(FinetuneConfig(target="fashion_mnist", modes=("full", "head"), ft_seeds=(0,)), rt)

`finetune_plan` types the config and cuts the units into groups, `transfer` gives each member
its checkpoint's backbone and the new head shared per `ft_seed`; this module holds the target
data, a group's train loop (`train_group`), the curves' rows and `run`. Members of one group
(one architecture, `ft_seed` and freezing) share batches and dropout masks, so a member trained
in a group equals the member trained alone; `seed_parallel` says how they share the devices.

Evaluations at the log-spaced steps of the run give test (and optionally train and validation,
`val_fraction`) accuracy and loss, plus the AUROC of the logit margin on binary targets. Modes
that freeze the same layers are trained once and written under each name; baselines are
"scratch" and "random_init". A unit's curve and its done marker are written in one transaction
at the end of its group, so a rerun skips done units and redoes at most the running group.
"""

from __future__ import annotations

import dataclasses
import logging
import os
import time
from collections.abc import Mapping, Sequence
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from jtransfer import data as datasets
from jtransfer import metrics as metrics_lib
from jtransfer.data import augment as augment_lib
from jtransfer.data import batches, pipeline
from jtransfer.jobs import context as job
from jtransfer.runtime.progress import progress
from jtransfer.store import tracking
from jtransfer.store import workdir as workdir_files
from jtransfer.train import engine, optim, schedule, transfer, validation
from jtransfer.train import step as step_lib
from jtransfer.train.finetune_plan import (
  JOB,
  FinetuneConfig,
  Member,
  Plan,
  data_seed,
  dropout_seed,
  make_plan,
  metric_unit,
)

# Re-exported: studies and their tests import these two from the job.
from jtransfer.train.finetune_plan import arch_info as arch_info
from jtransfer.train.finetune_plan import head_seed as head_seed

_VAL_SPLIT_SEED = 0  # one validation split per target, shared by every model and ft_seed

log = logging.getLogger("jtransfer.finetune")


# -- the target -----------------------------------------------------------------------------


@dataclasses.dataclass
class Target:
  """The target task's arrays (host) and its step counts.

  Streamed (`input_pipeline="stream"`): `train` is None and the train rows are read from
  `train_source` (raw) through `transform` (normalisation), `augment` applied first.
  """

  name: str
  num_classes: int
  train: tuple[np.ndarray, np.ndarray] | None
  test: tuple[np.ndarray, np.ndarray]
  steps_per_epoch: int
  total_steps: int
  eval_steps: list[int]
  val: tuple[np.ndarray, np.ndarray] | None = None  # held out of `train` (val_fraction)
  train_source: Any = None
  transform: Any = None
  augment: augment_lib.Augment | None = None

  @property
  def num_train(self) -> int:
    return len(self.train[0]) if self.train is not None else len(self.train_source)


def eval_schedule(
  num_examples: int, *, batch_size: int, duration: Mapping[str, float], eval_final: bool = True
) -> tuple[int, int, list[int]]:
  """(steps per epoch, total steps, evaluation steps) of a fine-tune run.

  The thesis' log-spaced schedule cut at the run's length; `eval_final` adds the last step when
  it is not on the schedule already.
  """
  spe = batches.steps_per_epoch(num_examples, batch_size)
  total = schedule.to_steps(duration, steps_per_epoch=spe, batch_size=batch_size)
  return spe, total, schedule.log_checkpoint_steps(spe, total, include_final=eval_final)


def load_target(
  name: str,
  *,
  data_dir=None,
  train_examples: int | None = None,
  batch_size: int,
  duration: Mapping[str, float],
  eval_final: bool = True,
  val_fraction: float | None = None,
  input_pipeline: str = "memory",
  augment: bool = False,
) -> Target:
  """The normalised target task (train and test split) and its fine-tune schedule; with
  `val_fraction`, a stratified validation split held out of train (the schedule counts the
  remaining train examples). `input_pipeline="stream"`: the train split as a random-access
  source (`_stream_target`), the same rows in the same order."""
  pipeline.check_job_options(input_pipeline, augment, name)
  if input_pipeline == "stream":
    return _stream_target(
      name,
      data_dir=data_dir,
      train_examples=train_examples,
      batch_size=batch_size,
      duration=duration,
      eval_final=eval_final,
      val_fraction=val_fraction,
      augment=augment,
    )
  num_classes, train, test = engine.load_source(name, data_dir, train_examples)
  val = None
  if val_fraction:
    keep, held = validation.split(train[1], fraction=val_fraction, seed=_VAL_SPLIT_SEED)
    train, val = (train[0][keep], train[1][keep]), (train[0][held], train[1][held])
  spe, total, eval_steps = eval_schedule(
    len(train[0]), batch_size=batch_size, duration=duration, eval_final=eval_final
  )
  return Target(name, num_classes, train, test, spe, total, eval_steps, val)


def _stream_target(
  name, *, data_dir, train_examples, batch_size, duration, eval_final, val_fraction, augment
) -> Target:
  """`load_target` for "stream": the raw train rows (the validation rows held out as in memory,
  from the labels only, and read whole: they are evaluated every time), the test split loaded."""
  src, transform = pipeline.job_source(name, "train", data_dir=data_dir, examples=train_examples)
  val = None
  if val_fraction:
    keep, held = validation.split(
      pipeline.labels_of(src), fraction=val_fraction, seed=_VAL_SPLIT_SEED
    )
    vx, vy = pipeline.read_rows(src, held)
    src, val = pipeline.Rows(src, keep), (transform(vx), np.asarray(vy, np.int32))
  test_x, test_y = datasets.load(name, "test", data_dir=data_dir)
  test = (np.asarray(datasets.normalize(name, test_x), np.float32), np.asarray(test_y, np.int32))
  spe, total, eval_steps = eval_schedule(
    len(src), batch_size=batch_size, duration=duration, eval_final=eval_final
  )
  return Target(
    name,
    datasets.get(name).num_classes,
    None,
    test,
    spe,
    total,
    eval_steps,
    val,
    train_source=src,
    transform=transform,
    augment=augment_lib.for_dataset(name) if augment else None,
  )


# -- one group ------------------------------------------------------------------------------


class Trainer:
  """Compiled step / eval functions per (freezing, group size), reused across groups."""

  def __init__(
    self,
    *,
    graphdef,
    layers,
    optimizer,
    optimizer_kwargs,
    batch_size,
    devices,
    seed_parallel,
    steps_per_epoch,
    margins: bool = False,
    inputs: str = "indices",
  ):
    self.graphdef, self.layers, self.margins, self.inputs = graphdef, layers, margins, inputs
    self.optimizer, self.optimizer_kwargs = optimizer, dict(optimizer_kwargs)
    self.batch_size, self.devices, self.seed_parallel = batch_size, devices, seed_parallel
    self.spe = steps_per_epoch
    self.backend = jax.default_backend()
    self._cache: dict[tuple, Any] = {}

  def mode(self, group: int) -> str:
    """The resolved `seed_parallel` for a group of `group` members."""
    return engine.resolve_seed_parallel(self.seed_parallel, backend=self.backend, num_seeds=group)

  def get(self, frozen_layers: int, group: int, mode: str) -> dict[str, Any]:
    """{place, train, eval, init} for a stack of `group` members that freeze `frozen_layers`
    layers, laid out in `mode` (a stack's layout from `engine.stacks`)."""
    key = (frozen_layers, group, mode)
    if key not in self._cache:
      mesh = engine.make_mesh(
        mode, num_seeds=group, batch_size=self.batch_size, devices=self.devices
      )
      # The engine's step builder takes the optimiser as a hashable (name, kwargs) spec.
      spec = transfer.optimizer_spec(
        self.optimizer,
        self.optimizer_kwargs,
        steps_per_epoch=self.spe,
        frozen_layers=frozen_layers,
        layers=self.layers,
      )
      tx = optim.make_optimizer(spec[0], **dict(spec[1]))
      train_fn, eval_fn = engine.build_fns(
        self.graphdef, spec, mesh, mode, self.backend, margins=self.margins, inputs=self.inputs
      )
      self._cache[key] = dict(
        place=engine.placement(mesh, mode),
        train=train_fn,
        eval=eval_fn,
        init=jax.jit(jax.vmap(tx.init)),
      )
    return self._cache[key]


def _eval_sets(target: Target, *, place, eval_examples, eval_train_examples, batch_size):
  splits = {"test": (*target.test, eval_examples, None)}
  if target.val is not None:  # every validation example, fixed order
    splits["val"] = (*target.val, None, None)
  if eval_train_examples and target.train is not None:
    splits["train"] = (*target.train, eval_train_examples, engine.EVAL_SUBSET_SEED)
  elif eval_train_examples:  # the same rows, read from the source
    sub = pipeline.eval_subset(
      target.train_source, eval_train_examples, engine.EVAL_SUBSET_SEED, target.transform
    )
    splits["train"] = (*sub, None, None)
  return engine.eval_sets(splits, batch_size=batch_size, place=place)


def _evaluate(eval_fn, state, eval_sets) -> dict[str, np.ndarray]:
  """{`<split>_loss`, `<split>_acc` (and `<split>_auroc` with margins): [G]} of every set."""
  out = {}
  for name, eval_set in eval_sets.items():
    parts = engine.eval_outputs(eval_fn, state, eval_set.batches)
    out[f"{name}_loss"], out[f"{name}_acc"] = step_lib.mean_loss_and_accuracy(parts)
    if "margin" in parts[0]:  # [G, B] per batch -> [G, examples], padding dropped
      margin = np.concatenate([p["margin"] for p in parts], axis=1)[:, eval_set.valid]
      out[f"{name}_auroc"] = _auroc_or_nan(margin, eval_set.labels)
  return out


@dataclasses.dataclass
class _Group:
  """A group on the devices: compiled fns, train arrays, dropout seeds, eval sets."""

  fns: dict[str, Any]
  size: int  # members
  train: tuple | None  # (x, y), replicated (None: streamed)
  dropout_seeds: Any
  eval_sets: dict
  frozen_stats: transfer.FrozenStats | None


def train_group(
  members: Sequence[Member],
  *,
  params,
  rest,
  target: Target,
  trainer: Trainer,
  eval_examples: int | None,
  eval_train_examples: int | None,
  eval_batch_size: int,
  bar=None,
  on_train_metrics=None,
  note_compile: bool = False,
) -> tuple[dict[int, dict[str, np.ndarray]], dict[str, Any]]:
  """Fine-tunes one group; returns ({ft_step: {metric: [G]}}, final host params and rest).

  `params` / `rest`: the group's `transfer.initial_state`, of the trainer's model (graphdef).
  All members share `ft_seed` and the freezing (`members[0]`). `on_train_metrics(step,
  {"loss": [G], "accuracy": [G]})` receives the batch metrics at `tracking.record_steps`, read
  one step late (no host sync in the loop); `note_compile` says when the step compiles.
  """
  ft_seed, frozen = members[0].ft_seed, members[0].frozen_layers
  if any(m.ft_seed != ft_seed or m.frozen_layers != frozen for m in members):
    raise ValueError("a group shares one ft_seed and one frozen_layers")
  evals = dict(
    eval_examples=eval_examples,
    eval_train_examples=eval_train_examples,
    batch_size=eval_batch_size,
  )
  layout = trainer.mode(len(members))
  stacks = engine.stacks(layout, range(len(members)))
  whole = len(stacks) == 1
  # The target's arrays are placed once, for the layout every stack shares.
  data = _place_data(target, trainer.get(frozen, len(stacks[0][0]), stacks[0][1])["place"], evals)
  logged = []

  def train(idx: list[int], stack_layout: str):
    seen: dict[int, Any] = {}
    record = on_train_metrics if whole or on_train_metrics is None else seen.__setitem__
    logged.append(seen)
    ms, p, r = members, params, rest
    if not whole:
      take = lambda tree: jax.tree.map(lambda a: a[idx[0] : idx[-1] + 1], tree)  # noqa: E731
      ms, p, r = [members[i] for i in idx], take(params), take(rest)
    first = note_compile and idx[0] == 0
    return _train(ms, p, r, target, trainer, stack_layout, data, bar, record, first)

  parts = engine.run_members(layout, range(len(members)), train)
  if whole:
    return parts[0]
  if on_train_metrics is not None:  # as one stack reports them: [G] per step
    for step in logged[0]:
      on_train_metrics(step, _concat([seen[step] for seen in logged]))
  curves = {step: _concat([c[step] for c, _ in parts]) for step in parts[0][0]}
  return curves, _concat([final for _, final in parts])


def _place_data(target: Target, place, evals: dict) -> tuple:
  """(the replicated train arrays or None when streamed, the eval sets) for `place`."""
  train = None if target.train is None else jax.device_put(target.train, place.replicated)
  return train, _eval_sets(target, place=place, **evals)


def _train(
  members, params, rest, target, trainer, layout, data, bar, on_train_metrics, note_compile
):
  """`train_group` of one stack in `layout`, its data already placed (`_place_data`)."""
  ft_seed, frozen = members[0].ft_seed, members[0].frozen_layers
  fns = trainer.get(frozen, len(members), layout)
  place = fns["place"]
  group = _Group(
    fns=fns,
    size=len(members),
    train=data[0],
    # Every member draws the same dropout masks: one dropout seed per ft_seed.
    dropout_seeds=jax.device_put(
      np.full((len(members),), dropout_seed(ft_seed), np.int32), place.state
    ),
    eval_sets=data[1],
    frozen_stats=transfer.FrozenStats.make(
      rest, frozen_layers=frozen, layers=trainer.layers, sharding=place.state
    ),
  )
  state = {"params": params, "rest": rest, "opt_state": fns["init"](params)}
  state = jax.device_put(state, place.state)
  inputs = _inputs(group, target, data_seed(ft_seed), trainer.batch_size)
  try:
    return _steps(group, state, inputs, target, bar, on_train_metrics, note_compile)
  finally:
    inputs.close()  # stops the pipeline's reading threads


def _concat(trees):
  """Per-member host trees ([1, ...] leaves) -> one [G, ...] tree."""
  return jax.tree.map(lambda *xs: np.concatenate([np.asarray(x) for x in xs]), *trees)


def _inputs(group: _Group, target: Target, seed: int, batch_size: int):
  """The train step's data arguments, on the devices, step after step: (train_x, train_y, idx)
  in memory, (x, y) streamed; every member sees the same batch (order from `seed`)."""
  place, g = group.fns["place"], group.size
  if target.train is None:
    batch_iter = pipeline.train_batches(
      target.train_source,
      [seed],
      batch_size=batch_size,
      start_step=0,
      stop_step=target.total_steps,
      transform=target.transform,
      augment=target.augment,
    )
    yield from pipeline.device_prefetch(batch_iter, place.batch_index, repeat=g)
    return
  stream = batches.index_stream([seed], num_examples=target.num_train, batch_size=batch_size)
  for idx in stream:
    idx = np.repeat(idx, g, axis=0)  # every member sees the same batch
    yield (*group.train, jax.device_put(idx, place.batch_index))


def _steps(group: _Group, state, inputs, target: Target, bar, on_train_metrics, note_compile):
  """The train loop of `train_group`: a step per batch, evaluations at the schedule."""
  fns = group.fns
  curves: dict[int, dict[str, np.ndarray]] = {}
  eval_steps = set(target.eval_steps)
  if 0 in eval_steps:
    with tracking.compile_note(bar, "evaluation", first=note_compile):
      curves[0] = _evaluate(fns["eval"], state, group.eval_sets)
  record_at = tracking.record_steps(target.total_steps) if on_train_metrics else frozenset()
  pending = None
  for step in range(target.total_steps):
    data = next(inputs)
    with tracking.compile_note(bar, "fine-tune step", first=note_compile and step == 0):
      state, metrics = fns["train"](state, group.dropout_seeds, *data, jnp.int32(step))
    if pending is not None:  # the previous record step has finished by now
      on_train_metrics(pending[0], jax.device_get(pending[1]))
    pending = (step, metrics) if step in record_at else None
    if group.frozen_stats is not None:
      state = {**state, "rest": group.frozen_stats.restore(state["rest"])}
    if step + 1 in eval_steps:
      curves[step + 1] = _evaluate(fns["eval"], state, group.eval_sets)
    if bar is not None:
      bar.update(1)
  if pending is not None:
    on_train_metrics(pending[0], jax.device_get(pending[1]))
  final = jax.device_get({"params": state["params"], "rest": state["rest"]})
  return curves, final


# -- curves and rows ------------------------------------------------------------------------


def _auroc_or_nan(margin: np.ndarray, labels: np.ndarray) -> np.ndarray:
  """Per-member AUROC of the logit margins [G, N]; NaN (stored as NULL) when an eval set holds
  one class only, e.g. a small train subset."""
  if labels.min() == labels.max():
    return np.full(len(margin), np.nan)
  return np.array([metrics_lib.auroc(m, labels) for m in margin])


def _optional(metrics: Mapping[str, np.ndarray], name: str, index: int) -> float | None:
  value = metrics[name][index] if name in metrics else np.nan
  return None if np.isnan(value) else float(value)


def curve_rows(member: Member, mode: str, target: Target, curves, index: int) -> list[dict]:
  rows = []
  for ft_step in sorted(curves):
    metrics = curves[ft_step]
    rows.append(
      dict(
        source=member.source,
        arch=member.arch,
        seed=member.seed,
        step=member.step,
        target=target.name,
        mode=mode,
        frozen_layers=member.frozen_layers,
        ft_seed=member.ft_seed,
        ft_step=ft_step,
        ft_epoch=ft_step / target.steps_per_epoch,
        test_acc=float(metrics["test_acc"][index]),
        test_loss=float(metrics["test_loss"][index]),
        train_acc=float(metrics["train_acc"][index]) if "train_acc" in metrics else None,
        train_loss=float(metrics["train_loss"][index]) if "train_loss" in metrics else None,
        test_auroc=_optional(metrics, "test_auroc", index),
        train_auroc=_optional(metrics, "train_auroc", index),
        val_acc=_optional(metrics, "val_acc", index),
        val_loss=_optional(metrics, "val_loss", index),
        val_auroc=_optional(metrics, "val_auroc", index),
      )
    )
  return rows


# -- the job --------------------------------------------------------------------------------


def run(config: FinetuneConfig, runtime: job.Runtime | str | os.PathLike) -> dict[str, Any]:
  """Fine-tunes the selected checkpoints (and baselines) on the config's target; a summary."""
  t_start = time.time()
  runtime = job.runtime(runtime)
  with (
    workdir_files.locked(runtime.workdir, JOB),
    job.open_context(runtime, JOB, config, logger=log) as ctx,
  ):
    return _run(ctx, t_start)


def _run(ctx: job.Context, t_start: float) -> dict[str, Any]:
  c: FinetuneConfig = ctx.config
  target = load_target(
    c.target,
    data_dir=ctx.data_dir,
    train_examples=c.train_examples,
    batch_size=c.batch_size,
    duration=c.duration,
    eval_final=c.eval_final,
    val_fraction=c.val_fraction,
    input_pipeline=c.input_pipeline,
    augment=c.augment,
  )
  plan = make_plan(
    c,
    ctx.workdir,
    num_classes=target.num_classes,
    store=ctx.store,
    done=ctx.done(),
    share=ctx.share,
  )
  summary = {
    "target": target.name,
    "steps_per_epoch": target.steps_per_epoch,
    "total_steps": target.total_steps,
    "eval_steps": target.eval_steps,
    "groups": len(plan.groups),
    "members": sum(len(g) for g in plan.groups),
    "units": sum(len(m.modes) for g in plan.groups for m in g),
    "failed": len(plan.failed),
  }
  if not plan.groups:
    log.info("finetune on %s: every unit already done", target.name)
    return {**summary, "seconds": 0.0, "images_per_second": 0.0}
  ctx.record_config()
  log.info(
    "finetune on %s: %d groups, %d members, %d units; %d steps (%d/epoch), evals at %s",
    target.name,
    summary["groups"],
    summary["members"],
    summary["units"],
    target.total_steps,
    target.steps_per_epoch,
    target.eval_steps,
  )
  images, seconds = _train_groups(ctx, plan, target)
  summary.update(
    seconds=seconds,
    images_per_second=images / seconds if seconds > 0 else 0.0,
    total_seconds=time.time() - t_start,
  )
  log.info("finetune on %s done: %s", target.name, summary)
  return summary


def _train_groups(ctx: job.Context, plan: Plan, target: Target) -> tuple[int, float]:
  """Trains and writes this process's groups in turn; returns (images, seconds)."""
  c: FinetuneConfig = ctx.config
  writer = tracking.MetricWriter(
    ctx.workdir, JOB, ctx.store, tensorboard=c.tensorboard, process_index=ctx.process_index
  )
  if ctx.process_index == 0:
    writer.config(workdir_files.config_record(c))
  try:
    bar = None
    if ctx.show_progress:
      # Each stack of a group (`engine.stacks`: one per member for "sequential") takes its own
      # pass over the steps.
      backend = jax.default_backend()
      layout = lambda g: engine.resolve_seed_parallel(  # noqa: E731
        c.seed_parallel, backend=backend, num_seeds=len(g)
      )
      runs = sum(len(engine.stacks(layout(g), g)) for g in plan.groups)
      total = runs * target.total_steps
      bar = progress(total=total, desc=f"{JOB} {target.name}", unit="step")
    loop = _Loop(ctx, plan, target, writer, bar)
    t_loop, images = time.time(), 0
    for gi, group in enumerate(plan.groups):
      images += loop.train(group, f"{gi + 1}/{len(plan.groups)}")
    if bar is not None:
      bar.close()
    return images, time.time() - t_loop
  finally:
    writer.close()


@dataclasses.dataclass
class _Loop:
  """What the groups of a run share: the context, plan, target, writer and compiled steps."""

  ctx: job.Context
  plan: Plan
  target: Target
  writer: tracking.MetricWriter
  bar: Any
  trainers: dict[str, Trainer] = dataclasses.field(default_factory=dict)

  def train(self, group: list[Member], label: str) -> int:
    """Trains one group, writes its curves and done markers; returns the images it saw."""
    c, target = self.ctx.config, self.target
    info = self.plan.infos[group[0].arch]
    graphdef, params, rest = transfer.initial_state(
      group,
      workdir=self.ctx.workdir,
      num_classes=target.num_classes,
      model_kwargs=info.model_kwargs,
      checkpoints=self.plan.checkpoints,
    )
    new_trainer = info.arch not in self.trainers
    if new_trainer:
      self.trainers[info.arch] = Trainer(
        graphdef=graphdef,
        layers=info.layers,
        optimizer=c.optimizer,
        optimizer_kwargs=c.optimizer_kwargs,
        batch_size=c.batch_size,
        devices=self.ctx.devices,
        seed_parallel=c.seed_parallel,
        steps_per_epoch=target.steps_per_epoch,
        margins=target.num_classes == 2,  # binary targets: AUROC in every curve row
        inputs="batch" if target.train is None else "indices",
      )
    if self.bar is not None:
      self.bar.set_postfix(group=label, frozen=group[0].frozen_layers)
    units = [metric_unit(m, target.name) for m in group]
    # Members that share a start with a trained one get its curves, rows and scalars.
    copied = [(i, cp) for i, m in enumerate(group) for cp in self.plan.copies.get(m, ())]
    copy_units = [(i, metric_unit(cp, target.name)) for i, cp in copied]

    def on_train_metrics(step, host):
      for i, unit in [*enumerate(units), *copy_units]:
        values = {"train/loss": host["loss"][i], "train/accuracy": host["accuracy"][i]}
        self.writer.scalars(unit, step, values)

    curves, _ = train_group(
      group,
      params=params,
      rest=rest,
      target=target,
      trainer=self.trainers[info.arch],
      eval_examples=c.eval_examples,
      eval_train_examples=c.eval_train_examples,
      eval_batch_size=c.eval_batch_size,
      bar=self.bar,
      on_train_metrics=on_train_metrics,
      note_compile=new_trainer,
    )
    self._write(
      [*group, *(cp for _, cp in copied)],
      [*units, *(u for _, u in copy_units)],
      [*range(len(group)), *(i for i, _ in copied)],
      curves,
    )
    final = curves[max(curves)]["test_acc"]
    log.info(
      "group %s (%s, ft_seed %d, frozen %d): final test acc %s",
      label,
      info.arch,
      group[0].ft_seed,
      group[0].frozen_layers,
      ", ".join(f"{m.source}/{m.seed}/{m.step}={a:.4f}" for m, a in zip(group, final, strict=True)),
    )
    return target.total_steps * c.batch_size * len(group)

  def _write(self, members: list[Member], units: list[str], rows: list[int], curves) -> None:
    """The eval scalars, then the curves and done markers in one transaction; member k's
    values are row `rows[k]` of `curves` (a copy reads the row of the member it copies)."""
    store, name = self.ctx.store, self.target.name
    for ft_step, values in curves.items():
      for unit, i in zip(units, rows, strict=True):
        self.writer.scalars(unit, ft_step, {f"eval/{k}": v[i] for k, v in values.items()})
    with store.transaction():
      for m, i in zip(members, rows, strict=True):
        for mode, key in zip(m.modes, m.unit_keys(name), strict=True):
          store.mark_done(JOB, key, {"finetune": curve_rows(m, mode, self.target, curves, i)})
        if m.path is not None:
          store.clear_failure(JOB, (m.source, m.arch, m.seed, m.step), target=name)
    self.writer.flush()

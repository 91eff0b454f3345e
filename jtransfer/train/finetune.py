"""Fine-tuning: the ground-truth transfer curve of every (checkpoint, target, mode, ft_seed).

  run(workdir="/tmp/zoo", target="fashion_mnist", modes=("full", "head"), ft_seeds=(0,),
      duration={"epochs": 100}, batch_size=64, optimizer="adam",
      optimizer_kwargs={"learning_rate": 1e-4})

One top-down loop (big_vision `train.py`): data -> units -> for every group: mesh -> model and
optimizer -> init from the checkpoints -> step fn -> loop with evaluations -> write the curves.

Transfer (thesis 2.3.3). Each checkpoint's backbone is read with a partial restore
(`checkpointing.restore_backbone`) and gets a NEW head. The head's initialisation depends only on
`ft_seed` (it is the head of `functional.init(arch, num_classes=<target classes>,
seed=head_seed(ft_seed))`), so every checkpoint of a run starts from the same head and the
curves differ only by what was transferred. Batch statistics are not in the checkpoints (they
hold `params` only), so models with batch norm start from fresh statistics.

Modes (`freezing`): "full", "head", "last_block", "frozen=<l>" / "frozen=all"; frozen layers are
frozen through `optax.multi_transform` + `optax.set_to_zero()`, and the running statistics of
frozen batch-norm layers are kept as they were. Rows store `mode` and `frozen_layers` (the
number of frozen leading layers: 0 for "full"). Two modes that freeze the same layers (e.g.
"full" and "frozen=0", or "head" and "frozen=2" for the CNN) are trained once and written
under both names.

Baselines (same table, `baselines=True`), with `seed = ft_seed`, `step = 0`:
- source "scratch": a whole model initialised from `scratch_seed(ft_seed)` and trained on the
  target like the others (mode "full").
- source "random_init": a random backbone (`random_backbone_seed(ft_seed)`) with the shared head,
  under every requested mode (the thesis' "untrained random initialized model" fine-tuned with
  the same rules).

Evaluation: test accuracy and loss (and, with `eval_train_examples`, on a fixed train subset)
at `schedule.log_checkpoint_steps` of the fine-tune run (0, 1, 3, 10, 30, 100, 300 batches,
1, 3, 10, 30, 100 epochs, truncated to the run's length; plus the final step when
`eval_final`). A binary target's rows also carry `test_auroc` / `train_auroc`: the ROC area of
the logit margin z1 - z0 (class 1 = positive; `jtransfer.metrics.auroc`), from the same eval
pass (the NC paper's metric for its COVID-19 target).

Validation (`val_fraction`, off by default). A class-stratified fraction of the target's train
split (`train.validation.split`, a fixed seed: the same examples for every model and ft_seed) is
held out: the models train on the rest and every evaluation also reports `val_acc`, `val_loss`
(and `val_auroc` for a binary target), so a checkpoint can be selected on validation data as the
NC paper does (`analysis.auroc.selected_rows`). Rows of runs without it store NULL there. The
done key does not include it: use a fresh workdir when switching it on.

Batching. The units of one architecture, one `ft_seed` and one freezing are trained in groups
of up to `group_size` in ONE jitted step (params stacked on a leading member axis; the
training engine's step builder and device placement shared with pre-training,
`engine.build_fns`). Every member of a group sees the same batches (data order from
`data_seed(ft_seed)`) and the same dropout masks (every member's dropout seed is
`dropout_seed(ft_seed)`), so a member trained in a group equals the member trained alone.

Resume. A unit (checkpoint, target, mode, frozen_layers, ft_seed) is written with its done
marker (`finetune`, `[source, arch, seed, step, target, mode, frozen_layers, ft_seed]`) in one
transaction once its whole curve is evaluated; the units of a group are written together at the
group's end. A rerun skips done units; a group killed mid-way is redone from its start (no
fine-tune train state is saved, so a crash loses at most the running group's work).
"""

from __future__ import annotations

import dataclasses
import logging
import os
import pathlib
import time
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
from flax import nnx

from jtransfer import checkpointing, results, tracking, zoo
from jtransfer import data as datasets
from jtransfer import metrics as metrics_lib
from jtransfer import workdir as workdir_files
from jtransfer.models import base, functional
from jtransfer.progress import progress
from jtransfer.train import batches, engine, freezing, optim, schedule, validation
from jtransfer.train import step as step_lib

JOB = "finetune"
SCRATCH, RANDOM_INIT = "scratch", "random_init"
BASELINE_SOURCES = (SCRATCH, RANDOM_INIT)
# Independent random streams derived from ft_seed (see `derived_seed`).
_HEAD_STREAM, _RANDOM_BACKBONE_STREAM, _SCRATCH_STREAM = 0x4EAD, 0xBA5E, 0x5C2A
_DATA_STREAM, _DROPOUT_STREAM = 0xDA7A, 0xD20B
_VAL_SPLIT_SEED = 0  # one validation split per target, shared by every model and ft_seed

log = logging.getLogger("jtransfer.finetune")


# -- seeds and keys -------------------------------------------------------------------------


def derived_seed(stream: int, ft_seed: int) -> int:
  """A 31-bit seed for one random stream of fine-tune seed `ft_seed` (stable everywhere)."""
  if isinstance(ft_seed, bool) or not isinstance(ft_seed, int | np.integer) or ft_seed < 0:
    raise ValueError(f"ft_seed must be an int >= 0, got {ft_seed!r}")
  state = np.random.SeedSequence([stream, int(ft_seed)]).generate_state(1, np.uint32)[0]
  return int(state >> 1)


def head_seed(ft_seed: int) -> int:
  """The init seed of the new head shared by every checkpoint fine-tuned with `ft_seed`."""
  return derived_seed(_HEAD_STREAM, ft_seed)


def random_backbone_seed(ft_seed: int) -> int:
  return derived_seed(_RANDOM_BACKBONE_STREAM, ft_seed)


def scratch_seed(ft_seed: int) -> int:
  return derived_seed(_SCRATCH_STREAM, ft_seed)


def data_seed(ft_seed: int) -> int:
  return derived_seed(_DATA_STREAM, ft_seed)


def dropout_seed(ft_seed: int) -> int:
  return derived_seed(_DROPOUT_STREAM, ft_seed)


def done_key(
  source: str,
  arch: str,
  seed: int,
  step: int,
  target: str,
  mode: str,
  frozen_layers: int,
  ft_seed: int,
) -> list:
  return [source, arch, int(seed), int(step), target, mode, int(frozen_layers), int(ft_seed)]


# -- units of work --------------------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class Member:
  """One trajectory: a starting point (checkpoint or baseline) x freezing x ft_seed.

  `modes` are the mode names whose rows it gives (several when they freeze the same layers).
  """

  source: str
  arch: str
  seed: int
  step: int
  path: str | None  # the checkpoint (absolute, or relative to the workdir; None for baselines)
  frozen_layers: int
  ft_seed: int
  modes: tuple[str, ...]

  def unit_keys(self, target: str) -> list[list]:
    return [
      done_key(
        self.source, self.arch, self.seed, self.step, target, m, self.frozen_layers, self.ft_seed
      )
      for m in self.modes
    ]


@dataclasses.dataclass(frozen=True)
class ArchInfo:
  arch: str
  model_kwargs: dict
  layers: tuple[str, ...]
  backbone_layers: tuple[str, ...]


def arch_info(arch: str, *, num_classes: int, model_kwargs: Mapping[str, Any]) -> ArchInfo:
  model = nnx.eval_shape(
    lambda: base.get_model(arch, num_classes=num_classes, rngs=nnx.Rngs(0), **model_kwargs)
  )
  return ArchInfo(arch, dict(model_kwargs), tuple(model.layers), tuple(model.backbone_layers))


def plan_members(
  ckpts: Sequence[zoo.Entry],
  *,
  info: ArchInfo,
  modes: Sequence[str],
  ft_seeds: Sequence[int],
  baselines: bool,
) -> list[Member]:
  """Every trajectory of one architecture (modes with equal freezing merged)."""
  pairs = freezing.parse_modes(modes, layers=info.layers, backbone_layers=info.backbone_layers)
  by_count: dict[int, tuple[str, ...]] = {}
  for mode, count in pairs:
    by_count[count] = by_count.get(count, ()) + (mode,)
  starts = [(c.source, c.seed, c.step, c.path) for c in ckpts]
  members = []
  for ft_seed in ft_seeds:
    for count, names in by_count.items():
      for source, seed, step, path in starts:
        members.append(Member(source, info.arch, seed, step, path, count, ft_seed, names))
      if baselines:
        members.append(Member(RANDOM_INIT, info.arch, ft_seed, 0, None, count, ft_seed, names))
    if baselines:
      members.append(Member(SCRATCH, info.arch, ft_seed, 0, None, 0, ft_seed, ("full",)))
  return members


def group_members(members: Iterable[Member], group_size: int) -> list[list[Member]]:
  """Members sharing (arch, ft_seed, frozen_layers), in chunks of at most `group_size`."""
  if group_size < 1:
    raise ValueError(f"group_size must be >= 1, got {group_size}")
  buckets: dict[tuple, list[Member]] = {}
  for m in members:
    buckets.setdefault((m.arch, m.ft_seed, m.frozen_layers), []).append(m)
  return [ms[i : i + group_size] for ms in buckets.values() for i in range(0, len(ms), group_size)]


# -- initial parameters ---------------------------------------------------------------------


def _check_like(tree, template, what: str) -> None:
  got = jax.tree_util.tree_flatten_with_path(tree)[0]
  want = jax.tree_util.tree_flatten_with_path(template)[0]
  got_s = {jax.tree_util.keystr(k): np.shape(v) for k, v in got}
  want_s = {jax.tree_util.keystr(k): tuple(v.shape) for k, v in want}
  if got_s != want_s:
    diff = sorted(set(got_s.items()) ^ set(want_s.items()))[:4]
    raise ValueError(
      f"{what} does not fit the model (differences, first few: {diff}); was it trained with "
      "other model_kwargs (image_size, in_channels, width)?"
    )


def initial_state(
  members: Sequence[Member],
  *,
  workdir,
  num_classes: int,
  model_kwargs: Mapping[str, Any] | None = None,
):
  """(graphdef, params, rest) of a group, stacked on a leading member axis (NumPy leaves).

  Checkpoint members: their restored backbone + the shared head of `head_seed(ft_seed)`;
  random_init: backbone of `random_backbone_seed(ft_seed)` + the shared head; scratch: the
  whole model of `scratch_seed(ft_seed)`. Batch statistics come from the head's model (fresh).
  """
  if not members:
    raise ValueError("empty group")
  arch, model_kwargs = members[0].arch, dict(model_kwargs or {})
  if any(m.arch != arch for m in members):
    raise ValueError("a group holds one architecture")
  init = lambda seed: functional.init(arch, num_classes=num_classes, seed=seed, **model_kwargs)
  host = lambda tree: jax.tree.map(np.asarray, tree)
  cache: dict[int, tuple] = {}

  def model_at(seed):
    if seed not in cache:
      graphdef, params, rest = init(seed)
      cache[seed] = (graphdef, host(params), host(rest))
    return cache[seed]

  params_list, rest_list = [], []
  for m in members:
    graphdef, head_params, head_rest = model_at(head_seed(m.ft_seed))
    if m.source == SCRATCH:
      _, params, rest = model_at(scratch_seed(m.ft_seed))
    elif m.source == RANDOM_INIT:
      backbone = model_at(random_backbone_seed(m.ft_seed))[1]["backbone"]
      params, rest = {"backbone": backbone, "head": head_params["head"]}, head_rest
    else:
      path = pathlib.Path(workdir) / m.path
      backbone = checkpointing.restore_backbone(path)
      _check_like(backbone, head_params["backbone"], f"the backbone of checkpoint {m.path}")
      params, rest = {"backbone": backbone, "head": head_params["head"]}, head_rest
      # The backbone's batch-norm statistics travel with its weights (fresh ones for the head).
      backbone_rest = checkpointing.restore_backbone_rest(path)
      if backbone_rest:
        rest = {**head_rest, "backbone": backbone_rest}
    params_list.append(params)
    rest_list.append(rest)
  stack = lambda trees: jax.tree.map(lambda *xs: np.stack([np.asarray(x) for x in xs]), *trees)
  return graphdef, stack(params_list), (stack(rest_list) if rest_list[0] else {})


# -- one group ------------------------------------------------------------------------------


@dataclasses.dataclass
class Target:
  """The target task's arrays (host) and its step counts."""

  name: str
  num_classes: int
  train: tuple[np.ndarray, np.ndarray]
  test: tuple[np.ndarray, np.ndarray]
  steps_per_epoch: int
  total_steps: int
  eval_steps: list[int]
  val: tuple[np.ndarray, np.ndarray] | None = None  # held out of `train` (val_fraction)


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
) -> Target:
  """The normalised target task (train and test split) and its fine-tune schedule; with
  `val_fraction`, a stratified validation split held out of train (the schedule counts the
  remaining train examples)."""
  num_classes, train, test = engine.load_source(name, data_dir, train_examples)
  val = None
  if val_fraction:
    keep, held = validation.split(train[1], fraction=val_fraction, seed=_VAL_SPLIT_SEED)
    train, val = (train[0][keep], train[1][keep]), (train[0][held], train[1][held])
  spe, total, eval_steps = eval_schedule(
    len(train[0]), batch_size=batch_size, duration=duration, eval_final=eval_final
  )
  return Target(name, num_classes, train, test, spe, total, eval_steps, val)


def _keep_frozen(rest, kept, mask):
  return jax.tree.map(lambda m, r, k: k if m else r, mask, rest, kept)


class _Trainer:
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
  ):
    self.graphdef, self.layers, self.margins = graphdef, layers, margins
    self.optimizer, self.optimizer_kwargs = optimizer, dict(optimizer_kwargs)
    self.batch_size, self.devices, self.seed_parallel = batch_size, devices, seed_parallel
    self.spe = steps_per_epoch
    self.backend = jax.default_backend()
    self._cache: dict[tuple, Any] = {}

  def get(self, frozen_layers: int, group: int):
    mode = engine.resolve_seed_parallel(
      self.seed_parallel, backend=self.backend, num_seeds=group, num_devices=len(self.devices)
    )
    key = (frozen_layers, group, mode)
    if key not in self._cache:
      mesh = engine.make_mesh(
        mode, num_seeds=group, batch_size=self.batch_size, devices=self.devices
      )
      # The engine's step builder takes the optimiser as a hashable (name, kwargs) spec;
      # freezing is the registered "freeze" optimiser wrapping the configured one.
      spec = freezing.optimizer_spec(
        self.optimizer,
        {**self.optimizer_kwargs, "steps_per_epoch": self.spe},
        frozen_layers=frozen_layers,
        layers=self.layers,
      )
      tx = optim.make_optimizer(spec[0], **dict(spec[1]))
      train_fn, eval_fn = engine.build_fns(
        self.graphdef, spec, mesh, mode, self.backend, margins=self.margins
      )
      self._cache[key] = dict(
        place=engine.placement(mesh, mode),
        tx=tx,
        train=train_fn,
        eval=eval_fn,
        init=jax.jit(jax.vmap(tx.init)),
        keep=jax.jit(_keep_frozen_static, static_argnums=2),
      )
    return self._cache[key]


def _eval_sets(target: Target, *, place, eval_examples, eval_train_examples, batch_size):
  splits = {"test": (*target.test, eval_examples, None)}
  if target.val is not None:  # every validation example, fixed order
    splits["val"] = (*target.val, None, None)
  if eval_train_examples:
    splits["train"] = (*target.train, eval_train_examples, engine.EVAL_SUBSET_SEED)
  return engine.eval_sets(splits, batch_size=batch_size, place=place)


def train_group(
  members: Sequence[Member],
  *,
  graphdef,
  params,
  rest,
  target: Target,
  trainer: _Trainer,
  eval_examples: int | None,
  eval_train_examples: int | None,
  eval_batch_size: int,
  bar=None,
  on_train_metrics=None,
  note_compile: bool = False,
) -> tuple[dict[int, dict[str, np.ndarray]], dict[str, Any]]:
  """Fine-tunes one group; returns ({ft_step: {metric: [G]}}, final host params and rest).

  All members share `ft_seed` and the freezing (`members[0]`). `on_train_metrics(step,
  {"loss": [G], "accuracy": [G]})` receives the batch metrics at `tracking.record_steps`, read
  one step late (no host sync in the loop); `note_compile` says when the step compiles.
  """
  ft_seed, frozen = members[0].ft_seed, members[0].frozen_layers
  if any(m.ft_seed != ft_seed or m.frozen_layers != frozen for m in members):
    raise ValueError("a group shares one ft_seed and one frozen_layers")
  g = len(members)
  fns = trainer.get(frozen, g)
  place = fns["place"]
  eval_sets = _eval_sets(
    target,
    place=place,
    eval_examples=eval_examples,
    eval_train_examples=eval_train_examples,
    batch_size=eval_batch_size,
  )
  train_x, train_y = (jax.device_put(a, place.replicated) for a in target.train)

  state = {"params": params, "rest": rest, "opt_state": fns["init"](params)}
  state = jax.device_put(state, place.state)
  # Every member draws the same dropout masks: one dropout seed per ft_seed.
  dropout_seeds = jax.device_put(np.full((g,), dropout_seed(ft_seed), np.int32), place.state)
  rest_mask = freezing.frozen_rest_mask(rest, frozen, trainer.layers)
  keep_rest = bool(rest) and any(jax.tree.leaves(rest_mask))
  # Its own buffers: the train step donates (deletes) the state it is given.
  kept_rest = jax.device_put(rest, place.state) if keep_rest else None
  frozen_mask_static = _Static(rest_mask) if keep_rest else None

  curves: dict[int, dict[str, np.ndarray]] = {}

  def evaluate(step):
    out = {}
    for name, eval_set in eval_sets.items():
      parts = engine.eval_outputs(fns["eval"], state, eval_set.batches)
      out[f"{name}_loss"], out[f"{name}_acc"] = step_lib.mean_loss_and_accuracy(parts)
      if "margin" in parts[0]:  # [G, B] per batch -> [G, examples], padding dropped
        margin = np.concatenate([p["margin"] for p in parts], axis=1)[:, eval_set.valid]
        out[f"{name}_auroc"] = _auroc_or_nan(margin, eval_set.labels)
    curves[step] = out

  eval_steps = set(target.eval_steps)
  if 0 in eval_steps:
    with tracking.compile_note(bar, "evaluation", first=note_compile):
      evaluate(0)
  stream = batches.index_stream(
    [data_seed(ft_seed)], num_examples=len(target.train[0]), batch_size=trainer.batch_size
  )
  record_at = tracking.record_steps(target.total_steps) if on_train_metrics else frozenset()
  pending = None
  for step in range(target.total_steps):
    idx = np.repeat(next(stream), g, axis=0)  # every member sees the same batch
    with tracking.compile_note(bar, "fine-tune step", first=note_compile and step == 0):
      state, metrics = fns["train"](
        state,
        dropout_seeds,
        train_x,
        train_y,
        jax.device_put(idx, place.batch_index),
        jnp.int32(step),
      )
    if pending is not None:  # the previous record step has finished by now
      on_train_metrics(pending[0], jax.device_get(pending[1]))
    pending = (step, metrics) if step in record_at else None
    if keep_rest:
      state = {**state, "rest": fns["keep"](state["rest"], kept_rest, frozen_mask_static)}
    if step + 1 in eval_steps:
      evaluate(step + 1)
    if bar is not None:
      bar.update(1)
  if pending is not None:
    on_train_metrics(pending[0], jax.device_get(pending[1]))
  final = jax.device_get({"params": state["params"], "rest": state["rest"]})
  return curves, final


def _auroc_or_nan(margin: np.ndarray, labels: np.ndarray) -> np.ndarray:
  """Per-member AUROC of the logit margins [G, N]; NaN (stored as NULL) when an eval set holds
  one class only, e.g. a small train subset."""
  if labels.min() == labels.max():
    return np.full(len(margin), np.nan)
  return np.array([metrics_lib.auroc(m, labels) for m in margin])


class _Static:
  """A hashable wrapper so a (bool) mask tree can be a static jit argument."""

  def __init__(self, tree):
    self.tree = tree
    self._key = str(jax.tree_util.tree_flatten_with_path(tree))

  def __hash__(self):
    return hash(self._key)

  def __eq__(self, other):
    return isinstance(other, _Static) and other._key == self._key


def _keep_frozen_static(rest, kept, mask: _Static):
  return _keep_frozen(rest, kept, mask.tree)


def _optional(metrics: Mapping[str, np.ndarray], name: str, index: int) -> float | None:
  value = metrics[name][index] if name in metrics else np.nan
  return None if np.isnan(value) else float(value)


def metric_unit(member: Member, target: str) -> str:
  """The `metrics` table's unit of a member: target, checkpoint, freezing and ft_seed."""
  m = member
  return (
    f"{target}/{m.source}/{m.arch}/seed_{m.seed}/step_{m.step}/frozen_{m.frozen_layers}"
    f"/ft_seed_{m.ft_seed}"
  )


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


def _arch_model_kwargs(workdir, arch: str, ckpts, explicit, target_spec) -> dict:
  """The model_kwargs of `arch`: explicit, else those its zoo entries record (fitted to the
  target's data), else {}."""
  fit = lambda kw: base.fit_to_data(arch, kw, target_spec)  # noqa: E731
  if explicit is not None:
    return fit(explicit)
  entries = [e for e in ckpts if e.arch == arch] or zoo.select(workdir, archs=[arch])
  return zoo.shared_model_kwargs(entries, arch, fit=fit) or fit({})


def _verified(store, workdir, ckpts, todo, target: str):
  """(checkpoints whose data match their content hash, failures recorded in the store); only
  checkpoints with work left are read. A corrupt one is never fine-tuned."""
  wanted = {m.path for m in todo if m.path is not None}
  good, failed = [], []
  for c in ckpts:
    if c.path in wanted:
      try:
        checkpointing.verify(pathlib.Path(workdir) / c.path)
      except checkpointing.CorruptCheckpointError as e:
        log.error("finetune on %s: skipping checkpoint %s: %s", target, c.path, e)
        store.record_failure(JOB, c.key, target=target, path=c.path, error=str(e))
        failed.append(c)
        continue
    good.append(c)
  return good, failed


@workdir_files.holds_lock(JOB)
def run(
  *,
  workdir: str | os.PathLike,
  target: str,
  modes: Sequence[str] = ("full",),
  ft_seeds: Sequence[int] = (0,),
  duration: Mapping[str, float] | None = None,
  batch_size: int = 64,
  optimizer: str = "adam",
  optimizer_kwargs: Mapping[str, Any] | None = None,
  model_kwargs: Mapping[str, Any] | None = None,
  checkpoints: Sequence[Mapping[str, Any]] | None = None,
  sources: Sequence[str] | None = None,
  archs: Sequence[str] | None = None,
  seeds: Sequence[int] | None = None,
  steps: Sequence[int] | None = None,
  baselines: bool = True,
  baseline_archs: Sequence[str] | None = None,
  eval_examples: int | None = None,
  eval_train_examples: int | None = None,
  eval_batch_size: int = 1000,
  eval_final: bool = True,
  train_examples: int | None = None,
  val_fraction: float | None = None,
  data_dir: str | os.PathLike | None = None,
  group_size: int = 16,
  seed_parallel: str = "auto",
  num_devices: int | None = None,
  show_progress: bool = True,
  store_shard: str | None = None,
  tensorboard: bool = True,
) -> dict[str, Any]:
  """Fine-tunes the selected checkpoints (and baselines) on `target`; returns a summary.

  duration: `{"epochs": x}`, `{"steps": n}` or `{"examples": n}` of the target (default 100
    epochs, the thesis).
  optimizer / optimizer_kwargs: `optim.make_optimizer` (thesis CNN: adam 1e-4; VGG: sgd,
    learning_rate 0.01, momentum 0.9, decay_every_epochs 20).
  model_kwargs: the architecture's hyperparameters (default: those the checkpoints' zoo
    records give).
  checkpoints / sources / archs / seeds / steps: which checkpoints (`zoo.select`: default every
    checkpoint of the workdir's zoo, filtered). A corrupt checkpoint (content hash mismatch) is
    recorded in the store's `failures` table and skipped; the others go on.
  baseline_archs: architectures to run baselines for when no checkpoint selects them.
  eval_examples: test examples evaluated (None = the whole test split);
  eval_train_examples: also evaluate on a fixed subset of the target's train split (None: no).
  train_examples: keep only the first n training examples of the target (quick runs, tests).
  val_fraction: hold this stratified fraction of them out as a validation split, evaluated at
    every evaluation step (`val_acc`, `val_loss`, `val_auroc`); None: no validation split.
  group_size: members (checkpoints x one ft_seed x one freezing) per jitted step.
  seed_parallel / num_devices: how members share devices, as in pre-training.
  tensorboard: also write each member's curves (batch loss / accuracy at log-spaced steps,
    the evaluations) as TensorBoard scalars under `<workdir>/tensorboard/finetune`; they go to
    the store's `metrics` table either way.
  """
  t_start = time.time()
  workdir = pathlib.Path(workdir)
  workdir.mkdir(parents=True, exist_ok=True)
  duration = dict(duration or {"epochs": 100})
  optimizer_kwargs = dict(optimizer_kwargs or {"learning_rate": 1e-4})
  config = {k: v for k, v in locals().items() if k != "t_start"}
  config["workdir"] = str(workdir)
  if isinstance(modes, str):
    modes = (modes,)
  ft_seeds = [int(s) for s in ft_seeds]
  if not ft_seeds or len(set(ft_seeds)) != len(ft_seeds) or min(ft_seeds) < 0:
    raise ValueError(f"ft_seeds must be distinct ints >= 0, got {ft_seeds}")
  handler = workdir_files.file_logging(workdir, JOB, log)
  try:
    return _run(config, modes=tuple(modes), ft_seeds=ft_seeds, t_start=t_start)
  finally:
    log.removeHandler(handler)
    handler.close()


def _run(c: dict, *, modes, ft_seeds, t_start: float) -> dict[str, Any]:
  workdir, name = pathlib.Path(c["workdir"]), c["target"]
  nproc, pid = jax.process_count(), jax.process_index()

  # Data (host side).
  target = load_target(
    name,
    data_dir=c["data_dir"],
    train_examples=c["train_examples"],
    batch_size=c["batch_size"],
    duration=c["duration"],
    eval_final=c["eval_final"],
    val_fraction=c["val_fraction"],
  )
  num_classes, spe, total, eval_steps = (
    target.num_classes,
    target.steps_per_epoch,
    target.total_steps,
    target.eval_steps,
  )

  # Units: every (start, freezing, ft_seed) not done yet, grouped.
  ckpts = zoo.select(
    workdir,
    c["checkpoints"],
    sources=c["sources"],
    archs=c["archs"],
    seeds=c["seeds"],
    steps=c["steps"],
  )
  named = [e.source for e in ckpts if e.source in BASELINE_SOURCES]
  if named:
    raise ValueError(f"{named[0]!r} is a baseline name and cannot be a checkpoint source")
  arch_names = sorted({r.arch for r in ckpts} | set(c["baseline_archs"] or ()))
  if not arch_names:
    raise ValueError(
      f"no checkpoints selected in {workdir} and no baseline_archs: nothing to fine-tune"
    )
  shard = c["store_shard"] or (f"host{pid}" if nproc > 1 else None)
  store = results.Store(workdir, shard=shard)
  writer = None
  try:
    done = store.done_keys(JOB)
    infos, members, todo = {}, [], []
    for arch in arch_names:
      # Input hyperparameters (an audio model's clip length, sample rate) follow the target.
      kwargs = _arch_model_kwargs(workdir, arch, ckpts, c["model_kwargs"], datasets.get(name))
      infos[arch] = arch_info(arch, num_classes=num_classes, model_kwargs=kwargs)
      members += plan_members(
        [r for r in ckpts if r.arch == arch],
        info=infos[arch],
        modes=modes,
        ft_seeds=ft_seeds,
        baselines=c["baselines"],
      )
    # This process's share: every nproc-th group of all the units, done or not, so the split
    # never depends on what another process has finished by the time this one looks.
    for group in group_members(members, c["group_size"])[pid::nproc]:
      for m in group:
        left = tuple(
          mode
          for mode, key in zip(m.modes, m.unit_keys(name), strict=True)
          if results.key_str(key) not in done
        )
        if left:
          todo.append(dataclasses.replace(m, modes=left))
    ckpts, failed = _verified(store, workdir, ckpts, todo, name)
    failed_paths = {f.path for f in failed}
    todo = [m for m in todo if m.path is None or m.path not in failed_paths]
    groups = group_members(todo, c["group_size"])
    summary = {
      "target": name,
      "steps_per_epoch": spe,
      "total_steps": total,
      "eval_steps": eval_steps,
      "groups": len(groups),
      "members": sum(len(g) for g in groups),
      "units": sum(len(m.modes) for g in groups for m in g),
      "failed": len(failed),
    }
    if not groups:
      log.info("finetune on %s: every unit already done", name)
      return {**summary, "seconds": 0.0, "images_per_second": 0.0}
    if pid == 0:
      workdir_files.append_config(workdir, JOB, {k: v for k, v in c.items() if k != "workdir"})
    log.info(
      "finetune on %s: %d groups, %d members, %d units; %d steps (%d/epoch), evals at %s",
      name,
      summary["groups"],
      summary["members"],
      summary["units"],
      total,
      spe,
      eval_steps,
    )

    writer = tracking.MetricWriter(
      workdir, JOB, store, tensorboard=c["tensorboard"], process_index=pid
    )
    devices = jax.local_devices()[: c["num_devices"]] if c["num_devices"] else jax.local_devices()
    trainers: dict[str, _Trainer] = {}
    bar = (
      progress(total=len(groups) * total, desc=f"{JOB} {name}", unit="step")
      if c["show_progress"]
      else None
    )
    t_loop, images = time.time(), 0
    for gi, group in enumerate(groups):
      info = infos[group[0].arch]
      graphdef, params, rest = initial_state(
        group, workdir=workdir, num_classes=num_classes, model_kwargs=info.model_kwargs
      )
      new_trainer = info.arch not in trainers
      if new_trainer:
        trainers[info.arch] = _Trainer(
          graphdef=graphdef,
          layers=info.layers,
          optimizer=c["optimizer"],
          optimizer_kwargs=c["optimizer_kwargs"],
          batch_size=c["batch_size"],
          devices=devices,
          seed_parallel=c["seed_parallel"],
          steps_per_epoch=spe,
          margins=num_classes == 2,  # binary targets: AUROC in every curve row
        )
      if bar is not None:
        bar.set_postfix(group=f"{gi + 1}/{len(groups)}", frozen=group[0].frozen_layers)
      units = [metric_unit(m, name) for m in group]

      def on_train_metrics(step, host, units=units):
        for i, unit in enumerate(units):
          values = {"train/loss": host["loss"][i], "train/accuracy": host["accuracy"][i]}
          writer.scalars(unit, step, values)

      curves, _ = train_group(
        group,
        graphdef=graphdef,
        params=params,
        rest=rest,
        target=target,
        trainer=trainers[info.arch],
        eval_examples=c["eval_examples"],
        eval_train_examples=c["eval_train_examples"],
        eval_batch_size=c["eval_batch_size"],
        bar=bar,
        on_train_metrics=on_train_metrics,
        note_compile=new_trainer,
      )
      for ft_step, values in curves.items():
        for i, unit in enumerate(units):
          writer.scalars(unit, ft_step, {f"eval/{k}": v[i] for k, v in values.items()})
      images += total * c["batch_size"] * len(group)
      # The whole group's curves and done markers in one transaction.
      with store.transaction():
        for i, m in enumerate(group):
          for mode, key in zip(m.modes, m.unit_keys(name), strict=True):
            store.mark_done(JOB, key, {"finetune": curve_rows(m, mode, target, curves, i)})
          if m.path is not None:
            store.clear_failure(JOB, (m.source, m.arch, m.seed, m.step), target=name)
      writer.flush()
      final = curves[max(curves)]["test_acc"]
      log.info(
        "group %d/%d (%s, ft_seed %d, frozen %d): final test acc %s",
        gi + 1,
        len(groups),
        info.arch,
        group[0].ft_seed,
        group[0].frozen_layers,
        ", ".join(
          f"{m.source}/{m.seed}/{m.step}={a:.4f}" for m, a in zip(group, final, strict=True)
        ),
      )
    if bar is not None:
      bar.close()
    seconds = time.time() - t_loop
    summary.update(
      seconds=seconds,
      images_per_second=images / seconds if seconds > 0 else 0.0,
      total_seconds=time.time() - t_start,
    )
    log.info("finetune on %s done: %s", name, summary)
    return summary
  finally:
    if writer is not None:
      writer.close()
    store.close()

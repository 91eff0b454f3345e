"""Planning a fine-tune run: its typed config, the units of work, their groups and seeds.

  config = FinetuneConfig(target="fashion_mnist", modes=("full", "head"), ...)
  plan = make_plan(config, workdir, num_classes=10, store=ctx.store, done=ctx.done(),
                   share=ctx.share)
  for group in plan.groups: ...      # this process's share of the groups left to train

Units. A member is one trajectory: a starting point (a zoo checkpoint, or a baseline) x one
freezing x one `ft_seed`; it gives the rows of every mode that freezes the same layers (e.g.
"full" and "frozen=0"). A unit is one (member, mode): its done key is `done_key(...)`, and a
member is planned only for its modes that are not done yet.

Baselines, with `seed = ft_seed`, `step = 0`: "scratch" (a whole model from
`scratch_seed(ft_seed)`, mode "full") and "random_init" (a random backbone from
`random_backbone_seed(ft_seed)` with the shared head, under every requested mode).

Groups. Members sharing (arch, ft_seed, frozen_layers) are trained together, `group_size` at a
time, in one jitted step; each process trains its share (`ctx.share`) of the groups.

Seed streams. Every random choice of a fine-tune run derives from `ft_seed` through its own
stream (`derived_seed`): the shared head, the random backbone, the scratch model, the data
order and the dropout masks. A stream's seed does not depend on the checkpoint, so every
member of a group sees the same batches and dropout masks as it would alone.
"""

from __future__ import annotations

import dataclasses
import functools
import logging
import pathlib
from collections.abc import Callable, Collection, Iterable, Mapping, Sequence
from typing import Any

import jax
import numpy as np
from flax import nnx

from jtransfer import data as datasets
from jtransfer.data import pipeline
from jtransfer.models import base
from jtransfer.runtime import stacking
from jtransfer.store import checkpointing, results, zoo
from jtransfer.train import engine, freezing

JOB = "finetune"
SCRATCH, RANDOM_INIT = "scratch", "random_init"
BASELINE_SOURCES = (SCRATCH, RANDOM_INIT)
# Independent random streams derived from ft_seed (see `derived_seed`).
_HEAD_STREAM, _RANDOM_BACKBONE_STREAM, _SCRATCH_STREAM = 0x4EAD, 0xBA5E, 0x5C2A
_DATA_STREAM, _DROPOUT_STREAM = 0xDA7A, 0xD20B

log = logging.getLogger("jtransfer.finetune")


# -- the job's config -----------------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class FinetuneConfig:
  """What one fine-tune run computes: the fine-tune stage's schema (types, defaults, checks).

  duration: `{"epochs": x}`, `{"steps": n}` or `{"examples": n}` of the target.
  optimizer / optimizer_kwargs: `optim.make_optimizer` (thesis CNN: adam 1e-4; VGG: sgd,
    learning_rate 0.01, momentum 0.9, decay_every_epochs 20).
  model_kwargs: the architecture's hyperparameters (None: those the checkpoints' zoo records
    give, fitted to the target's data).
  checkpoints / sources / archs / seeds / steps: which checkpoints (`zoo.select`: default every
    checkpoint of the workdir's zoo, filtered). A corrupt checkpoint (content hash mismatch) is
    recorded in the store's `failures` table and skipped; the others go on.
  baselines: also fine-tune the "scratch" and "random_init" baselines.
  baseline_archs: architectures to run baselines for when no checkpoint selects them.
  eval_examples: test examples evaluated (None = the whole test split);
  eval_train_examples: also evaluate on a fixed subset of the target's train split (None: no).
  eval_final: also evaluate at the last step when the log schedule misses it.
  train_examples: keep only the first n training examples of the target (quick runs, tests).
  val_fraction: hold this stratified fraction of them out as a validation split, evaluated at
    every evaluation step (`val_acc`, `val_loss`, `val_auroc`); None: no validation split.
  group_size: members (checkpoints x one ft_seed x one freezing) per jitted step.
  seed_parallel: how a group's members share the devices (`jtransfer.runtime.stacking`).
  tensorboard: also write each member's curves as TensorBoard scalars under
    `<workdir>/tensorboard/finetune`; they go to the store's `metrics` table either way.
  input_pipeline: "memory" (the target's train split on every device, steps send indices) or
    "stream" (each step's rows read through `jtransfer.data.pipeline`; the same curves).
  augment: the target's declared augmentation (`data.augment.for_dataset`); "stream" only.
  """

  target: str
  modes: tuple[str, ...] = ("full",)
  ft_seeds: tuple[int, ...] = (0,)
  duration: dict[str, float] = dataclasses.field(default_factory=lambda: {"epochs": 100})
  batch_size: int = 64
  optimizer: str = "adam"
  optimizer_kwargs: dict[str, Any] = dataclasses.field(
    default_factory=lambda: {"learning_rate": 1e-4}
  )
  model_kwargs: dict[str, Any] | None = None
  checkpoints: tuple[Any, ...] | None = None
  sources: tuple[str, ...] | None = None
  archs: tuple[str, ...] | None = None
  seeds: tuple[int, ...] | None = None
  steps: tuple[int, ...] | None = None
  baselines: bool = True
  baseline_archs: tuple[str, ...] = ()
  eval_examples: int | None = None
  eval_train_examples: int | None = None
  eval_batch_size: int = 1000
  eval_final: bool = True
  train_examples: int | None = None
  val_fraction: float | None = None
  group_size: int = 16
  seed_parallel: str = "auto"
  tensorboard: bool = True
  input_pipeline: str = "memory"
  augment: bool = False

  def __post_init__(self):
    set_ = functools.partial(object.__setattr__, self)
    set_("modes", (self.modes,) if isinstance(self.modes, str) else tuple(self.modes))
    for name in ("duration", "optimizer_kwargs"):
      set_(name, dict(getattr(self, name)))
    if self.model_kwargs is not None:
      set_("model_kwargs", dict(self.model_kwargs))
    for name in ("checkpoints", "sources", "archs", "seeds", "steps", "baseline_archs"):
      value = getattr(self, name)
      if value is not None:
        set_(name, (value,) if isinstance(value, str) else tuple(value))
    seeds = self.ft_seeds
    if isinstance(seeds, int | np.integer) or any(
      isinstance(s, bool) or not isinstance(s, int | np.integer) for s in seeds
    ):
      raise ValueError(f"ft_seeds must be distinct ints >= 0, got {seeds!r}")
    set_("ft_seeds", tuple(int(s) for s in seeds))
    seeds = self.ft_seeds
    if not seeds or len(set(seeds)) != len(seeds) or min(seeds) < 0:
      raise ValueError(f"ft_seeds must be distinct ints >= 0, got {list(seeds)}")
    for name in ("batch_size", "eval_batch_size", "group_size"):
      value = getattr(self, name)
      if isinstance(value, bool) or not isinstance(value, int | np.integer) or value < 1:
        raise ValueError(f"{name} must be an int >= 1, got {value!r}")
    engine.check_duration("duration", self.duration)
    set_("seed_parallel", stacking.canonical(self.seed_parallel, name="seed_parallel"))
    frac = self.val_fraction  # 0 or None: no validation split
    if frac is not None and (isinstance(frac, bool) or not 0 <= float(frac) < 1):
      raise ValueError(f"val_fraction must be in (0, 1), 0 or None, got {frac!r}")
    pipeline.check_job_options(self.input_pipeline, self.augment, self.target)


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
) -> tuple:
  """The done key of one fine-tune unit: the tuple of what names it (as in every job)."""
  return (source, arch, int(seed), int(step), target, mode, int(frozen_layers), int(ft_seed))


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

  def unit_keys(self, target: str) -> list[tuple]:
    return [
      done_key(
        self.source, self.arch, self.seed, self.step, target, m, self.frozen_layers, self.ft_seed
      )
      for m in self.modes
    ]


def metric_unit(member: Member, target: str) -> str:
  """The `metrics` table's unit of a member: target, checkpoint, freezing and ft_seed."""
  m = member
  return (
    f"{target}/{m.source}/{m.arch}/seed_{m.seed}/step_{m.step}/frozen_{m.frozen_layers}"
    f"/ft_seed_{m.ft_seed}"
  )


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


def units_left(members: Iterable[Member], done: Collection[str], target: str) -> list[Member]:
  """The members with a mode not done yet, each keeping only those modes."""
  todo = []
  for m in members:
    keys = m.unit_keys(target)
    left = tuple(
      mode for mode, key in zip(m.modes, keys, strict=True) if results.key_str(key) not in done
    )
    if left:
      todo.append(dataclasses.replace(m, modes=left))
  return todo


# -- checkpoints ----------------------------------------------------------------------------


def select_checkpoints(config: FinetuneConfig, workdir) -> list[zoo.Entry]:
  """The zoo checkpoints of `workdir` the config selects (`zoo.select`)."""
  c = config
  ckpts = zoo.select(
    workdir, c.checkpoints, sources=c.sources, archs=c.archs, seeds=c.seeds, steps=c.steps
  )
  named = [e.source for e in ckpts if e.source in BASELINE_SOURCES]
  if named:
    raise ValueError(f"{named[0]!r} is a baseline name and cannot be a checkpoint source")
  return ckpts


def arch_model_kwargs(workdir, arch: str, ckpts, explicit, target_spec) -> dict:
  """The model_kwargs of `arch`: explicit, else those its zoo entries record (fitted to the
  target's data), else {}."""
  fit = lambda kw: base.fit_to_data(arch, kw, target_spec)  # noqa: E731
  if explicit is not None:
    return fit(explicit)
  entries = [e for e in ckpts if e.arch == arch] or zoo.select(workdir, archs=[arch])
  return zoo.shared_model_kwargs(entries, arch, fit=fit) or fit({})


# What `Restored` may hold between the content check and the members that start from it: the
# CNN zoos' backbones are well inside it, a large VGG zoo's are not (those are read again).
HOLD_BYTES = 2 << 30


def _nbytes(tree) -> int:
  return sum(int(x.nbytes) for x in jax.tree.leaves(tree))  # no copy of a device array


class Restored:
  """What fine-tuning reads of each checkpoint (its backbone and the backbone's batch-norm
  statistics), read and content-checked once per job: `read` when the job checks its pending
  checkpoints, `take` once per member that starts from it; dropped after the last (`expect`).

  At most `hold_bytes` of backbones are held: a checkpoint read past that is checked and let
  go, and read again by each member that takes it."""

  def __init__(self, workdir, hold_bytes: int | None = None):
    self.workdir = pathlib.Path(workdir)
    self.hold_bytes = HOLD_BYTES if hold_bytes is None else int(hold_bytes)
    self._trees: dict[str, dict[str, Any]] = {}
    self._uses: dict[str, int] = {}
    self.held_bytes = 0

  def _hold(self, path: str, tree) -> None:
    self._trees[path] = tree
    self.held_bytes += _nbytes(tree)

  def _drop(self, path: str) -> None:
    self.held_bytes -= _nbytes(self._trees.pop(path))

  def read(self, path: str, *, hold: bool = True) -> dict[str, Any]:
    """Restores (and checks) the checkpoint at `path`; CorruptCheckpointError if it is not.
    Held for `take` when `hold` and it fits the budget."""
    tree = checkpointing.restore(self.workdir / path)
    rest = tree.get(checkpointing.REST) or {}
    tree = {"backbone": tree["backbone"], "rest": rest.get("backbone", {})}
    if hold and self.held_bytes + _nbytes(tree) <= self.hold_bytes:
      self._hold(path, tree)
    return tree

  def expect(self, members: Iterable[Member]) -> None:
    """How many members will `take` each checkpoint; the others are dropped now."""
    self._uses = {}
    for m in members:
      if m.path is not None:
        self._uses[m.path] = self._uses.get(m.path, 0) + 1
    for path in [k for k in self._trees if k not in self._uses]:
      self._drop(path)

  def take(self, path: str) -> dict[str, Any]:
    """{"backbone", "rest"} of the checkpoint (read now if it is not held), for one member."""
    tree = self._trees.get(path)
    if tree is None:
      tree = self.read(path)  # held again for its other members if the budget allows
    self._uses[path] = self._uses.get(path, 1) - 1
    if self._uses[path] <= 0:
      if path in self._trees:
        self._drop(path)
      del self._uses[path]
    return tree


def verified(store, workdir, ckpts, todo, target: str, restored: Restored | None = None):
  """(checkpoints whose data match their content hash, failures recorded in the store); only
  checkpoints with work left are read, into `restored`. A corrupt one is never fine-tuned."""
  wanted = {m.path for m in todo if m.path is not None}
  restored = Restored(workdir) if restored is None else restored
  good, failed = [], []
  for c in ckpts:
    if c.path in wanted:
      try:
        restored.read(c.path)
      except checkpointing.CorruptCheckpointError as e:
        log.error("finetune on %s: skipping checkpoint %s: %s", target, c.path, e)
        store.record_failure(JOB, c.key, target=target, path=c.path, error=str(e))
        failed.append(c)
        continue
    good.append(c)
  return good, failed


def _start_key(workdir, member: Member) -> tuple | None:
  """What a fine-tune from `member` depends on besides its ft_seed and freezing: the recorded
  hashes of the backbone and its batch-norm statistics (None: unknown, never shared)."""
  if member.path is None:
    return None
  hashes = checkpointing.subtree_hashes(pathlib.Path(workdir) / member.path)
  if hashes is None or "backbone" not in hashes:
    return None
  # The head is replaced, so only the backbone's weights and statistics are transferred; REST
  # also holds the head's statistics, so two checkpoints differing only there are not merged.
  return (hashes["backbone"], hashes.get(checkpointing.REST))


def shared_starts(workdir, members: Sequence[Member]) -> tuple[list[Member], dict[Member, list]]:
  """(members to train, {trained member: members that start from the same weights}).

  Checkpoints whose backbones are identical by content (the step-0 copies of one
  initialisation under several sources) give identical fine-tunes for the same ft_seed,
  freezing and modes: each is trained once and its curves are written under every copy.
  """
  first: dict[tuple, Member] = {}
  train, copies = [], {}
  for m in members:
    key = _start_key(workdir, m)
    if key is not None:
      key = (m.arch, m.frozen_layers, m.ft_seed, m.modes, *key)
      if key in first:
        copies.setdefault(first[key], []).append(m)
        continue
      first[key] = m
    train.append(m)
  return train, copies


# -- the plan -------------------------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class Plan:
  """What this process trains: its groups, each architecture's layers, the corrupt skipped,
  and the members whose curves are copied from a trained member with the same start."""

  infos: dict[str, ArchInfo]
  groups: list[list[Member]]
  failed: list[zoo.Entry]
  copies: dict[Member, list[Member]] = dataclasses.field(default_factory=dict)
  checkpoints: Restored | None = None  # the pending checkpoints, read once


def make_plan(
  config: FinetuneConfig,
  workdir: pathlib.Path,
  *,
  num_classes: int,
  store: results.Store,
  done: Collection[str],
  share: Callable[[Sequence], list],
) -> Plan:
  """Units not done yet of the selected checkpoints (+ baselines), verified, grouped, shared."""
  c, name = config, config.target
  ckpts = select_checkpoints(c, workdir)
  arch_names = sorted({r.arch for r in ckpts} | set(c.baseline_archs))
  if not arch_names:
    raise ValueError(
      f"no checkpoints selected in {workdir} and no baseline_archs: nothing to fine-tune"
    )
  infos, members = {}, []
  for arch in arch_names:
    # Input hyperparameters (an audio model's clip length, sample rate) follow the target.
    kwargs = arch_model_kwargs(workdir, arch, ckpts, c.model_kwargs, datasets.get(name))
    infos[arch] = arch_info(arch, num_classes=num_classes, model_kwargs=kwargs)
    members += plan_members(
      [r for r in ckpts if r.arch == arch],
      info=infos[arch],
      modes=c.modes,
      ft_seeds=c.ft_seeds,
      baselines=c.baselines,
    )
  # This process's share is taken of all the groups, done or not, so that the split never
  # depends on what another process has finished by the time this one looks.
  todo = [m for group in share(group_members(members, c.group_size)) for m in group]
  todo = units_left(todo, done, name)
  restored = Restored(workdir)
  _, failed = verified(store, workdir, ckpts, todo, name, restored)
  failed_paths = {f.path for f in failed}
  todo = [m for m in todo if m.path is None or m.path not in failed_paths]
  todo, copies = shared_starts(workdir, todo)
  if copies:
    log.info(
      "finetune on %s: %d members start from the same weights as another (same backbone "
      "content hash: e.g. the step-0 copies of one initialisation); each start is trained once",
      name,
      sum(len(v) for v in copies.values()),
    )
  restored.expect(todo)
  return Plan(infos, group_members(todo, c.group_size), failed, copies, restored)

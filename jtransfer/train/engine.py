"""The training engine: what pre-training and fine-tuning share.

Both loops train a stack of models of one architecture at once ("members": the seeds of a zoo,
or the checkpoints of a fine-tune group). Params, `rest` and optimizer state carry a leading
member axis and one jitted step trains every member. This module holds the pieces of that step
that do not depend on which loop runs it: the mesh and the shardings, the step builders
(`build_fns`), the source/target data and the padded eval sets.

How stacked members share the devices (`seed_parallel`): the modes of `jtransfer.runtime.stacking`
("auto", "vmap", "loop", "devices", "sequential"), the vocabulary of every job. Both loops run
their members through `run_members(layout, members, train)`, which cuts them into the stacks
the layout trains: one stack for "vmap", "loop" (the members unrolled in the step) and
"devices" (a `model` mesh axis), one one-member "vmap" stack per member, in turn, for
"sequential".

Dropout. Member `i` draws its dropout keys from `dropout_seeds[i]` (an argument of the train
step, not part of the trained state) and the step number, so a member trained in a stack
equals the member trained alone.
"""

from __future__ import annotations

import dataclasses
import functools
import math
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import jax
import numpy as np
from jax.sharding import Mesh, NamedSharding
from jax.sharding import PartitionSpec as P

from jtransfer import data as datasets
from jtransfer.data import subsets
from jtransfer.runtime import sharding, stacking
from jtransfer.train import optim
from jtransfer.train import step as step_lib

SEED_PARALLEL = stacking.MODES
_DROPOUT_STREAM = 0x5EED  # key: fold_in(fold_in(key(dropout seed), _DROPOUT_STREAM), step)
TRAIN_INPUTS = ("indices", "batch")  # what `build_fns`' train step is fed
EVAL_SUBSET_SEED = 0  # the fixed train subset used to measure train accuracy


# -- mesh and shardings ---------------------------------------------------------------------


def resolve_seed_parallel(mode: str, *, backend: str, num_seeds: int) -> str:
  """`stacking.resolve` under the training jobs' argument names."""
  return stacking.resolve(mode, backend=backend, members=num_seeds, name="seed_parallel")


def stacks(layout: str, members: Sequence) -> list[tuple[list, str]]:
  """(members of a stack, its layout) for every stack `layout` trains, in order."""
  if layout == "sequential":
    return [([m], "vmap") for m in members]  # one member, its batch split over the devices
  return [(list(members), layout)]


def run_members(layout: str, members: Sequence, train: Callable[[list, str], Any]) -> list:
  """`train(stack, stack_layout)` for every stack of `stacks(layout, members)`; the results."""
  return [train(stack, stack_layout) for stack, stack_layout in stacks(layout, members)]


DURATION_UNITS = ("steps", "epochs", "examples")


def check_duration(what: str, duration: Mapping[str, Any]) -> None:
  """One positive amount in one unit of `DURATION_UNITS`; a one-line error naming `what`."""
  units = list(duration)
  if len(units) != 1 or units[0] not in DURATION_UNITS:
    raise ValueError(
      f"{what} must be one of {', '.join(DURATION_UNITS)} with an amount (e.g. steps:400), "
      f"got {dict(duration)}"
    )
  amount = duration[units[0]]
  if isinstance(amount, bool) or not isinstance(amount, (int, float)) or amount <= 0:
    raise ValueError(f"{what}.{units[0]} must be a positive number, got {amount!r}")


def _largest_divisor(n: int, at_most: int) -> int:
  return max(d for d in range(1, min(n, at_most) + 1) if n % d == 0)


def make_mesh(mode: str, *, num_seeds: int, batch_size: int, devices: Sequence) -> Mesh:
  """'devices': a `model` axis over members; else a `data` axis over the batch.

  Axis sizes divide the member count / batch size; devices that do not fit stay idle.
  """
  if mode == "sequential":  # `stacks` turns it into one-member "vmap" stacks
    raise ValueError("seed_parallel 'sequential' has no mesh: run it through run_members")
  if mode == "devices":
    m = _largest_divisor(num_seeds, len(devices))
    return sharding.make_mesh(("model",), devices[:m])
  d = _largest_divisor(batch_size, len(devices))
  return sharding.make_mesh(("data",), devices[:d])


@dataclasses.dataclass(frozen=True)
class Placement:
  """Where each kind of array lives for a `mode` on `mesh`."""

  replicated: NamedSharding  # the training set and anything every device reads whole
  state: NamedSharding  # stacked params / rest / optimizer state and the dropout seeds
  batch_index: NamedSharding  # the [members, batch] example indices of one step
  eval_batch: NamedSharding  # one (x, y, mask) eval batch
  eval_multiple: int  # eval batch sizes are rounded up to this (the data-parallel devices)


def placement(mesh: Mesh, mode: str) -> Placement:
  replicated = NamedSharding(mesh, P())
  if mode == "devices":
    by_member = NamedSharding(mesh, P("model"))
    return Placement(replicated, by_member, by_member, replicated, eval_multiple=1)
  return Placement(
    replicated,
    replicated,
    NamedSharding(mesh, P(None, "data")),
    NamedSharding(mesh, P("data")),
    eval_multiple=mesh.shape["data"],
  )


# -- data -----------------------------------------------------------------------------------


def load_source(source: str, data_dir, train_examples: int | None):
  """(num_classes, (train_x, train_y), (test_x, test_y)) of a named dataset, normalised."""
  spec = datasets.get(source)
  train_x, train_y = datasets.load(source, "train", data_dir=data_dir)
  test_x, test_y = datasets.load(source, "test", data_dir=data_dir)
  train_x, test_x = datasets.normalize(source, train_x), datasets.normalize(source, test_x)
  if train_examples is not None:
    if not 0 < train_examples <= len(train_x):
      raise ValueError(f"train_examples must be in [1, {len(train_x)}], got {train_examples}")
    train_x, train_y = train_x[:train_examples], train_y[:train_examples]
  cast = lambda x, y: (np.asarray(x, np.float32), np.asarray(y, np.int32))
  return spec.num_classes, cast(train_x, train_y), cast(test_x, test_y)


def eval_arrays(
  x, y, *, examples: int | None, batch_size: int, subset_seed: int | None, multiple: int = 1
):
  """`[num_batches, batch_size, ...]` padded eval set and its mask (fixed shape, no recompile).

  The batch size is rounded up to a multiple of `multiple` (the data-parallel devices).
  """
  index = subsets.eval_subset_index(len(x), examples, subset_seed)
  n = len(index)
  bs = -(-min(batch_size, n) // multiple) * multiple
  nb = math.ceil(n / bs)
  pad = nb * bs - n
  xs = np.concatenate([x[index], np.zeros((pad, *x.shape[1:]), x.dtype)])
  ys = np.concatenate([y[index], np.zeros((pad,), y.dtype)])
  mask = np.arange(nb * bs) < n
  return (
    xs.reshape(nb, bs, *x.shape[1:]),
    ys.reshape(nb, bs),
    mask.reshape(nb, bs),
  )


@dataclasses.dataclass(frozen=True)
class EvalSet:
  batches: list  # (x, y, mask) per batch, on the devices: the eval step takes one batch
  valid: np.ndarray  # the flat padding mask (host), for per-example metrics
  labels: np.ndarray  # the labels of the valid examples, in order (host)


def eval_sets(splits: dict, *, batch_size: int, place: Placement) -> dict[str, EvalSet]:
  """name -> `EvalSet`, from name -> (x, y, examples, subset_seed) (see `eval_arrays`)."""
  out = {}
  for name, (x, y, examples, subset_seed) in splits.items():
    xs, ys, m = eval_arrays(
      x,
      y,
      examples=examples,
      batch_size=batch_size,
      subset_seed=subset_seed,
      multiple=place.eval_multiple,
    )
    on_devices = [jax.device_put((xs[b], ys[b], m[b]), place.eval_batch) for b in range(len(xs))]
    out[name] = EvalSet(on_devices, m.reshape(-1), ys.reshape(-1)[m.reshape(-1)])
  return out


def eval_outputs(eval_fn, state, batch_list) -> list:
  """The eval step's host outputs, one per batch (each [members, ...])."""
  return jax.device_get([eval_fn(state, *batch) for batch in batch_list])


# -- compiled functions ---------------------------------------------------------------------


@functools.lru_cache(maxsize=16)
def build_fns(
  graphdef,
  optimizer_spec: tuple,
  mesh: Mesh,
  mode: str,
  backend: str,
  *,
  margins: bool = False,
  inputs: str = "indices",
):
  """(train_fn, eval_fn) over the stacked state, sharded for `mode`.

  inputs "indices": train_fn(state, dropout_seeds, train_x, train_y, idx, step) -> (state,
  metrics), `idx` the [members, batch] example indices into a training set resident on the
  devices (gathered there). inputs "batch": train_fn(state, dropout_seeds, x, y, step), x
  [members, batch, ...] and y [members, batch] the rows themselves (a streamed input pipeline,
  `jtransfer.data.pipeline`), placed like `placement(...).batch_index`. Either way `state` is
  {"params", "rest", "opt_state"} (donated), `dropout_seeds` [members] int32, and a member
  fed the same rows trains identically. eval_fn(state, x, y, mask) -> per-member metrics.
  `margins`: the eval step also returns each example's two-class logit margin (`step_lib`).

  Cached on the (hashable) model graph, optimizer spec and mesh, so a second run with the same
  set-up in one process (other sources, a resume) reuses the compiled steps.
  """
  if inputs not in TRAIN_INPUTS:
    raise ValueError(f"unknown inputs {inputs!r}; valid: {', '.join(TRAIN_INPUTS)}")
  name, kwargs = optimizer_spec
  optimizer = optim.make_optimizer(name, **dict(kwargs))
  one_step = step_lib.make_train_step(graphdef, optimizer)
  one_eval = step_lib.make_eval_step(graphdef, margins=margins)

  def member_train(params, rest, opt_state, seed, x, y, step):
    key = jax.random.fold_in(jax.random.fold_in(jax.random.key(seed), _DROPOUT_STREAM), step)
    return one_step(params, rest, opt_state, x, y, key)

  def local_step(loop, state, dropout_seeds, x, y, step):
    params, rest, opt_state, metrics = step_lib.over_seeds(
      lambda p, r, o, s, xx, yy: member_train(p, r, o, s, xx, yy, step), loop
    )(state["params"], state["rest"], state["opt_state"], dropout_seeds, x, y)
    return {"params": params, "rest": rest, "opt_state": opt_state}, metrics

  def local_train_indices(loop, state, dropout_seeds, train_x, train_y, idx, step):
    x, y = train_x[idx], train_y[idx]  # [S_local, B, ...], gathered on the device
    if mode != "devices":
      x = jax.lax.with_sharding_constraint(x, NamedSharding(mesh, P(None, "data")))
    return local_step(loop, state, dropout_seeds, x, y, step)

  local_train = local_step if inputs == "batch" else local_train_indices
  # What the train step's arguments after (state, dropout_seeds) are split by in mode
  # "devices": the replicated training set and the per-member indices, or the per-member rows.
  data_specs = (P("model"), P("model")) if inputs == "batch" else (P(), P(), P("model"))

  def local_eval(loop, state, x, y, mask):
    # One eval batch for every member; the host loops over batches (a lax.scan over them would
    # put the convolutions in a loop body, which XLA:CPU runs far slower).
    fn = lambda p, r: one_eval(p, r, x, y, mask)
    return step_lib.over_seeds(fn, loop)(state["params"], state["rest"])

  if mode == "devices":
    loop = "unroll" if backend == "cpu" else "vmap"
    train = jax.shard_map(
      lambda *a: local_train(loop, *a),
      mesh=mesh,
      in_specs=(P("model"), P("model"), *data_specs, P()),
      out_specs=(P("model"), P("model")),
      check_vma=False,  # every value is per-device; no collectives to check
    )
    evaluate = jax.shard_map(
      lambda *a: local_eval(loop, *a),
      mesh=mesh,
      in_specs=(P("model"), P(), P(), P()),
      out_specs=P("model"),
      check_vma=False,
    )
    return jax.jit(train, donate_argnums=0), jax.jit(evaluate)

  loop = "vmap" if mode == "vmap" else "unroll"
  replicated = NamedSharding(mesh, P())
  train = jax.jit(
    lambda *a: local_train(loop, *a),
    donate_argnums=0,
    out_shardings=(replicated, replicated),
  )
  evaluate = jax.jit(lambda *a: local_eval(loop, *a), out_shardings=replicated)
  return train, evaluate

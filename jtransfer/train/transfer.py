"""The transfer itself: a zoo checkpoint's backbone, a new head, the frozen layers.

  graphdef, params, rest = initial_state(group, workdir=workdir, num_classes=10)
  spec = optimizer_spec("adam", {"learning_rate": 1e-4}, steps_per_epoch=..., frozen_layers=2,
                        layers=model.layers)
  keeper = FrozenStats.make(rest, frozen_layers=2, layers=model.layers, sharding=...)

Transfer (thesis 2.3.3). Each checkpoint is read once per job (`finetune_plan.Restored`: the
content check and every member's start share the read) and its backbone gets a NEW head. The
head's initialisation depends only on `ft_seed` (it is the head of `functional.init(arch,
num_classes=<target classes>, seed=head_seed(ft_seed))`), so every checkpoint of a run starts
from the same head and the curves differ only by what was transferred. A backbone's batch-norm
statistics travel with its weights; the head's start fresh (a batch-norm backbone saved without
them is an error).

Frozen layers (`freezing`): the optimiser is the registered "freeze" optimiser wrapping the
configured one (`optax.multi_transform` + `optax.set_to_zero()`), and the running statistics of
frozen batch-norm layers are put back after every step (`FrozenStats`).
"""

from __future__ import annotations

import dataclasses
import functools
from collections.abc import Mapping, Sequence
from typing import Any

import jax
import numpy as np

from jtransfer.models import functional
from jtransfer.train import freezing
from jtransfer.train.finetune_plan import (
  RANDOM_INIT,
  SCRATCH,
  Member,
  Restored,
  head_seed,
  random_backbone_seed,
  scratch_seed,
)

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


def _from_checkpoint(checkpoints: Restored, member: Member, head_params, head_rest):
  """(params, rest) of a checkpoint member: its restored backbone + the shared head."""
  tree = checkpoints.take(member.path)
  backbone, backbone_rest = tree["backbone"], tree["rest"]
  _check_like(backbone, head_params["backbone"], f"the backbone of checkpoint {member.path}")
  params, rest = {"backbone": backbone, "head": head_params["head"]}, head_rest
  if backbone_rest:
    rest = {**head_rest, "backbone": backbone_rest}
  elif jax.tree.leaves(head_rest.get("backbone", {})):
    # Fresh statistics would fine-tune another model than the one pre-trained.
    raise ValueError(
      f"checkpoint {member.path} does not store the batch-norm statistics of its backbone: "
      "re-save it with them (checkpointing.with_rest)"
    )
  return params, rest


def initial_state(
  members: Sequence[Member],
  *,
  workdir,
  num_classes: int,
  model_kwargs: Mapping[str, Any] | None = None,
  checkpoints: Restored | None = None,
):
  """(graphdef, params, rest) of a group, stacked on a leading member axis (NumPy leaves).

  Checkpoint members: their restored backbone + the shared head of `head_seed(ft_seed)`;
  random_init: backbone of `random_backbone_seed(ft_seed)` + the shared head; scratch: the
  whole model of `scratch_seed(ft_seed)`. Batch statistics come from the head's model (fresh)
  unless the checkpoint holds its backbone's.
  """
  if not members:
    raise ValueError("empty group")
  arch, model_kwargs = members[0].arch, dict(model_kwargs or {})
  if any(m.arch != arch for m in members):
    raise ValueError("a group holds one architecture")
  host = lambda tree: jax.tree.map(np.asarray, tree)  # noqa: E731
  checkpoints = Restored(workdir) if checkpoints is None else checkpoints  # the job's reads
  cache: dict[int, tuple] = {}

  def model_at(seed):  # each seed's model is built once per group
    if seed not in cache:
      graphdef, params, rest = functional.init(
        arch, num_classes=num_classes, seed=seed, **model_kwargs
      )
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
      params, rest = _from_checkpoint(checkpoints, m, head_params, head_rest)
    params_list.append(params)
    rest_list.append(rest)
  stack = lambda trees: jax.tree.map(lambda *xs: np.stack([np.asarray(x) for x in xs]), *trees)  # noqa: E731
  return graphdef, stack(params_list), (stack(rest_list) if rest_list[0] else {})


# -- frozen layers --------------------------------------------------------------------------


def optimizer_spec(
  optimizer: str,
  optimizer_kwargs: Mapping[str, Any],
  *,
  steps_per_epoch: int,
  frozen_layers: int,
  layers: Sequence[str],
) -> tuple[str, tuple]:
  """The hashable `(name, kwargs)` optimiser of a fine-tune step: `optimizer` on the trainable
  layers, zero updates on the first `frozen_layers` (the engine's step builders take specs)."""
  return freezing.optimizer_spec(
    optimizer,
    {**optimizer_kwargs, "steps_per_epoch": steps_per_epoch},
    frozen_layers=frozen_layers,
    layers=layers,
  )


class _Static:
  """A hashable wrapper so a (bool) mask tree can be a static jit argument."""

  def __init__(self, tree):
    self.tree = tree
    self._key = str(jax.tree_util.tree_flatten_with_path(tree))

  def __hash__(self):
    return hash(self._key)

  def __eq__(self, other):
    return isinstance(other, _Static) and other._key == self._key


@functools.partial(jax.jit, static_argnums=2)
def _keep_frozen(rest, kept, mask: _Static):
  return jax.tree.map(lambda m, r, k: k if m else r, mask.tree, rest, kept)


@dataclasses.dataclass(frozen=True)
class FrozenStats:
  """The running statistics of a group's frozen layers, put back after every train step
  (freezing acts on parameters; batch statistics would otherwise drift with the target's)."""

  kept: Any  # the starting `rest`, on the device, in buffers of its own
  mask: _Static

  @classmethod
  def make(cls, rest, *, frozen_layers: int, layers: Sequence[str], sharding):
    """None when no frozen layer has statistics (nothing to keep)."""
    mask = freezing.frozen_rest_mask(rest, frozen_layers, layers)
    if not (rest and any(jax.tree.leaves(mask))):
      return None
    # Its own buffers: the train step donates (deletes) the state it is given.
    return cls(jax.device_put(rest, sharding), _Static(mask))

  def restore(self, rest):
    """`rest` with the frozen layers' statistics set back to the kept ones."""
    return _keep_frozen(rest, self.kept, self.mask)

"""Transfer modes and freezing through optax labels.

A transfer mode says how many of a model's parameterised layers (`model.layers`, input to
output) stay frozen while fine-tuning:

  full          nothing frozen (every transferred and new weight trains; thesis CNN)
  head          the whole backbone frozen: only the new head trains
  last_block    the backbone but its last layer frozen: the last conv layer + the head train
                (thesis VGG, after Ansuini et al. 2019; CNN: conv2 + fc1 + logits)
  frozen=<l>    the first l layers frozen, l = 0 .. L-1 (gradual transfer, Fayek et al.)
  frozen=all    shorthand for every frozen=<l>, l = 0 .. L-1

  parse_modes(("full", "frozen=all"), layers=model.layers, backbone_layers=...)
      -> [("full", 0), ("frozen", 0), ("frozen", 1), ...]       # (mode, frozen_layers) units
  tx = freeze(optim.make_optimizer("adam", learning_rate=1e-4), params, 2, model.layers)

`freeze` wraps the optimiser in `optax.multi_transform`: frozen leaves go through
`optax.set_to_zero()` and get no state of the inner optimiser at all, so neither momentum,
Adam moments nor weight decay can move them; their update is an exact zero, and the frozen
params come out of `optax.apply_updates` bit for bit unchanged.

Batch norm. Freezing acts on parameters; batch statistics are not parameters, so the
fine-tune job additionally keeps the running statistics of frozen layers as they were
(`frozen_rest_mask`). In a train step a frozen batch-norm layer still normalises with the
batch's statistics (as PyTorch's `model.train()` does with `requires_grad=False`); at
evaluation it uses its kept running statistics.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import jax
import optax

from jtransfer.models import functional
from jtransfer.train import optim

MODES = ("full", "head", "last_block", "frozen")
FROZEN_LABEL, TRAINABLE_LABEL = "frozen", "trainable"


def frozen_count(
  mode: str,
  *,
  layers: Sequence[str],
  backbone_layers: Sequence[str],
  frozen_layers: int | None = None,
) -> int:
  """How many leading layers of `layers` a mode freezes (`frozen_layers` only for "frozen")."""
  layers, backbone_layers = tuple(layers), tuple(backbone_layers)
  if layers[: len(backbone_layers)] != backbone_layers:
    raise ValueError(f"the backbone layers {backbone_layers} must be the first layers of {layers}")
  if mode != "frozen" and frozen_layers is not None:
    raise ValueError(f"frozen_layers is only for mode 'frozen', got it with {mode!r}")
  if mode == "full":
    return 0
  if mode == "head":
    return len(backbone_layers)
  if mode == "last_block":
    if not backbone_layers:
      raise ValueError("mode 'last_block' needs a model with at least one backbone layer")
    return len(backbone_layers) - 1
  if mode == "frozen":
    if isinstance(frozen_layers, bool) or not isinstance(frozen_layers, int):
      raise ValueError(f"mode 'frozen' needs an int frozen_layers, got {frozen_layers!r}")
    if not 0 <= frozen_layers < len(layers):
      raise ValueError(
        f"frozen_layers must be in [0, {len(layers) - 1}] (this model has {len(layers)} "
        f"layers; freezing all of them would train nothing), got {frozen_layers}"
      )
    return frozen_layers
  raise ValueError(f"unknown transfer mode {mode!r}; valid: {', '.join(MODES)}")


def parse_modes(
  specs: Sequence[str] | str, *, layers: Sequence[str], backbone_layers: Sequence[str]
) -> list[tuple[str, int]]:
  """Mode strings -> unique `(mode, frozen_layers)` pairs in the given order.

  `frozen_layers` is the number of frozen leading layers (0 for "full"), which is what the
  `finetune` table stores next to the mode.
  """
  if isinstance(specs, str):
    specs = (specs,)
  out: list[tuple[str, int]] = []
  for spec in specs:
    if not isinstance(spec, str):
      raise ValueError(f"a transfer mode must be a string, got {spec!r}")
    name, sep, arg = spec.partition("=")
    if name == "frozen":
      if not sep:
        raise ValueError("mode 'frozen' needs a count: 'frozen=<l>' or 'frozen=all'")
      if arg == "all":
        pairs = [("frozen", n) for n in range(len(layers))]
      else:
        try:
          count = int(arg)
        except ValueError:
          raise ValueError(f"bad mode {spec!r}: 'frozen=<l>' needs an integer l") from None
        pairs = [("frozen", count)]
    elif sep:
      raise ValueError(f"mode {name!r} takes no argument, got {spec!r}")
    else:
      pairs = [(name, None)]
    for mode, arg_l in pairs:
      count = frozen_count(
        mode, layers=layers, backbone_layers=backbone_layers, frozen_layers=arg_l
      )
      if (mode, count) not in out:
        out.append((mode, count))
  if not out:
    raise ValueError("no transfer modes given")
  return out


def labels(params, frozen_layers: int | Sequence[str], layers: Sequence[str]):
  """ "frozen" / "trainable" label tree like `params` (stacked or not: only the keys matter)."""
  return functional.freeze_labels(params, frozen_layers, layers)


def freeze(
  tx: optax.GradientTransformation,
  params,
  frozen_layers: int | Sequence[str],
  layers: Sequence[str],
) -> optax.GradientTransformation:
  """`tx` on the trainable leaves, `optax.set_to_zero()` on the frozen ones."""
  label_tree = labels(params, frozen_layers, layers)
  if not any(v == TRAINABLE_LABEL for v in jax.tree.leaves(label_tree)):
    raise ValueError(f"freezing {frozen_layers} of {tuple(layers)} leaves nothing to train")
  return optax.multi_transform({TRAINABLE_LABEL: tx, FROZEN_LABEL: optax.set_to_zero()}, label_tree)


@optim.register("freeze")
def _freeze_factory(
  *, inner: str, frozen_layers: int, layers: Sequence[str], **inner_kwargs
) -> optax.GradientTransformation:
  """`make_optimizer("freeze", inner="adam", frozen_layers=2, layers=model.layers, ...)`.

  The optimiser `inner` (with `inner_kwargs`) on all but the first `frozen_layers` layers: the
  same transformation as `freeze`, built from hashable arguments only, so that jobs that
  describe their optimiser as `(name, kwargs)` (the pre-training step builder) can freeze.
  """
  layers = tuple(layers)
  if isinstance(frozen_layers, bool) or not isinstance(frozen_layers, int):
    raise ValueError(f"frozen_layers must be an int, got {frozen_layers!r}")
  if not 0 <= frozen_layers < len(layers):
    raise ValueError(
      f"frozen_layers must be in [0, {len(layers) - 1}] for layers {layers}, got {frozen_layers}"
    )
  return optax.multi_transform(
    {
      TRAINABLE_LABEL: optim.make_optimizer(inner, **inner_kwargs),
      FROZEN_LABEL: optax.set_to_zero(),
    },
    lambda params: labels(params, frozen_layers, layers),
  )


def optimizer_spec(
  inner: str, inner_kwargs: Mapping[str, Any], *, frozen_layers: int, layers: Sequence[str]
) -> tuple[str, tuple]:
  """The hashable `(name, sorted kwargs)` of the "freeze" optimiser (see `_freeze_factory`)."""
  kwargs = {**inner_kwargs, "inner": inner, "frozen_layers": frozen_layers, "layers": tuple(layers)}
  return "freeze", tuple(sorted(kwargs.items()))


def frozen_rest_mask(rest, frozen_layers: int | Sequence[str], layers: Sequence[str]):
  """Bool tree like `rest` (batch statistics): True where the leaf belongs to a frozen layer."""
  if not rest:
    return rest
  frozen = functional.frozen_set(frozen_layers, layers)
  return {
    part: {
      layer: jax.tree.map(lambda _, f=layer in frozen: f, sub) for layer, sub in sublayers.items()
    }
    for part, sublayers in rest.items()
  }

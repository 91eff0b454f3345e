"""Pure-function view of the models, for plain `jax.jit` / `jax.grad` / `jax.vmap`.

Flax examples/gemma style: split a model once into a static `graphdef` and two pytrees, and
`nnx.merge` them back inside the pure function.

- `params`: the `nnx.Param` variables as a **pure dict** (nested dicts of arrays)
  `{"backbone": {<layer>: {...}}, "head": {<layer>: {...}}}`. Pure dicts go straight into optax
  (label trees from `layer_labels` / `freeze_labels`) and orbax (partial restore of "backbone").
- `rest`: every other variable (batch-norm statistics) as a pure dict; `{}` for models without
  batch norm.
- "Stacked" trees have a leading model axis on every leaf (several seeds or checkpoints of one
  architecture); `jax.vmap(apply, in_axes=(None, 0, 0, None))` runs them all in one pass.

  graphdef, params, rest = init_stacked("cnn", num_classes=10, seeds=range(4))
  run = jax.vmap(lambda p, r, x: apply(graphdef, p, r, x, taps=("pool2",))[0],
                 in_axes=(0, 0, None))
  acts = run(params, rest, images)            # {"pool2": [4, B, 5, 5, 64]}
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

import jax
import jax.numpy as jnp
from flax import nnx

from jtransfer.models import base

PARTS = ("backbone", "head")


def split(model: nnx.Module):
  """(graphdef, params, rest): params = nnx.Param state, rest = everything else; pure dicts."""
  graphdef, params, rest = nnx.split(model, nnx.Param, ...)
  return graphdef, nnx.to_pure_dict(params), nnx.to_pure_dict(rest)


def merge(graphdef, params, rest) -> nnx.Module:
  """The stateful model back from `split`'s output (pure dicts or nnx.State)."""
  return nnx.merge(graphdef, params, rest)


def apply(graphdef, params, rest, x, *, taps=None, train: bool = False, dropout_key=None):
  """One forward pass: (logits or {tap: activation}, new_rest).

  `new_rest` carries batch-norm statistics updated by a `train=True` pass (unchanged otherwise).
  Pure: safe under jit / grad / vmap (vmap over a leading axis of params, rest and dropout_key).
  """
  model = nnx.merge(graphdef, params, rest)
  out = model(x, taps=taps, train=train, dropout_key=dropout_key)
  _, _, new_rest = nnx.split(model, nnx.Param, ...)
  return out, nnx.to_pure_dict(new_rest)


def _graphdef(name: str, num_classes: int, hyper: dict):
  abstract = nnx.eval_shape(
    lambda: base.get_model(name, num_classes=num_classes, rngs=nnx.Rngs(0), **hyper)
  )
  return nnx.split(abstract, nnx.Param, ...)[0]


def init(name: str, *, num_classes: int, seed: int, **hyper):
  """(graphdef, params, rest) of one model initialised from `jax.random.key(seed)`.

  Same numbers as `split(get_model(name, num_classes=..., rngs=nnx.Rngs(seed)))`.
  """
  return split(base.get_model(name, num_classes=num_classes, rngs=nnx.Rngs(seed), **hyper))


def init_stacked(name: str, *, num_classes: int, seeds: Iterable[int], **hyper):
  """(graphdef, stacked_params, stacked_rest): one independent init per seed, stacked on axis 0.

  Each seed's slice equals `init(name, num_classes=..., seed=s)` (the vmapped init draws from
  `jax.random.key(s)` exactly as the unbatched one does).
  """
  seeds = [int(s) for s in seeds]
  if not seeds:
    raise ValueError("seeds is empty; pass at least one seed")

  def one(key):
    model = base.get_model(name, num_classes=num_classes, rngs=nnx.Rngs(key), **hyper)
    _, params, rest = split(model)
    return params, rest

  keys = jax.vmap(jax.random.key)(jnp.asarray(seeds, dtype=jnp.uint32))
  params, rest = jax.jit(jax.vmap(one))(keys)
  return _graphdef(name, num_classes, hyper), params, rest


def abstract_init(name: str, *, num_classes: int, **hyper):
  """(graphdef, params, rest) with `jax.ShapeDtypeStruct` leaves: shapes without allocating.

  Use it as the restore target for checkpoints and to count parameters of big models.
  """
  model = nnx.eval_shape(
    lambda: base.get_model(name, num_classes=num_classes, rngs=nnx.Rngs(0), **hyper)
  )
  return split(model)


def stack(trees: Sequence):
  """Stacks same-structure pytrees on a new leading axis (e.g. per-checkpoint params)."""
  if not trees:
    raise ValueError("nothing to stack")
  return jax.tree.map(lambda *xs: jnp.stack(xs), *trees)


def unstack(tree, index: int):
  """The `index`-th model of a stacked pytree."""
  return jax.tree.map(lambda x: x[index], tree)


def _check_layout(params) -> None:
  if not isinstance(params, dict) or not set(params) <= set(PARTS):
    keys = list(params) if isinstance(params, dict) else type(params).__name__
    raise ValueError(f"params must be a pure dict with keys {PARTS}, got {keys}")


def layer_labels(params):
  """Same-structure pytree whose every leaf is the name of the layer it belongs to."""
  _check_layout(params)
  return {
    part: {layer: jax.tree.map(lambda _, n=layer: n, sub) for layer, sub in layers.items()}
    for part, layers in params.items()
  }


def frozen_set(frozen_layers: int | Sequence[str], layers: Sequence[str]) -> frozenset[str]:
  """The layer names frozen by `frozen_layers`: the first l of `layers`, or the given names."""
  layers = tuple(layers)
  if isinstance(frozen_layers, int | jnp.integer) and not isinstance(frozen_layers, bool):
    n = int(frozen_layers)
    if not 0 <= n <= len(layers):
      raise ValueError(f"frozen_layers must be in [0, {len(layers)}], got {n}")
    return frozenset(layers[:n])
  if isinstance(frozen_layers, str):
    frozen_layers = (frozen_layers,)
  unknown = [n for n in frozen_layers if n not in layers]
  if unknown:
    raise ValueError(f"unknown layers {unknown}; this model has {layers}")
  return frozenset(frozen_layers)


def freeze_mask(params, frozen_layers: int | Sequence[str], layers: Sequence[str]):
  """Bool pytree like params: True where the leaf belongs to a frozen layer.

  `frozen_layers`: an int l freezes the first l names of `layers` (model.layers, input to
  output; l = 0 freezes nothing); a sequence of names freezes exactly those. With optax:
  `optax.chain(optax.masked(optax.set_to_zero(), mask), ...)` or `freeze_labels` with
  `optax.multi_transform`.
  """
  frozen = frozen_set(frozen_layers, layers)
  labels = layer_labels(params)
  missing = frozen - {n for part in labels.values() for n in part}
  if missing:
    raise ValueError(f"layers {sorted(missing)} have no parameters in this params tree")
  return jax.tree.map(lambda n: n in frozen, labels)


def freeze_labels(params, frozen_layers: int | Sequence[str], layers: Sequence[str]):
  """Like `freeze_mask` but with "frozen" / "trainable" leaves, for `optax.multi_transform`."""
  mask = freeze_mask(params, frozen_layers, layers)
  return jax.tree.map(lambda m: "frozen" if m else "trainable", mask)

"""The interface every model family implements, and the model registry.

A model is an `nnx.Module` with two parts, `backbone` and `head` (attributes of those names),
and an ordered tuple `taps` naming the layers whose activations can be read. The layer names
are the vocabulary of the whole project (scores, freezing, reports).

  model = get_model("cnn", num_classes=10, rngs=nnx.Rngs(0))
  logits = model(x)                                  # [B, num_classes]
  acts = model(x, taps=("pool2", "fc1"))              # {"pool2": [B, 5, 5, 64], "fc1": [B, 128]}

Conventions:
- Constructors take hyperparameters only (`num_classes`, widths, dtype, `rngs`).
- Call signature: `model(x, *, taps=None, train=False, dropout_key=None)`. `train=True` turns on
  dropout (keys from `dropout_key`, required then) and batch-norm statistics updates; the mode is
  an argument, not module state, so the same model runs under `jax.vmap` over stacked params.
- Parameters are organised as `{"backbone": {<layer>: ...}, "head": {<layer>: ...}}` in the pure
  dict (`nnx.state(model, nnx.Param).to_pure_dict()`); `model.layers` is the ordered tuple of
  parameterised layer names (input to output), so "freeze the first l layers" is a label tree.
- `head` holds exactly the layers that are replaced on transfer (the classifier).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

from flax import nnx

ModelFactory = Callable[..., nnx.Module]

_REGISTRY: dict[str, ModelFactory] = {}


def register(name: str) -> Callable[[ModelFactory], ModelFactory]:
  def wrap(factory: ModelFactory) -> ModelFactory:
    if name in _REGISTRY:
      raise ValueError(f"model {name!r} is registered twice")
    _REGISTRY[name] = factory
    return factory

  return wrap


def names() -> tuple[str, ...]:
  return tuple(sorted(_REGISTRY))


def get_model(name: str, **kwargs) -> nnx.Module:
  try:
    factory = _REGISTRY[name]
  except KeyError:
    raise ValueError(f"unknown model {name!r}; valid names: {', '.join(names())}") from None
  return factory(**kwargs)


def check_taps(requested: Sequence[str], available: Sequence[str]) -> tuple[str, ...]:
  unknown = [t for t in requested if t not in available]
  if unknown:
    raise ValueError(f"unknown taps {unknown}; this model has {tuple(available)}")
  return tuple(requested)

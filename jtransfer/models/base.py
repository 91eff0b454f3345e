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
  dict (`nnx.to_pure_dict(nnx.state(model, nnx.Param))`); `model.layers` is the ordered tuple of
  parameterised layer names (input to output), so "freeze the first l layers" is a label tree.
- `head` holds exactly the layers that are replaced on transfer (the classifier).
- The last tap is always "logits" (the pre-softmax output); taps are returned unflattened
  (NHWC for conv maps) and flattening is the caller's business.

`Model` below implements `__call__` once for every family: a subclass writes `_forward`, a
generator that yields `(tap, activation)` in network order, and `__call__` collects the requested
taps and stops after the last one (so asking for an early tap does not run the rest).
Stochastic layers use `dropout` below with keys derived from the one `dropout_key`, so a model
holds no RNG state and the split `rest` (see `functional.py`) is only batch statistics.
Random initialisers here (`variance_scaling`, `uniform_init`, `normal_init`, the PyTorch and
torchvision ones) draw flat and reshape: prefer them to `nnx.initializers` (same distributions,
~10x less XLA:CPU compile time for a model's jitted init).

Registered here: cnn, cnn_tiny (cnn.py); vgg16, vgg19, vgg16_bn, vgg_tiny (vgg.py); resnet18,
resnet_tiny (resnet.py). `audio.py` registers the audio models when imported.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterator, Mapping, Sequence
from typing import Any

import jax
import jax.numpy as jnp
from flax import nnx

ModelFactory = Callable[..., nnx.Module]

_REGISTRY: dict[str, ModelFactory] = {}
_DATA_KWARGS: dict[str, Callable[[Any], dict[str, Any]]] = {}


def register(
  name: str, *, data_kwargs: Callable[[Any], dict[str, Any]] | None = None
) -> Callable[[ModelFactory], ModelFactory]:
  """Registers a model factory under `name`.

  data_kwargs(spec) -> the hyperparameters the dataset fixes (an audio model's clip length and
  sample rate): every job passes them for the data it feeds the model (`fit_to_data`).
  """

  def wrap(factory: ModelFactory) -> ModelFactory:
    if name in _REGISTRY:
      raise ValueError(f"model {name!r} is registered twice")
    _REGISTRY[name] = factory
    if data_kwargs is not None:
      _DATA_KWARGS[name] = data_kwargs
    return factory

  return wrap


def fit_to_data(name: str, model_kwargs: Mapping[str, Any] | None, spec) -> dict[str, Any]:
  """`model_kwargs` with the input hyperparameters `spec` (a `DatasetSpec`) decides.

  They describe the data, not the weights (a log-mel front end has no parameters), so they
  override the configured ones: a model pre-trained on 16 kHz speech reads 8 kHz digits with a
  front end at 8 kHz, its convolutions unchanged.
  """
  fn = _DATA_KWARGS.get(name)
  return {**dict(model_kwargs or {}), **(fn(spec) if fn is not None else {})}


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


class Model(nnx.Module):
  """Base class: `taps`, `layers`, `backbone`, `head` and the shared `__call__`.

  Subclasses set `self.taps` (ordered, ending with "logits"), `self.backbone` and `self.head`
  (`nnx.Dict`s keyed by layer name) and `self.layers` (the ordered keys of both), and implement
  `_forward(x, *, train, dropout_key)`.
  """

  taps: tuple[str, ...]
  layers: tuple[str, ...]

  @property
  def backbone_layers(self) -> tuple[str, ...]:
    return tuple(n for n in self.layers if n in self.backbone)

  @property
  def head_layers(self) -> tuple[str, ...]:
    return tuple(n for n in self.layers if n in self.head)

  def _forward(self, x: jax.Array, *, train: bool, dropout_key) -> Iterator[tuple[str, jax.Array]]:
    raise NotImplementedError

  def __call__(self, x, *, taps=None, train: bool = False, dropout_key=None):
    if isinstance(taps, str):
      taps = (taps,)
    wanted = (self.taps[-1],) if taps is None else check_taps(taps, self.taps)
    if not wanted:
      raise ValueError("taps is empty; pass None for logits or a non-empty sequence of tap names")
    remaining = set(wanted)
    out = {}
    for name, act in self._forward(x, train=train, dropout_key=dropout_key):
      if name in remaining:
        out[name] = act
        remaining.discard(name)
        if not remaining:
          break
    if taps is None:
      return out[self.taps[-1]]
    return {t: out[t] for t in wanted}


def check_input(x, shape: tuple[int, ...], model: str) -> None:
  """Raises a ValueError unless x is [B, *shape] (shapes are static, so this is free in jit)."""
  if x.ndim != len(shape) + 1 or tuple(x.shape[1:]) != tuple(shape):
    raise ValueError(
      f"{model} expects inputs of shape [batch, {', '.join(map(str, shape))}] (NHWC), "
      f"got {tuple(x.shape)}"
    )


def dropout(x, rate: float, *, train: bool, key, index: int, broadcast_dims: Sequence[int] = ()):
  """Inverted dropout; identity unless `train`. `index` makes each layer's mask independent.

  `broadcast_dims` shares one mask value along those axes (e.g. (1, 2) on NHWC drops whole
  channels, as PyTorch's `Dropout2d`).
  """
  if not train or rate == 0.0:
    return x
  if key is None:
    raise ValueError("train=True needs a dropout_key (a jax.random.key) for the dropout layers")
  if not 0.0 <= rate < 1.0:
    raise ValueError(f"dropout rate must be in [0, 1), got {rate}")
  shape = list(x.shape)
  for d in broadcast_dims:
    shape[d] = 1
  # Flat draw, reshaped: same mask, much faster XLA:CPU compile (see the initialisers below).
  keep = jax.random.bernoulli(jax.random.fold_in(key, index), 1.0 - rate, (math.prod(shape),))
  keep = keep.reshape(shape)
  return jnp.where(keep, x / (1.0 - rate), jnp.zeros_like(x))


# Initialisers matching PyTorch's, so a zoo trained here starts from the same distributions as
# the thesis' PyTorch models. They draw a flat vector and reshape it (the same numbers as drawing
# the shape directly): XLA:CPU compiles many multi-dimensional threefry draws in one jitted init
# much slower than flat ones (BENCHMARKS.md, "Numbers from the docstrings").


def _fans(shape) -> tuple[int, int]:
  """(fan_in, fan_out) of a dense [in, out] or conv [*window, in, out] kernel."""
  if len(shape) < 2:
    raise ValueError(f"fan-based init needs a kernel of rank >= 2, got shape {tuple(shape)}")
  receptive = math.prod(shape[:-2])
  return shape[-2] * receptive, shape[-1] * receptive


def uniform_init(bound: float) -> nnx.Initializer:
  def init(key, shape, dtype=jnp.float32):
    flat = jax.random.uniform(key, (math.prod(shape),), dtype, -bound, bound)
    return flat.reshape(shape)

  return init


def normal_init(std: float) -> nnx.Initializer:
  def init(key, shape, dtype=jnp.float32):
    return (std * jax.random.normal(key, (math.prod(shape),), dtype)).reshape(shape)

  return init


def variance_scaling(scale: float, mode: str, distribution: str) -> nnx.Initializer:
  """Like `nnx.initializers.variance_scaling` ("uniform" or untruncated "normal"), flat draws.

  Variance scale / fan, fan = fan_in or fan_out of the kernel (window size included).
  """
  if mode not in ("fan_in", "fan_out"):
    raise ValueError(f"mode must be 'fan_in' or 'fan_out', got {mode!r}")
  if distribution not in ("uniform", "normal"):
    raise ValueError(f"distribution must be 'uniform' or 'normal', got {distribution!r}")

  def init(key, shape, dtype=jnp.float32):
    fan_in, fan_out = _fans(shape)
    std = math.sqrt(scale / (fan_in if mode == "fan_in" else fan_out))
    make = uniform_init(math.sqrt(3.0) * std) if distribution == "uniform" else normal_init(std)
    return make(key, shape, dtype)

  return init


def torch_default_kernel_init(key, shape, dtype=jnp.float32):
  """nn.Linear / nn.Conv2d default, kaiming_uniform(a=sqrt(5)): U(+-1/sqrt(fan_in))."""
  return uniform_init(1.0 / math.sqrt(_fans(shape)[0]))(key, shape, dtype)


def torch_default_bias_init(fan_in: int) -> nnx.Initializer:
  """nn.Linear / nn.Conv2d default bias: U(+-1/sqrt(fan_in)) (the bias alone has no fan_in)."""
  return uniform_init(1.0 / math.sqrt(fan_in))


# torchvision VGG / ResNet convs: kaiming_normal(mode="fan_out", nonlinearity="relu").
kaiming_normal_fan_out = variance_scaling(2.0, "fan_out", "normal")


def count_params(tree) -> int:
  """Number of scalars in a pytree of arrays or shape structs."""
  return sum(math.prod(leaf.shape) for leaf in jax.tree.leaves(tree))

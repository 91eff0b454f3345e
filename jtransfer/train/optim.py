"""Optimisers from plain arguments, through a small registry.

  make_optimizer("adam", learning_rate=1e-4)                                  # thesis CNN
  make_optimizer("sgd", learning_rate=0.01, momentum=0.9, decay_every_epochs=20,
                 decay_factor=0.1, steps_per_epoch=spe)                       # thesis VGG

A step decay ("lr x 0.1 every 20 epochs") is a staircase `optax.exponential_decay`; it is
expressed in epochs and turned into steps here, so configs say what the paper says.
"""

from __future__ import annotations

from collections.abc import Callable

import optax

OptimizerFactory = Callable[..., optax.GradientTransformation]

_REGISTRY: dict[str, OptimizerFactory] = {}


def register(name: str) -> Callable[[OptimizerFactory], OptimizerFactory]:
  def wrap(factory: OptimizerFactory) -> OptimizerFactory:
    if name in _REGISTRY:
      raise ValueError(f"optimizer {name!r} is registered twice")
    _REGISTRY[name] = factory
    return factory

  return wrap


def names() -> tuple[str, ...]:
  return tuple(sorted(_REGISTRY))


def learning_rate_schedule(
  learning_rate: float,
  *,
  decay_every_epochs: float | None = None,
  decay_factor: float = 0.1,
  steps_per_epoch: int | None = None,
) -> optax.Schedule | float:
  """A constant rate, or a staircase decay by `decay_factor` every `decay_every_epochs`."""
  if not learning_rate > 0:
    raise ValueError(f"learning_rate must be > 0, got {learning_rate}")
  if decay_every_epochs is None:
    return learning_rate
  if steps_per_epoch is None or steps_per_epoch < 1:
    raise ValueError("a step decay in epochs needs steps_per_epoch >= 1")
  if not decay_every_epochs > 0:
    raise ValueError(f"decay_every_epochs must be > 0, got {decay_every_epochs}")
  if not 0 < decay_factor <= 1:
    raise ValueError(f"decay_factor must be in (0, 1], got {decay_factor}")
  return optax.exponential_decay(
    init_value=learning_rate,
    transition_steps=max(1, round(decay_every_epochs * steps_per_epoch)),
    decay_rate=decay_factor,
    staircase=True,
  )


@register("adam")
def _adam(*, learning_rate, b1=0.9, b2=0.999, eps=1e-8, **decay) -> optax.GradientTransformation:
  return optax.adam(learning_rate_schedule(learning_rate, **decay), b1=b1, b2=b2, eps=eps)


@register("sgd")
def _sgd(*, learning_rate, momentum=0.0, nesterov=False, **decay) -> optax.GradientTransformation:
  return optax.sgd(
    learning_rate_schedule(learning_rate, **decay), momentum=momentum or None, nesterov=nesterov
  )


def make_optimizer(name: str, **kwargs) -> optax.GradientTransformation:
  """The named optimizer; kwargs: learning_rate, its own options and the step-decay options."""
  try:
    factory = _REGISTRY[name]
  except KeyError:
    raise ValueError(f"unknown optimizer {name!r}; valid names: {', '.join(names())}") from None
  return factory(**kwargs)

"""Layer names from the models themselves: the order of the stored layers (each architecture's
taps, input to output) and the default focus layer (the tap the classifier head reads). The
analysis knows no layer by name; a layer no registered model declares keeps its place of first
appearance in the store."""

import functools
from collections.abc import Iterable, Sequence


@functools.cache
def _model(arch: str):
  """`arch` built abstractly at its default hyperparameters; None when the model registry does
  not know it or cannot build it without more arguments (the store does not record them)."""
  from flax import nnx  # noqa: PLC0415 (only an analysis of stored layers needs the models)

  from jtransfer import models  # noqa: PLC0415

  if arch not in models.names():
    return None
  try:
    return nnx.eval_shape(lambda: models.get_model(arch, num_classes=2, rngs=nnx.Rngs(0)))
  except TypeError:  # a constructor argument without default
    return None


def model_taps(arch: str) -> tuple[str, ...]:
  """`arch`'s taps, input to output; () for an architecture the registry cannot build."""
  model = _model(arch)
  return () if model is None else tuple(model.taps)


def head_input(arch: str) -> str | None:
  """The last tap before the first head layer of `arch`; None when unknown."""
  model = _model(arch)
  if model is None:
    return None
  head = set(model.head_layers)
  first_head = next((i for i, t in enumerate(model.taps) if t in head), len(model.taps))
  return model.taps[first_head - 1] if first_head > 0 else None


def _merge(orders: Iterable[Sequence[str]]) -> list[str]:
  """One order holding every name of `orders`: a name new to it goes just before the next name
  of its own order that is already there (the end when none is)."""
  merged: list[str] = []
  for order in orders:
    for i, name in enumerate(order):
      if name in merged:
        continue
      after = next((u for u in order[i + 1 :] if u in merged), None)
      merged.insert(merged.index(after) if after is not None else len(merged), name)
  return merged


def layer_order(layers: Iterable, archs: Iterable = ()) -> list[str]:
  """The distinct `layers` in the taps' order of the architectures `archs` (sorted, merged);
  layers none of them declares follow in their order of first appearance."""
  seen = list(dict.fromkeys(str(x) for x in layers))
  merged = _merge(model_taps(a) for a in sorted(set(map(str, archs))))
  known = [x for x in merged if x in seen]
  return known + [x for x in seen if x not in known]


def default_focus_layer(archs: Iterable[str], layers: Sequence[str]) -> str:
  """The head input of the first architecture (sorted) whose head input was scored; else the
  second-deepest stored layer (`layers` in input-to-output order)."""
  for arch in sorted(set(map(str, archs))):
    tap = head_input(arch)
    if tap in layers:
      return tap
  return layers[-2] if len(layers) > 1 else layers[0]

"""The default focus layer of a report: the tap the classifier head reads (the model's
embedding), taken from the model's own taps, not from a layer name."""

from collections.abc import Iterable, Sequence


def head_input(arch: str) -> str | None:
  """The last tap before the first head layer of `arch` (built abstractly, at its default
  hyperparameters); None for an architecture the model registry does not know or cannot build
  without more arguments."""
  from flax import nnx  # noqa: PLC0415 (only a report without a configured focus layer needs it)

  from jtransfer import models  # noqa: PLC0415

  if arch not in models.names():
    return None
  try:
    model = nnx.eval_shape(lambda: models.get_model(arch, num_classes=2, rngs=nnx.Rngs(0)))
  except TypeError:  # a constructor argument without default: the store does not record it
    return None
  head = set(model.head_layers)
  first_head = next((i for i, t in enumerate(model.taps) if t in head), len(model.taps))
  return model.taps[first_head - 1] if first_head > 0 else None


def default_focus_layer(archs: Iterable[str], layers: Sequence[str]) -> str:
  """The head input of the first architecture (sorted) whose head input was scored; else the
  second-deepest stored layer (`layers` in input-to-output order)."""
  for arch in sorted(set(map(str, archs))):
    tap = head_input(arch)
    if tap in layers:
      return tap
  return layers[-2] if len(layers) > 1 else layers[0]

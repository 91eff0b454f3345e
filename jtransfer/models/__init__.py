"""Model families (Flax NNX): the thesis CNN, VGG, ResNet; see `base.py` for the interface."""

from jtransfer.models import audio, cnn, functional, resnet, vgg  # noqa: F401  (registers the models)
from jtransfer.models.base import Model, check_taps, count_params, get_model, names, register

__all__ = [
  "Model",
  "check_taps",
  "count_params",
  "functional",
  "get_model",
  "names",
  "register",
]

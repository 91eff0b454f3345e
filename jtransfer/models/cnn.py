"""The thesis CNN for MNIST-like data (thesis section 2.1.1; flombe/thesis `mnist_archs.py`).

  conv1 3x3/32 VALID -> maxpool 2 -> ReLU -> conv2 3x3/64 VALID -> maxpool 2 -> ReLU
  -> dropout .25 -> flatten (5*5*64 = 1600) -> fc1 128 -> ReLU -> dropout .5 -> logits C

Choices, read from the thesis text and the released code it describes:
- Taps follow the thesis' `extract_all`: `conv1` and `conv2` are the raw convolution outputs
  (before pooling and ReLU), `pool1`/`pool2` are after max-pool and ReLU (the two commute),
  `fc1` is after its ReLU. `logits` are the pre-softmax outputs (the thesis stored log-softmax,
  which only shifts each row by a constant).
- The first dropout is channel-wise (PyTorch `Dropout2d` on the 5x5x64 map: a whole channel is
  dropped), as in the released code; `spatial_dropout=False` gives element-wise dropout as the
  text describes it. The second dropout is element-wise (Dropout2d on a 2-D input is).
- Transfer (thesis 2.3.3): "only keep the weights of the convolutional layers and substitute the
  fully connected layers with newly initialized ones", so backbone = conv1, conv2 and
  head = fc1, logits. `transfer_fc1=True` (arch `cnn_fc1`) hands fc1 over too, head = logits
  only: Fayek et al.'s protocol, where every layer but the output is transferred, so freezing
  the first l = 3 layers makes the whole transferred network a frozen feature extractor.
- Init: PyTorch defaults (the thesis trained in PyTorch): weights and biases U(+-1/sqrt(fan_in)).
- Flattening is NHWC order (h, w, c), not PyTorch's (c, h, w); scores are invariant to it.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
from flax import nnx

from jtransfer.models import base, pooling


def _conv(cin: int, cout: int, rngs: nnx.Rngs, dtype) -> nnx.Conv:
  return nnx.Conv(
    cin,
    cout,
    kernel_size=(3, 3),
    padding="VALID",
    kernel_init=base.torch_default_kernel_init,
    bias_init=base.torch_default_bias_init(cin * 9),
    dtype=dtype,
    rngs=rngs,
  )


def _dense(fin: int, fout: int, rngs: nnx.Rngs, dtype) -> nnx.Linear:
  return nnx.Linear(
    fin,
    fout,
    kernel_init=base.torch_default_kernel_init,
    bias_init=base.torch_default_bias_init(fin),
    dtype=dtype,
    rngs=rngs,
  )


def _pool_relu(x):
  return jax.nn.relu(pooling.max_pool_2x2(x))


class CNN(base.Model):
  """Two conv layers and two dense layers; `width` scales the channels (1.0 = the thesis)."""

  def __init__(
    self,
    *,
    num_classes: int,
    rngs: nnx.Rngs,
    image_size: int = 28,
    in_channels: int = 1,
    width: float = 1.0,
    hidden: int = 128,
    dropout1: float = 0.25,
    dropout2: float = 0.5,
    spatial_dropout: bool = True,
    transfer_fc1: bool = False,
    dtype=None,
  ):
    if num_classes < 1:
      raise ValueError(f"num_classes must be >= 1, got {num_classes}")
    c1, c2 = max(1, round(32 * width)), max(1, round(64 * width))
    s = ((image_size - 2) // 2 - 2) // 2  # spatial size after conv-pool-conv-pool
    if s < 1:
      raise ValueError(f"image_size {image_size} is too small for the CNN (needs >= 10)")
    self.input_shape = (image_size, image_size, in_channels)
    self.flat_features = s * s * c2  # 1600 for the thesis' 28x28 inputs
    self.rates = (dropout1, dropout2)
    self.spatial_dropout = spatial_dropout
    conv1, conv2 = _conv(in_channels, c1, rngs, dtype), _conv(c1, c2, rngs, dtype)
    fc1 = _dense(self.flat_features, hidden, rngs, dtype)
    logits = _dense(hidden, num_classes, rngs, dtype)
    if transfer_fc1:
      self.backbone = nnx.Dict(conv1=conv1, conv2=conv2, fc1=fc1)
      self.head = nnx.Dict(logits=logits)
    else:
      self.backbone = nnx.Dict(conv1=conv1, conv2=conv2)
      self.head = nnx.Dict(fc1=fc1, logits=logits)
    self.layers = ("conv1", "conv2", "fc1", "logits")
    self.taps = ("conv1", "pool1", "conv2", "pool2", "fc1", "logits")

  def _forward(self, x, *, train, dropout_key):
    base.check_input(x, self.input_shape, "cnn")
    x = self.backbone["conv1"](x)
    yield "conv1", x
    x = _pool_relu(x)
    yield "pool1", x
    x = self.backbone["conv2"](x)
    yield "conv2", x
    x = _pool_relu(x)
    yield "pool2", x
    bdims = (1, 2) if self.spatial_dropout else ()
    x = base.dropout(x, self.rates[0], train=train, key=dropout_key, index=0, broadcast_dims=bdims)
    fc1 = self.backbone["fc1"] if "fc1" in self.backbone else self.head["fc1"]
    x = jax.nn.relu(fc1(jnp.reshape(x, (x.shape[0], -1))))
    yield "fc1", x
    x = base.dropout(x, self.rates[1], train=train, key=dropout_key, index=1)
    yield "logits", self.head["logits"](x)


@base.register("cnn")
def cnn(**kwargs) -> CNN:
  """The thesis CNN (28x28x1 inputs unless `image_size` / `in_channels` say otherwise)."""
  return CNN(**kwargs)


@base.register("cnn_tiny")
def cnn_tiny(**kwargs) -> CNN:
  """The thesis CNN at 1/8 width (4 and 8 channels, 16 hidden units) for fast tests."""
  kwargs = {"width": 0.125, "hidden": 16, **kwargs}
  return CNN(**kwargs)


@base.register("cnn_half")
def cnn_half(**kwargs) -> CNN:
  """The thesis CNN at half width (16 and 32 channels, 64 hidden units): a second architecture
  for the deciding study's zoo."""
  kwargs = {"width": 0.5, "hidden": 64, **kwargs}
  return CNN(**kwargs)


@base.register("cnn_fc1")
def cnn_fc1(**kwargs) -> CNN:
  """The thesis CNN with fc1 transferred too (head = logits): Fayek's gradual-transfer protocol."""
  return CNN(**{"transfer_fc1": True, **kwargs})

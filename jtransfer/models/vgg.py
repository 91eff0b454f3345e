"""VGG-16 / VGG-19 / VGG-16-BN (Simonyan & Zisserman 2014, torchvision layout; thesis 2.1.2).

Conv 3x3 (padding 1) + [BatchNorm] + ReLU blocks, each ending in a 2x2 max-pool, then the
classifier fc6 -> ReLU -> dropout .5 -> fc7 -> ReLU -> dropout .5 -> logits.

- `image_size=224`: ImageNet layout, 7x7x512 = 25,088 inputs to fc6, classifier 4096 wide
  (VGG-16 with 1000 classes has 138,357,544 parameters, as torchvision's).
- Smaller inputs (`image_size=32`, CIFAR): the thesis' CIFAR variant (section 2.3.1) with a
  512-wide classifier on the 1x1x512 map. `image_size` must be a multiple of 32; fc6 takes the
  flattened (image_size/32)^2 x 512 map (no adaptive pooling).
- `width` scales every channel count and the classifier width (tiny variants for tests).
- Taps: pool1..pool5 (after the block's ReLU and max-pool), fc6 and fc7 (after ReLU, before
  dropout), logits. Layers: conv1_1 .. conv5_3 (conv5_4 for VGG-19), fc6, fc7, logits; the thesis'
  "last conv + classifier" fine-tuning trains `layers[-4:]` (freeze `len(layers) - 4`).
- Head = fc6, fc7, logits: the thesis transfers the feature extractor and adds "a newly
  initialized classifier" (2.3.3).
- Init as torchvision: convs kaiming-normal (fan_out, ReLU gain), dense N(0, 0.01), biases 0,
  BatchNorm scale 1 / bias 0 (momentum 0.1 in PyTorch terms, eps 1e-5).
- Flattening before fc6 is NHWC order; loading torchvision weights would need fc6's rows permuted.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
from flax import nnx

from jtransfer.models import base, pooling

# Channels per block; "M" pools.
CONFIGS = {
  "vgg16": ((64, 64), (128, 128), (256, 256, 256), (512, 512, 512), (512, 512, 512)),
  "vgg19": (
    (64, 64),
    (128, 128),
    (256, 256, 256, 256),
    (512, 512, 512, 512),
    (512, 512, 512, 512),
  ),
}


class ConvBN(nnx.Module):
  """3x3 convolution, optionally followed by BatchNorm (one layer for freezing and labels)."""

  def __init__(self, cin: int, cout: int, *, batch_norm: bool, rngs: nnx.Rngs, dtype=None):
    self.conv = nnx.Conv(
      cin,
      cout,
      kernel_size=(3, 3),
      padding=((1, 1), (1, 1)),
      kernel_init=base.kaiming_normal_fan_out,
      bias_init=nnx.initializers.zeros_init(),
      dtype=dtype,
      rngs=rngs,
    )
    self.bn = (
      nnx.BatchNorm(cout, momentum=0.9, epsilon=1e-5, dtype=dtype, rngs=rngs)
      if batch_norm
      else None
    )

  def __call__(self, x, *, train: bool):
    x = self.conv(x)
    if self.bn is not None:
      x = self.bn(x, use_running_average=not train)
    return jax.nn.relu(x)


def _dense(fin: int, fout: int, rngs: nnx.Rngs, dtype) -> nnx.Linear:
  return nnx.Linear(
    fin,
    fout,
    kernel_init=base.normal_init(0.01),
    bias_init=nnx.initializers.zeros_init(),
    dtype=dtype,
    rngs=rngs,
  )


class VGG(base.Model):
  def __init__(
    self,
    *,
    config: str,
    num_classes: int,
    rngs: nnx.Rngs,
    image_size: int = 224,
    in_channels: int = 3,
    width: float = 1.0,
    classifier_width: int | None = None,
    batch_norm: bool = False,
    dropout: float = 0.5,
    dtype=None,
  ):
    if config not in CONFIGS:
      raise ValueError(f"unknown VGG config {config!r}; valid: {sorted(CONFIGS)}")
    if num_classes < 1:
      raise ValueError(f"num_classes must be >= 1, got {num_classes}")
    if image_size < 32 or image_size % 32:
      raise ValueError(f"VGG image_size must be a positive multiple of 32, got {image_size}")
    if classifier_width is None:
      classifier_width = max(1, round((4096 if image_size >= 224 else 512) * width))
    self.arch = config + ("_bn" if batch_norm else "")
    self.input_shape = (image_size, image_size, in_channels)
    self.dropout_rate = dropout
    self.blocks: tuple[tuple[str, ...], ...] = ()
    convs = {}
    cin = in_channels
    for b, block in enumerate(CONFIGS[config], start=1):
      block_names = []
      for i, c in enumerate(block, start=1):
        cout = max(1, round(c * width))
        name = f"conv{b}_{i}"
        convs[name] = ConvBN(cin, cout, batch_norm=batch_norm, rngs=rngs, dtype=dtype)
        block_names.append(name)
        cin = cout
      self.blocks += (tuple(block_names),)
    self.backbone = nnx.Dict(convs)
    flat = (image_size // 32) ** 2 * cin
    self.head = nnx.Dict(
      fc6=_dense(flat, classifier_width, rngs, dtype),
      fc7=_dense(classifier_width, classifier_width, rngs, dtype),
      logits=_dense(classifier_width, num_classes, rngs, dtype),
    )
    self.layers = tuple(convs) + ("fc6", "fc7", "logits")
    self.taps = tuple(f"pool{b}" for b in range(1, len(self.blocks) + 1)) + (
      "fc6",
      "fc7",
      "logits",
    )

  def _forward(self, x, *, train, dropout_key):
    base.check_input(x, self.input_shape, self.arch)
    for b, block in enumerate(self.blocks, start=1):
      for name in block:
        x = self.backbone[name](x, train=train)
      x = pooling.max_pool_2x2(x)
      yield f"pool{b}", x
    x = jnp.reshape(x, (x.shape[0], -1))
    for i, name in enumerate(("fc6", "fc7")):
      x = jax.nn.relu(self.head[name](x))
      yield name, x
      x = base.dropout(x, self.dropout_rate, train=train, key=dropout_key, index=i)
    yield "logits", self.head["logits"](x)


@base.register("vgg16")
def vgg16(**kwargs) -> VGG:
  return VGG(config="vgg16", **kwargs)


@base.register("vgg19")
def vgg19(**kwargs) -> VGG:
  return VGG(config="vgg19", **kwargs)


@base.register("vgg16_bn")
def vgg16_bn(**kwargs) -> VGG:
  return VGG(config="vgg16", batch_norm=True, **kwargs)


@base.register("vgg_tiny")
def vgg_tiny(**kwargs) -> VGG:
  """VGG-16 layout at 1/16 width on 32x32x3 inputs (4..32 channels, 32-wide classifier)."""
  kwargs = {"image_size": 32, "width": 1 / 16, **kwargs}
  return VGG(config="vgg16", **kwargs)

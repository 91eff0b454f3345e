"""ResNet-18 (He et al. 2016, torchvision layout) with a CIFAR stem for small images.

- Stem: ImageNet (7x7/2 conv + BN + ReLU + 3x3/2 max-pool) for `image_size >= 64`; the usual
  CIFAR stem (3x3/1 conv + BN + ReLU, no pool) below that. `stem="imagenet"|"cifar"` overrides.
- Four stages of basic blocks (two 3x3 conv + BN, identity or 1x1-conv + BN shortcut), widths
  64-128-256-512 x `width`, `blocks` per stage (2, 2, 2, 2), stride 2 from stage 2 on; global
  average pool; dense logits. 11,689,512 parameters at 1000 classes (as torchvision).
- Taps: stem, stage1 .. stage4 (block outputs, after the final ReLU), pool (the 512-d global
  average), logits. Layers: stem, stage{s}_block{b}, logits. Head = logits (the classifier that
  transfer replaces).
- Init as torchvision: convs kaiming-normal (fan_out, ReLU gain), BN scale 1 / bias 0 (momentum
  0.1 in PyTorch terms, eps 1e-5), fc PyTorch default U(+-1/sqrt(fan_in)).
- The spatial size is free (global pooling), so the input shape is only checked for channels.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
from flax import nnx

from jtransfer.models import base


def _conv(cin, cout, k, stride, rngs, dtype) -> nnx.Conv:
  p = k // 2  # symmetric padding as PyTorch (flax "SAME" pads asymmetrically at stride 2)
  return nnx.Conv(
    cin,
    cout,
    kernel_size=(k, k),
    strides=(stride, stride),
    padding=((p, p), (p, p)),
    use_bias=False,
    kernel_init=base.kaiming_normal_fan_out,
    dtype=dtype,
    rngs=rngs,
  )


def _bn(c, rngs, dtype) -> nnx.BatchNorm:
  return nnx.BatchNorm(c, momentum=0.9, epsilon=1e-5, dtype=dtype, rngs=rngs)


class Stem(nnx.Module):
  def __init__(self, cin, cout, *, cifar: bool, rngs: nnx.Rngs, dtype=None):
    self.cifar = cifar
    self.conv = _conv(cin, cout, 3 if cifar else 7, 1 if cifar else 2, rngs, dtype)
    self.bn = _bn(cout, rngs, dtype)

  def __call__(self, x, *, train: bool):
    x = jax.nn.relu(self.bn(self.conv(x), use_running_average=not train))
    if not self.cifar:
      x = nnx.max_pool(x, (3, 3), strides=(2, 2), padding=((1, 1), (1, 1)))
    return x


class BasicBlock(nnx.Module):
  def __init__(self, cin, cout, stride, *, rngs: nnx.Rngs, dtype=None):
    self.conv1 = _conv(cin, cout, 3, stride, rngs, dtype)
    self.bn1 = _bn(cout, rngs, dtype)
    self.conv2 = _conv(cout, cout, 3, 1, rngs, dtype)
    self.bn2 = _bn(cout, rngs, dtype)
    if stride != 1 or cin != cout:
      self.down_conv = _conv(cin, cout, 1, stride, rngs, dtype)
      self.down_bn = _bn(cout, rngs, dtype)
    else:
      self.down_conv = self.down_bn = None

  def __call__(self, x, *, train: bool):
    ura = not train
    y = jax.nn.relu(self.bn1(self.conv1(x), use_running_average=ura))
    y = self.bn2(self.conv2(y), use_running_average=ura)
    if self.down_conv is not None:
      x = self.down_bn(self.down_conv(x), use_running_average=ura)
    return jax.nn.relu(x + y)


class ResNet(base.Model):
  def __init__(
    self,
    *,
    num_classes: int,
    rngs: nnx.Rngs,
    image_size: int = 224,
    in_channels: int = 3,
    width: float = 1.0,
    blocks: tuple[int, ...] = (2, 2, 2, 2),
    stem: str | None = None,
    dtype=None,
  ):
    if num_classes < 1:
      raise ValueError(f"num_classes must be >= 1, got {num_classes}")
    if stem is None:
      stem = "imagenet" if image_size >= 64 else "cifar"
    if stem not in ("imagenet", "cifar"):
      raise ValueError(f"stem must be 'imagenet' or 'cifar', got {stem!r}")
    if len(blocks) != 4 or min(blocks) < 1:
      raise ValueError(f"blocks must be 4 positive counts, got {blocks}")
    self.in_channels = in_channels
    widths = [max(1, round(c * width)) for c in (64, 128, 256, 512)]
    layers = {"stem": Stem(in_channels, widths[0], cifar=stem == "cifar", rngs=rngs, dtype=dtype)}
    stages = []
    cin = widths[0]
    for s, (cout, n) in enumerate(zip(widths, blocks, strict=True), start=1):
      names = []
      for b in range(1, n + 1):
        stride = 2 if (s > 1 and b == 1) else 1
        name = f"stage{s}_block{b}"
        layers[name] = BasicBlock(cin, cout, stride, rngs=rngs, dtype=dtype)
        names.append(name)
        cin = cout
      stages.append(tuple(names))
    self.stages = tuple(stages)
    self.backbone = nnx.Dict(layers)
    self.head = nnx.Dict(
      logits=nnx.Linear(
        cin,
        num_classes,
        kernel_init=base.torch_default_kernel_init,
        bias_init=base.torch_default_bias_init(cin),
        dtype=dtype,
        rngs=rngs,
      )
    )
    self.layers = tuple(layers) + ("logits",)
    self.taps = ("stem", "stage1", "stage2", "stage3", "stage4", "pool", "logits")

  def _forward(self, x, *, train, dropout_key):
    if x.ndim != 4 or x.shape[-1] != self.in_channels:
      raise ValueError(
        f"resnet expects NHWC inputs with {self.in_channels} channels, got {tuple(x.shape)}"
      )
    x = self.backbone["stem"](x, train=train)
    yield "stem", x
    for s, names in enumerate(self.stages, start=1):
      for name in names:
        x = self.backbone[name](x, train=train)
      yield f"stage{s}", x
    x = jnp.mean(x, axis=(1, 2))
    yield "pool", x
    yield "logits", self.head["logits"](x)


@base.register("resnet18")
def resnet18(**kwargs) -> ResNet:
  return ResNet(**kwargs)


@base.register("resnet_tiny")
def resnet_tiny(**kwargs) -> ResNet:
  """ResNet-18 layout at 1/8 width, one block per stage, CIFAR stem (32x32x3) for fast tests."""
  kwargs = {"image_size": 32, "width": 1 / 8, "blocks": (1, 1, 1, 1), **kwargs}
  return ResNet(**kwargs)

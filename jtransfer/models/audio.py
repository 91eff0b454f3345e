"""Audio models of the NC paper's Table 1: `audio_cnn`, `audio_crnn` and `dcase_cnn`.

Every model takes raw waveforms `[B, num_samples]` (the log-mel front end of
`jtransfer.audio.logmel` runs inside the model; it has no parameters, so it is neither trained
nor stored) or, with `input_kind="logmel"`, precomputed log-mel maps `[B, frames, n_mels]`.
The time x mel map is treated as a one-channel image (NHWC: [B, frames, n_mels, 1]).

- `dcase_cnn`: the DCASE 2018 cross-task baseline of Kong et al. (2018). `depth=4` (default) is
  their "CNN4" (the AlexNet-like baseline used for task 1, acoustic scenes): four
  conv 5x5 (no bias) + BN + ReLU + 2x2 max-pool blocks of 64/128/256/512 channels, global max
  pool, linear classifier. With the 10 scene classes of DCASE 2018 task 1 that is 4,309,450
  parameters, the "4.31 M" of the NC paper's table. `depth=8` is their VGG-like "CNN8" (two
  conv 3x3 + BN + ReLU per block), 4,691,274 parameters at 10 classes (+8.8%).
- `audio_cnn`: the smaller CNN ("a smaller version of this baseline with lesser layers"):
  three conv 3x3 + BN + ReLU + 2x2 max-pool blocks of 64/128/256 channels, global max pool,
  a dense 256 embedding (`fc1`), classifier. 438,474 parameters at 10 classes (+2.0% of 0.43 M).
- `audio_crnn`: `audio_cnn` with a GRU (128 units, `nnx.GRUCell` scanned over time) inserted
  after the conv blocks: the block3 map is averaged over mel bands, the GRU runs over the
  frames and its hidden states are averaged over time (`gru` tap), then fc1 and the classifier.
  553,546 parameters at 10 classes (+4.4% of 0.53 M).

The class count used for the table is 10 (GTZAN's genres and DCASE 2018 task 1's scenes); the
head is under 2% of any of these models, so other counts change little.

Taps (`.taps`): block1..blockN (after each block's pooling), then `pool` (global max, CNNs) or
`gru` (CRNN), `fc1` (audio_cnn/crnn), `logits`. Layers (`.layers`): block1..blockN, [gru], [fc1],
logits. `head` is the classifier only (`logits`): the NC paper replaces just the last layer.
Convolutions and dense layers use He-uniform init (Kong et al.'s `init_layer`); batch norm
momentum 0.9 (PyTorch's 0.1). No dropout (Kong's baselines have none).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from typing import Any

import jax
import jax.numpy as jnp
from flax import nnx

from jtransfer.audio.logmel import LogMelConfig, log_mel
from jtransfer.models import base, pooling

# Flat draws (base.variance_scaling): same distribution, much faster XLA:CPU compiles.
he_uniform = base.variance_scaling(2.0, "fan_in", "uniform")


class ConvBlock(nnx.Module):
  """`convs` x (conv kxk without bias + BN + ReLU), then 2x2 max-pool."""

  def __init__(self, cin: int, cout: int, *, kernel: int, convs: int, rngs: nnx.Rngs, dtype=None):
    for i in range(convs):
      conv = nnx.Conv(
        cin if i == 0 else cout,
        cout,
        kernel_size=(kernel, kernel),
        padding="SAME",
        use_bias=False,
        kernel_init=he_uniform,
        dtype=dtype,
        rngs=rngs,
      )
      bn = nnx.BatchNorm(cout, momentum=0.9, epsilon=1e-5, dtype=dtype, rngs=rngs)
      setattr(self, f"conv{i + 1}", conv)
      setattr(self, f"bn{i + 1}", bn)
    self.convs = convs

  def __call__(self, x, *, train: bool):
    for i in range(self.convs):
      x = getattr(self, f"conv{i + 1}")(x)
      x = getattr(self, f"bn{i + 1}")(x, use_running_average=not train)
      x = jax.nn.relu(x)
    return pooling.max_pool_2x2(x)


class GRU(nnx.Module):
  """A GRU over the time axis of [B, T, F]; returns all hidden states [B, T, H]."""

  def __init__(self, fin: int, hidden: int, *, rngs: nnx.Rngs, dtype=None):
    self.cell = nnx.GRUCell(fin, hidden, dtype=dtype, rngs=rngs)
    self.hidden = hidden

  def __call__(self, x):
    cell = self.cell

    def step(h, x_t):
      h, y = cell(h, x_t)
      return h, y

    h0 = jnp.zeros((x.shape[0], self.hidden), x.dtype)
    _, ys = jax.lax.scan(step, h0, jnp.swapaxes(x, 0, 1))
    return jnp.swapaxes(ys, 0, 1)


def _dense(fin: int, fout: int, rngs: nnx.Rngs, dtype) -> nnx.Linear:
  return nnx.Linear(fin, fout, kernel_init=he_uniform, dtype=dtype, rngs=rngs)


class AudioNet(base.Model):
  """Conv blocks on a log-mel map, then global max pool or a GRU, optional fc1, classifier."""

  def __init__(
    self,
    *,
    num_classes: int,
    rngs: nnx.Rngs,
    name: str = "audio_cnn",
    widths: tuple[int, ...] = (64, 128, 256),
    kernel: int = 3,
    convs_per_block: int = 1,
    gru: int | None = None,
    fc: int | None = 256,
    input_kind: str = "waveform",
    num_samples: int = 8000,
    sample_rate: int | None = None,
    frontend: LogMelConfig | Mapping[str, Any] = LogMelConfig(),
    dtype=None,
  ):
    if num_classes < 1:
      raise ValueError(f"num_classes must be >= 1, got {num_classes}")
    # A mapping (from a JSON config) or a LogMelConfig; `sample_rate` (the data's) overrides
    # the front end's, which keeps its window and hop in milliseconds.
    if isinstance(frontend, Mapping):
      frontend = LogMelConfig(**frontend)
    if sample_rate is not None and sample_rate != frontend.sample_rate:
      frontend = dataclasses.replace(frontend, sample_rate=int(sample_rate))
    if input_kind not in ("waveform", "logmel"):
      raise ValueError(f"input_kind must be 'waveform' or 'logmel', got {input_kind!r}")
    frames, mels = frontend.output_shape(num_samples)
    if min(frames, mels) < 2 ** len(widths):
      raise ValueError(
        f"{name}: a {frames}x{mels} log-mel map is too small for {len(widths)} 2x2 poolings"
      )
    self.name = name
    self.input_kind = input_kind
    self.frontend = frontend
    self.input_shape = (num_samples,) if input_kind == "waveform" else (frames, mels)
    blocks = {}
    cin = 1
    for i, w in enumerate(widths):
      blocks[f"block{i + 1}"] = ConvBlock(
        cin, w, kernel=kernel, convs=convs_per_block, rngs=rngs, dtype=dtype
      )
      cin = w
    names = list(blocks)
    if gru is not None:
      blocks["gru"] = GRU(cin, gru, rngs=rngs, dtype=dtype)
      names.append("gru")
      cin = gru
    if fc is not None:
      blocks["fc1"] = _dense(cin, fc, rngs, dtype)
      names.append("fc1")
      cin = fc
    self.backbone = nnx.Dict(blocks)
    self.head = nnx.Dict(logits=_dense(cin, num_classes, rngs, dtype))
    self.num_blocks = len(widths)
    self.recurrent = gru is not None
    self.has_fc = fc is not None
    self.layers = (*names, "logits")
    self.taps = (
      *(f"block{i + 1}" for i in range(len(widths))),
      "gru" if self.recurrent else "pool",
      *(("fc1",) if self.has_fc else ()),
      "logits",
    )

  def _forward(self, x, *, train, dropout_key):
    del dropout_key  # no stochastic layers
    base.check_input(x, self.input_shape, self.name)
    if self.input_kind == "waveform":
      x = log_mel(x, self.frontend)
    x = x[..., None]  # [B, frames, mels, 1]
    for i in range(self.num_blocks):
      name = f"block{i + 1}"
      x = self.backbone[name](x, train=train)
      yield name, x
    if self.recurrent:
      x = self.backbone["gru"](jnp.mean(x, axis=2))  # average over mel bands: [B, T, C]
      x = jnp.mean(x, axis=1)
      yield "gru", x
    else:
      x = jnp.max(x, axis=(1, 2))
      yield "pool", x
    if self.has_fc:
      x = jax.nn.relu(self.backbone["fc1"](x))
      yield "fc1", x
    yield "logits", self.head["logits"](x)


def data_kwargs(spec) -> dict[str, Any]:
  """An audio dataset fixes the waveform length and sample rate the front end reads."""
  if spec.domain != "audio":
    raise ValueError(f"audio models read audio datasets; {spec.name!r} is {spec.domain} data")
  return {"num_samples": int(spec.input_shape[0]), "sample_rate": int(spec.sample_rate)}


@base.register("audio_cnn", data_kwargs=data_kwargs)
def audio_cnn(**kwargs) -> AudioNet:
  """Three conv 3x3 blocks (64/128/256), global max pool, fc1 256: 0.44 M params at 10 classes."""
  return AudioNet(**{"name": "audio_cnn", **kwargs})


@base.register("audio_crnn", data_kwargs=data_kwargs)
def audio_crnn(**kwargs) -> AudioNet:
  """`audio_cnn` with a 128-unit GRU after the conv blocks: 0.55 M params at 10 classes."""
  return AudioNet(**{"name": "audio_crnn", "gru": 128, **kwargs})


@base.register("dcase_cnn", data_kwargs=data_kwargs)
def dcase_cnn(*, depth: int = 4, **kwargs) -> AudioNet:
  """Kong et al.'s DCASE 2018 baseline: CNN4 (depth=4, 4.31 M) or CNN8 (depth=8, 4.69 M)."""
  if depth not in (4, 8):
    raise ValueError(f"dcase_cnn depth must be 4 or 8, got {depth}")
  arch = dict(kernel=5, convs_per_block=1) if depth == 4 else dict(kernel=3, convs_per_block=2)
  return AudioNet(
    **{"name": "dcase_cnn", "widths": (64, 128, 256, 512), "fc": None, **arch, **kwargs}
  )


# Tiny variants (1/8 width) for tests.
@base.register("audio_cnn_tiny", data_kwargs=data_kwargs)
def audio_cnn_tiny(**kwargs) -> AudioNet:
  return audio_cnn(**{"widths": (8, 16, 32), "fc": 32, **kwargs})


@base.register("audio_crnn_tiny", data_kwargs=data_kwargs)
def audio_crnn_tiny(**kwargs) -> AudioNet:
  return audio_crnn(**{"widths": (8, 16, 32), "gru": 16, "fc": 32, **kwargs})


@base.register("dcase_cnn_tiny", data_kwargs=data_kwargs)
def dcase_cnn_tiny(**kwargs) -> AudioNet:
  return dcase_cnn(**{"widths": (8, 16, 32, 64), **kwargs})

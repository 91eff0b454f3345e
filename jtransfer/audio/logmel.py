"""Jitted, batched log-mel spectrogram in JAX.

  cfg = LogMelConfig(sample_rate=8000, win_ms=30, hop_ms=15)      # 240 / 120 samples, n_fft 256
  feats = log_mel(waveforms, cfg)                                   # [B, frames, n_mels]

Definition (what the tests check against an independent float64 NumPy computation):
- Framing: with `center=True` (default) the signal is padded with `win // 2` zeros on both
  sides (zeros, not reflection, so frame t is centred on sample t * hop, as
  `scipy.signal.stft(boundary="zeros", padded=False)` frames it). Frames of `win` samples start
  every `hop` samples; samples after the last whole frame are dropped, so
  `frames = 1 + (L + 2 * (win // 2) - win) // hop` (`1 + (L - win) // hop` without centring).
- Window: periodic Hann of length `win` (`scipy.signal.get_window("hann", win)`).
- Spectrum: `|rfft(frame * window, n=n_fft)|^2` (the windowed frame zero-padded at its end to
  `n_fft >= win`; default `n_fft` = the next power of two >= `win`). No 1/N scaling.
- Mel filterbank: HTK mel scale `mel = 2595 log10(1 + f / 700)`; `n_mels` triangles whose
  corners are `n_mels + 2` points equally spaced in mel between `fmin` and `fmax`, evaluated at
  the FFT bin frequencies `k * sample_rate / n_fft`; peak 1 at the centre, no area
  normalisation. A band that contains no FFT bin is an error (raise `n_fft` or lower `n_mels`).
- Log: natural `log(max(mel_power, floor))` with `floor = 1e-10` (-230 dB re. 1): all-zero
  padding frames map to log(floor) instead of -inf.

Waveforms are float arrays in [-1, 1] (see `jtransfer.audio.wav.read_wav`); any leading batch
shape is allowed. Float32 in gives float32 out; float64 (with jax_enable_x64) gives float64.
"""

from __future__ import annotations

import dataclasses
import functools

import jax
import jax.numpy as jnp
import numpy as np


@dataclasses.dataclass(frozen=True)
class LogMelConfig:
  """Front-end settings. Window and hop in ms unless given in samples (`win_length`, ...)."""

  sample_rate: int = 8000
  win_ms: float = 30.0
  hop_ms: float = 15.0  # 50% overlap, as the NC paper
  n_fft: int | None = None  # None: next power of two >= window length
  n_mels: int = 64
  fmin: float = 0.0
  fmax: float | None = None  # None: sample_rate / 2
  floor: float = 1e-10
  center: bool = True
  win_length: int | None = None  # samples; overrides win_ms
  hop_length: int | None = None  # samples; overrides hop_ms

  def __post_init__(self):
    if self.sample_rate <= 0:
      raise ValueError(f"sample_rate must be positive, got {self.sample_rate}")
    if self.win < 2 or self.hop < 1:
      raise ValueError(f"window ({self.win}) must be >= 2 samples and hop ({self.hop}) >= 1")
    if self.fft_size < self.win:
      raise ValueError(f"n_fft ({self.fft_size}) must be >= the window length ({self.win})")
    if self.n_mels < 1:
      raise ValueError(f"n_mels must be >= 1, got {self.n_mels}")
    if not 0.0 <= self.fmin < self.fmax_hz <= self.sample_rate / 2:
      raise ValueError(
        f"need 0 <= fmin < fmax <= sample_rate / 2, got fmin={self.fmin}, fmax={self.fmax_hz}"
      )
    if not self.floor > 0.0:
      raise ValueError(f"floor must be positive, got {self.floor}")

  @property
  def win(self) -> int:
    if self.win_length is not None:
      return int(self.win_length)
    return int(round(self.win_ms * self.sample_rate / 1000.0))

  @property
  def hop(self) -> int:
    if self.hop_length is not None:
      return int(self.hop_length)
    return int(round(self.hop_ms * self.sample_rate / 1000.0))

  @property
  def fft_size(self) -> int:
    if self.n_fft is not None:
      return int(self.n_fft)
    return 1 << max(0, (self.win - 1).bit_length())

  @property
  def fmax_hz(self) -> float:
    return self.sample_rate / 2 if self.fmax is None else float(self.fmax)

  def num_frames(self, num_samples: int) -> int:
    padded = num_samples + (2 * (self.win // 2) if self.center else 0)
    if padded < self.win:
      raise ValueError(
        f"a clip of {num_samples} samples is shorter than one window ({self.win} samples)"
      )
    return 1 + (padded - self.win) // self.hop

  def output_shape(self, num_samples: int) -> tuple[int, int]:
    """(frames, n_mels) of one clip of `num_samples` samples."""
    return (self.num_frames(num_samples), self.n_mels)


def hz_to_mel(f):
  return 2595.0 * np.log10(1.0 + np.asarray(f, np.float64) / 700.0)


def mel_to_hz(m):
  return 700.0 * (10.0 ** (np.asarray(m, np.float64) / 2595.0) - 1.0)


@functools.lru_cache(maxsize=32)
def mel_filterbank(config: LogMelConfig) -> np.ndarray:
  """[n_fft // 2 + 1, n_mels] float64 HTK-mel triangles (peak 1), as the module doc defines."""
  corners = mel_to_hz(
    np.linspace(hz_to_mel(config.fmin), hz_to_mel(config.fmax_hz), config.n_mels + 2)
  )
  freqs = np.arange(config.fft_size // 2 + 1) * config.sample_rate / config.fft_size
  lo, mid, hi = corners[:-2, None], corners[1:-1, None], corners[2:, None]
  rising = (freqs[None, :] - lo) / (mid - lo)
  falling = (hi - freqs[None, :]) / (hi - mid)
  bank = np.maximum(0.0, np.minimum(rising, falling)).T
  empty = np.flatnonzero(bank.max(axis=0) <= 0.0)
  if empty.size:
    raise ValueError(
      f"mel bands {empty.tolist()} contain no FFT bin (n_fft={config.fft_size}, "
      f"n_mels={config.n_mels}, {config.fmin}-{config.fmax_hz} Hz); raise n_fft or lower n_mels"
    )
  bank.setflags(write=False)
  return bank


def hann_window(n: int) -> np.ndarray:
  """Periodic Hann window (the STFT convention; scipy `get_window("hann", n)`)."""
  return 0.5 - 0.5 * np.cos(2.0 * np.pi * np.arange(n) / n)


def _frames(x: jax.Array, win: int, hop: int, num_frames: int) -> jax.Array:
  """[..., L] -> [..., num_frames, win] frames every hop; a copy (no gather) when hop | win."""
  if win % hop == 0:
    r = win // hop
    blocks = x[..., : (num_frames + r - 1) * hop]
    blocks = blocks.reshape(*x.shape[:-1], num_frames + r - 1, hop)
    return jnp.concatenate([blocks[..., i : i + num_frames, :] for i in range(r)], axis=-1)
  idx = hop * np.arange(num_frames)[:, None] + np.arange(win)[None, :]
  return x[..., idx]


def _float_input(waveforms) -> jax.Array:
  x = jnp.asarray(waveforms)
  if not jnp.issubdtype(x.dtype, jnp.floating):
    raise ValueError(
      f"waveforms must be floating point in [-1, 1], got dtype {x.dtype} (scale int16 PCM by "
      "1/32768, as jtransfer.audio.wav.read_wav does)"
    )
  if x.ndim < 1:
    raise ValueError("waveforms must have a trailing samples axis, got a scalar")
  return x


@functools.partial(jax.jit, static_argnames="config")
def power_spectrogram(waveforms, config: LogMelConfig = LogMelConfig()) -> jax.Array:
  """[..., L] -> [..., frames, n_fft // 2 + 1] power |STFT|^2 (module doc)."""
  x = _float_input(waveforms)
  num_frames = config.num_frames(x.shape[-1])
  win, n_fft = config.win, config.fft_size
  # Frames are cut n_fft long against a window zero-padded to n_fft: the same numbers as
  # zero-padding each windowed frame, without a separate pad pass before the FFT (faster on CPU).
  # The extra n_fft - win zeros at the end only feed the window's zero tail.
  front = win // 2 if config.center else 0
  back = front + n_fft - win
  x = jnp.pad(x, [(0, 0)] * (x.ndim - 1) + [(front, back)])
  frames = _frames(x, n_fft, config.hop, num_frames)
  window = np.concatenate([hann_window(win), np.zeros(n_fft - win)])
  spec = jnp.fft.rfft(frames * jnp.asarray(window, x.dtype), axis=-1)
  return jnp.square(spec.real) + jnp.square(spec.imag)


@functools.partial(jax.jit, static_argnames="config")
def log_mel(waveforms, config: LogMelConfig = LogMelConfig()) -> jax.Array:
  """[..., L] float waveforms -> [..., frames, n_mels] log-mel energies (module doc)."""
  power = power_spectrogram(waveforms, config)
  bank = jnp.asarray(mel_filterbank(config), power.dtype)
  mel = jnp.matmul(power, bank, precision=jax.lax.Precision.HIGHEST)
  return jnp.log(jnp.maximum(mel, config.floor))

"""The JAX log-mel front end against an independent float64 NumPy STFT + mel, and scipy's STFT."""

import math

import jax.numpy as jnp
import numpy as np
import pytest
import scipy.signal

from jtransfer.audio.logmel import LogMelConfig, log_mel, power_spectrogram

CONFIGS = [
  LogMelConfig(),  # FSDD default: 240 / 120 samples, n_fft 256, 64 mels
  LogMelConfig(win_ms=40, hop_ms=20, n_fft=512, n_mels=40, fmin=50.0, fmax=3800.0),
  LogMelConfig(win_length=200, hop_length=75, n_mels=32, center=False),  # hop does not divide win
  LogMelConfig(sample_rate=16000, win_ms=25, hop_ms=10, n_mels=64),  # 400 / 160, n_fft 512
  LogMelConfig(win_length=256, hop_length=64, n_mels=40),  # hop divides n_fft: reshape framing
]


def _reference_log_mel(x: np.ndarray, cfg: LogMelConfig) -> tuple[np.ndarray, np.ndarray]:
  """float64 loops written from the definitions: returns (mel power, log-mel) of one clip."""
  sr, win, hop = cfg.sample_rate, cfg.win, cfg.hop
  n_fft = cfg.n_fft or 2 ** math.ceil(math.log2(win))
  if cfg.center:
    x = np.concatenate([np.zeros(win // 2), x, np.zeros(win // 2)])
  window = np.array([math.sin(math.pi * n / win) ** 2 for n in range(win)])  # periodic Hann
  starts = range(0, len(x) - win + 1, hop)
  spec = np.array([np.abs(np.fft.rfft(x[s : s + win] * window, n=n_fft)) ** 2 for s in starts])

  def mel(f):
    return 1127.0 * math.log(1.0 + f / 700.0)  # = 2595 log10(1 + f/700)

  def hz(m):
    return 700.0 * (math.exp(m / 1127.0) - 1.0)

  fmax = cfg.fmax if cfg.fmax is not None else sr / 2
  m_lo, m_hi = mel(cfg.fmin), mel(fmax)
  edges = [hz(m_lo + (m_hi - m_lo) * i / (cfg.n_mels + 1)) for i in range(cfg.n_mels + 2)]
  bank = np.zeros((n_fft // 2 + 1, cfg.n_mels))
  for b in range(cfg.n_mels):
    lo, c, hi = edges[b], edges[b + 1], edges[b + 2]
    for k in range(n_fft // 2 + 1):
      f = k * sr / n_fft
      if lo < f <= c:
        bank[k, b] = (f - lo) / (c - lo)
      elif c < f < hi:
        bank[k, b] = (hi - f) / (hi - c)
  power = spec @ bank
  return power, np.log(np.maximum(power, cfg.floor))


def _clips(num_samples, sample_rate, n=3):
  rng = np.random.default_rng(0)
  t = np.arange(num_samples) / sample_rate
  tone = 0.5 * np.sin(2 * np.pi * 440.0 * t) * np.exp(-3 * t)
  noise = 0.1 * rng.standard_normal(num_samples)
  silent_tail = np.concatenate(
    [noise[: num_samples // 2], np.zeros(num_samples - num_samples // 2)]
  )
  return np.stack([tone, noise, silent_tail][:n])


@pytest.mark.parametrize("cfg", CONFIGS, ids=lambda c: f"{c.win}-{c.hop}-{c.fft_size}-{c.n_mels}")
def test_log_mel_matches_float64_numpy(x64, cfg):
  x = _clips(3001, cfg.sample_rate)
  got = np.asarray(log_mel(jnp.asarray(x, jnp.float64), cfg))
  assert got.dtype == np.float64
  for i in range(len(x)):
    power, want = _reference_log_mel(x[i], cfg)
    assert got[i].shape == want.shape == cfg.output_shape(x.shape[1])
    above = power > 10 * cfg.floor  # compare the log where it is not clamped
    assert above.mean() > 0.4
    np.testing.assert_allclose(got[i][above], want[above], rtol=1e-4)
    # The all-zero tail sits at the floor exactly.
    below = power < 0.1 * cfg.floor
    np.testing.assert_array_equal(got[i][below], np.log(cfg.floor))


def test_log_mel_float32_error_is_small():
  cfg = CONFIGS[0]
  x = _clips(8000, cfg.sample_rate)
  got = np.asarray(log_mel(jnp.asarray(x, jnp.float32), cfg))
  assert got.dtype == np.float32
  for i in range(len(x)):
    power, want = _reference_log_mel(x[i], cfg)
    # float32 power is accurate to ~1e-7 of the frame's peak; compare bands within 60 dB of it.
    strong = power > 1e-6 * power.max(axis=1, keepdims=True)
    strong &= power > 10 * cfg.floor
    assert np.max(np.abs(got[i][strong] - want[strong])) < 1e-3


@pytest.mark.parametrize("center", [True, False])
def test_stft_framing_matches_scipy(center):
  cfg = LogMelConfig(win_length=240, hop_length=120, n_fft=512, center=center)
  x = _clips(2000, cfg.sample_rate)
  window = scipy.signal.get_window("hann", 240)
  _, _, z = scipy.signal.stft(
    x,
    window=window,
    nperseg=240,
    noverlap=120,
    nfft=512,
    boundary="zeros" if center else None,
    padded=False,
  )
  want = (np.abs(z) * window.sum()) ** 2  # scipy scales the spectrum by 1 / sum(window)
  got = np.asarray(power_spectrogram(jnp.asarray(x, jnp.float32), cfg))
  assert got.shape == np.swapaxes(want, 1, 2).shape
  np.testing.assert_allclose(got, np.swapaxes(want, 1, 2), rtol=2e-3, atol=1e-5 * want.max())


def test_leading_batch_axes_are_independent_clips():
  cfg = CONFIGS[0]
  x = _clips(1600, cfg.sample_rate).astype(np.float32)
  batched = np.asarray(log_mel(jnp.asarray(np.stack([x, x[::-1]])), cfg))
  assert batched.shape == (2, 3, *cfg.output_shape(1600))
  for i in range(3):
    single = np.asarray(log_mel(jnp.asarray(x[i]), cfg))
    np.testing.assert_allclose(batched[0, i], single, rtol=1e-6, atol=1e-6)


def test_bad_settings_and_inputs_raise():
  with pytest.raises(ValueError, match="n_fft"):
    LogMelConfig(win_length=300, n_fft=256)
  with pytest.raises(ValueError, match="fmax"):
    LogMelConfig(fmax=5000.0)
  with pytest.raises(ValueError, match="floor"):
    LogMelConfig(floor=0.0)
  with pytest.raises(ValueError, match="no FFT bin"):
    log_mel(jnp.zeros((1, 800)), LogMelConfig(n_fft=64, win_length=64, n_mels=64))
  with pytest.raises(ValueError, match="floating point"):
    log_mel(jnp.zeros((1, 800), jnp.int16), LogMelConfig())
  with pytest.raises(ValueError, match="shorter than one window"):
    log_mel(jnp.zeros((1, 100)), LogMelConfig(center=False))

"""Audio front end throughput: jitted JAX log-mel vs scipy.signal.stft + NumPy mel, side by side.

  .venv/bin/python benchmarks/logmel.py [--clips 512] [--repeats 7]

Both compute the same log-mel (FSDD defaults: 8 kHz, 30 ms Hann window, 15 ms hop, n_fft 256,
64 HTK mel bands, log with floor 1e-10) of the same clips: the first `--clips` FSDD train clips
padded/cropped to 1 s (8,000 samples) when the data dir is available ($JTRANSFER_DATA_DIR or
../shared/datasets), else white noise of that shape. Prints median clips/s over the repeats, the
ratio, and the largest difference between the two outputs (where the mel power is above floor).
"""

import argparse
import os
import pathlib
import statistics
import time

import jax
import jax.numpy as jnp
import numpy as np
import scipy.signal

from jtransfer.audio.logmel import LogMelConfig, hann_window, log_mel, mel_filterbank


def clips(n: int) -> tuple[np.ndarray, str]:
  default = pathlib.Path(__file__).resolve().parents[2] / "shared" / "datasets"
  root = os.environ.get("JTRANSFER_DATA_DIR") or str(default)
  if os.path.isdir(os.path.join(root, "fsdd", "recordings")):
    from jtransfer.data.fsdd import load_fsdd

    x, _ = load_fsdd("digit", "train", data_dir=root)
    return np.ascontiguousarray(x[:n]), f"FSDD train clips from {root}"
  return np.random.default_rng(0).standard_normal((n, 8000)).astype(np.float32) * 0.1, "noise"


def scipy_log_mel(x: np.ndarray, cfg: LogMelConfig, bank: np.ndarray) -> np.ndarray:
  """The same definition through scipy: stft (boundary zeros, no end padding), |.|^2, mel, log."""
  window = hann_window(cfg.win).astype(x.dtype)
  _, _, z = scipy.signal.stft(
    x,
    window=window,
    nperseg=cfg.win,
    noverlap=cfg.win - cfg.hop,
    nfft=cfg.fft_size,
    boundary="zeros",
    padded=False,
    scaling="spectrum",
  )
  power = np.abs(z * window.sum()) ** 2  # undo scipy's 1/sum(window) scaling
  frames = np.ascontiguousarray(np.swapaxes(power, 1, 2))  # [clips, frames, bins]
  mel = (frames.reshape(-1, frames.shape[-1]) @ bank).reshape(
    *frames.shape[:2], -1
  )  # one BLAS call
  return np.log(np.maximum(mel, cfg.floor))


def median_time(fn, repeats: int) -> float:
  fn()  # warm-up (compilation for JAX)
  times = []
  for _ in range(repeats):
    t0 = time.perf_counter()
    fn()
    times.append(time.perf_counter() - t0)
  return statistics.median(times)


def main():
  parser = argparse.ArgumentParser()
  parser.add_argument("--clips", type=int, default=512)
  parser.add_argument("--repeats", type=int, default=7)
  args = parser.parse_args()
  cfg = LogMelConfig()
  x, source = clips(args.clips)
  bank = mel_filterbank(cfg).astype(np.float32)
  xj = jax.device_put(jnp.asarray(x))

  t_jax = median_time(lambda: log_mel(xj, cfg).block_until_ready(), args.repeats)
  t_scipy = median_time(lambda: scipy_log_mel(x, cfg, bank), args.repeats)

  ours = np.asarray(log_mel(xj, cfg))
  ref = scipy_log_mel(x.astype(np.float64), cfg, mel_filterbank(cfg))
  above = ref > np.log(cfg.floor) + 1.0
  diff = float(np.max(np.abs(ours[above] - ref[above])))

  n = x.shape[0]
  print(f"clips: {n} x {x.shape[1]} samples ({source}); {cfg.win}/{cfg.hop} win/hop, ", end="")
  print(f"n_fft {cfg.fft_size}, {cfg.n_mels} mels -> {ours.shape[1:]} per clip")
  print(f"backend: {jax.default_backend()} ({jax.devices()[0].device_kind})")
  print(f"{'method':<34}{'median s':>10}{'clips/s':>12}")
  print(f"{'JAX log_mel (jit, float32)':<34}{t_jax:>10.4f}{n / t_jax:>12,.0f}")
  print(f"{'scipy.signal.stft + NumPy mel':<34}{t_scipy:>10.4f}{n / t_scipy:>12,.0f}")
  print(f"speed-up JAX / scipy: {t_scipy / t_jax:.1f}x")
  print(f"max |JAX float32 - scipy float64| log-mel above floor: {diff:.2e}")


if __name__ == "__main__":
  main()

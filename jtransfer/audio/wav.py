"""WAV reading with the standard library: 16-bit PCM mono, returned as float32 in [-1, 1).

Anything else (not a RIFF/WAVE file, a header or data chunk cut short, another sample width,
more than one channel, a sample rate other than the expected one) is a `ValueError` that names
the file and the problem. No resampling: the FSDD files are all 8 kHz.
"""

from __future__ import annotations

import os
import wave

import numpy as np


def read_wav(
  path: str | os.PathLike, *, expected_rate: int | None = None
) -> tuple[np.ndarray, int]:
  """Returns `(samples, sample_rate)`: float32 samples `int16 / 32768` of a 16-bit mono WAV."""
  path = os.fspath(path)
  with open(path, "rb") as f:
    head = f.read(12)
    if len(head) < 12 or head[:4] != b"RIFF" or head[8:12] != b"WAVE":
      raise ValueError(f"{path}: not a WAV file (no RIFF/WAVE header)")
    f.seek(0)
    try:
      with wave.open(f, "rb") as w:
        channels, width, rate, n = (
          w.getnchannels(),
          w.getsampwidth(),
          w.getframerate(),
          w.getnframes(),
        )
        if width != 2:
          raise ValueError(f"{path}: expected 16-bit PCM, got {8 * width}-bit samples")
        if channels != 1:
          raise ValueError(f"{path}: expected mono, got {channels} channels")
        data = w.readframes(n)
    except (wave.Error, EOFError) as e:
      raise ValueError(f"{path}: malformed WAV file ({str(e) or 'header cut short'})") from None
  if len(data) != 2 * n:
    raise ValueError(
      f"{path}: truncated: the header declares {n} samples but the file holds {len(data) // 2}"
    )
  if expected_rate is not None and rate != expected_rate:
    raise ValueError(f"{path}: sample rate {rate} Hz, expected {expected_rate} Hz (no resampling)")
  samples = np.frombuffer(data, dtype="<i2").astype(np.float32) / np.float32(32768.0)
  return samples, rate

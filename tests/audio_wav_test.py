"""WAV reading: exact sample values, and a clear ValueError for every kind of bad file."""

import wave

import numpy as np
import pytest

from jtransfer.audio.wav import read_wav


def _write(path, samples, *, rate=8000, width=2, channels=1):
  with wave.open(str(path), "wb") as w:
    w.setnchannels(channels)
    w.setsampwidth(width)
    w.setframerate(rate)
    w.writeframes(samples.tobytes())
  return path


def test_reads_16bit_mono_exactly(tmp_path):
  pcm = np.array([0, 1, -1, 32767, -32768, 1234, -4321], np.int16)
  samples, rate = read_wav(_write(tmp_path / "ok.wav", pcm, rate=8000))
  assert rate == 8000
  assert samples.dtype == np.float32
  np.testing.assert_array_equal(samples, pcm.astype(np.float64) / 32768.0)


def test_not_riff(tmp_path):
  path = tmp_path / "text.wav"
  path.write_bytes(b"this is not audio at all, just text")
  with pytest.raises(ValueError, match="not a WAV file"):
    read_wav(path)
  empty = tmp_path / "empty.wav"
  empty.write_bytes(b"")
  with pytest.raises(ValueError, match="not a WAV file"):
    read_wav(empty)


def test_truncated_data(tmp_path):
  data = _write(tmp_path / "full.wav", np.arange(1000, dtype=np.int16)).read_bytes()
  cut = tmp_path / "cut.wav"
  cut.write_bytes(data[:-500])  # header says 1000 samples, 750 remain
  with pytest.raises(ValueError, match="truncated.*1000 samples.*750"):
    read_wav(cut)


def test_truncated_header(tmp_path):
  data = _write(tmp_path / "full.wav", np.arange(10, dtype=np.int16)).read_bytes()
  cut = tmp_path / "cut.wav"
  cut.write_bytes(data[:30])  # inside the fmt chunk
  with pytest.raises(ValueError, match="malformed WAV"):
    read_wav(cut)


def test_wrong_sample_width(tmp_path):
  path = _write(tmp_path / "u8.wav", np.full(100, 128, np.uint8), width=1)
  with pytest.raises(ValueError, match="expected 16-bit PCM, got 8-bit"):
    read_wav(path)


def test_wrong_channel_count(tmp_path):
  path = _write(tmp_path / "stereo.wav", np.zeros(200, np.int16), channels=2)
  with pytest.raises(ValueError, match="expected mono, got 2 channels"):
    read_wav(path)


def test_wrong_sample_rate(tmp_path):
  path = _write(tmp_path / "16k.wav", np.zeros(100, np.int16), rate=16000)
  assert read_wav(path)[1] == 16000
  with pytest.raises(ValueError, match="sample rate 16000 Hz, expected 8000"):
    read_wav(path, expected_rate=8000)


def test_reads_a_real_fsdd_file(data_dir):
  path = data_dir / "fsdd" / "recordings" / "0_george_0.wav"
  if not path.exists():
    pytest.skip(f"FSDD not found under {data_dir}")
  raw = path.read_bytes()
  # Independent parse: the canonical 44-byte header of these files, then little-endian int16.
  assert raw[:4] == b"RIFF" and raw[36:40] == b"data"
  n_bytes = int.from_bytes(raw[40:44], "little")
  want = np.frombuffer(raw[44 : 44 + n_bytes], "<i2") / 32768.0
  samples, rate = read_wav(path, expected_rate=8000)
  assert rate == 8000
  np.testing.assert_array_equal(samples, want)

"""Audio front end: WAV reading and the jitted log-mel spectrogram."""

from jtransfer.audio.logmel import LogMelConfig, log_mel, mel_filterbank, power_spectrogram
from jtransfer.audio.wav import read_wav

__all__ = ["LogMelConfig", "log_mel", "mel_filterbank", "power_spectrogram", "read_wav"]

"""Moved to `jtransfer.studies.audio_scale` (the audio scale study); configs/audio_scale.py still
imports it from here."""

from jtransfer.studies.audio_scale import plot_scale, run, scale_table  # noqa: F401

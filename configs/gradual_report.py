"""Moved to `jtransfer.studies.gradual` (the gradual-transfer study's tables and figures);
configs/gradual_transfer.py still imports it from here."""

from jtransfer.studies.gradual import (  # noqa: F401
  LABELS,
  VALUES,
  matrix_figure,
  run,
  tables,
  transfer_figure,
)

"""Study-specific tables, plots and report parts, apart from the analysis library (big_vision's
`proj/`, scenic's `projects/`): one module per study, built on `jtransfer.analysis`.

- `thesis`: the thesis' CNN study: its published numbers and findings beside a run's.
- `neural_collapse`: the neural-collapse paper's score-vs-performance comparison (AUROC).
- `audio_scale`: transfer vs the number of source classes and samples per class.
- `gradual`: the gradual-transfer study's layer-wise transfer matrix and figures.

A study that adds to the standard report (`analysis.run(..., studies=[name])`) has
`findings(a) -> [str]` (lines of the report's power section) and `section(doc, a)` (its own
section); the others write their own files from a workdir (`run` / `nc_comparison`).
"""

import importlib
from collections.abc import Sequence

REPORT_STUDIES = ("thesis",)  # the studies with report parts
# What the standard report shows when a config names no studies (the project's configs
# predate the choice; a config sets `evaluate.studies` to choose).
REPORT_DEFAULT = ("thesis",)


def resolve(names: Sequence[str] | None) -> tuple:
  """The study modules named (None: `REPORT_DEFAULT`); an unknown name fails listing the valid."""
  names = REPORT_DEFAULT if names is None else ([names] if isinstance(names, str) else names)
  unknown = [n for n in names if n not in REPORT_STUDIES]
  if unknown:
    raise ValueError(f"unknown report studies {unknown}; valid: {', '.join(REPORT_STUDIES)}")
  return tuple(importlib.import_module(f"jtransfer.studies.{n}") for n in names)

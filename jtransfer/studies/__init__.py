"""Study-specific tables, plots and report parts, apart from the analysis library (big_vision's
`proj/`, scenic's `projects/`): one module per study, built on `jtransfer.analysis`.

- `thesis`: the thesis' CNN study: its published numbers and findings beside a run's.
- `neural_collapse`: the neural-collapse paper's score-vs-performance comparison (AUROC).
- `audio_scale`: transfer vs the number of source classes and samples per class.
- `gradual`: the gradual-transfer study's layer-wise transfer matrix and figures.

A study config names its studies (`c.studies = ("thesis",)`). Each study module offers one entry
point, `report(workdir, tables) -> analysis.report.Part | None`: it writes its own files and/or
returns what it adds to the standard report. `write_report` is the one way a report is made:
the sweep's evaluate stage and `python -m jtransfer report` both call it, so they write the same
files. The evaluate stage records its `ReportConfig` in `<workdir>/config.json`, which is where
`python -m jtransfer report` reads it back from.
"""

from __future__ import annotations

import dataclasses
import importlib
import json
import pathlib
from collections.abc import Mapping, Sequence
from typing import Any

STUDIES = ("thesis", "neural_collapse", "audio_scale", "gradual")  # modules with `report`
RECORD_JOB = "report"  # the job name of the evaluate stage's entry in config.json


@dataclasses.dataclass(frozen=True)
class Tables:
  """What a study's `report(workdir, tables)` reads: the store's tables (`analysis.load_tables`)
  and the standard analysis of them (None: the study config has no evaluate section)."""

  store: Mapping[str, Any]
  analysis: Any = None


def check_names(names: Sequence[str] | str) -> tuple[str, ...]:
  """`names` as a tuple; an unknown study is a one-line ValueError listing the valid ones."""
  names = (names,) if isinstance(names, str) else tuple(names)
  unknown = [n for n in names if n not in STUDIES]
  if unknown:
    raise ValueError(
      f"unknown studies {', '.join(map(repr, unknown))}; valid: {', '.join(STUDIES)}"
    )
  return names


@dataclasses.dataclass(frozen=True)
class ReportConfig:
  """The evaluate stage: the standard report's settings (None: no standard report, e.g. a study
  without scores) and the studies whose `report` runs with it."""

  evaluate: Any = None  # an `analysis.EvaluateConfig`, or None
  studies: tuple[str, ...] = ()

  def __post_init__(self):
    object.__setattr__(self, "studies", check_names(self.studies))

  @classmethod
  def from_record(cls, record: Mapping[str, Any]) -> ReportConfig:
    from jtransfer import analysis  # noqa: PLC0415

    evaluate = record.get("evaluate")
    evaluate = None if evaluate is None else analysis.EvaluateConfig(**evaluate)
    return cls(evaluate=evaluate, studies=tuple(record.get("studies") or ()))


def resolve(names: Sequence[str] | str) -> tuple:
  """The study modules named, in order; an unknown name fails listing the valid ones."""
  return tuple(importlib.import_module(f"jtransfer.studies.{n}") for n in check_names(names))


def record(workdir: str | pathlib.Path, config: ReportConfig) -> None:
  """Appends `config` to `<workdir>/config.json` (what `recorded` reads back)."""
  from jtransfer.store import workdir as workdir_files  # noqa: PLC0415

  workdir_files.append_config(workdir, RECORD_JOB, workdir_files.config_record(config))


def recorded(workdir: str | pathlib.Path) -> ReportConfig | None:
  """The last `ReportConfig` the evaluate stage recorded in the workdir (None: none)."""
  path = pathlib.Path(workdir) / "config.json"
  if not path.exists():
    return None
  entries = json.loads(path.read_text() or "[]")
  entries = entries if isinstance(entries, list) else [entries]
  mine = [e["config"] for e in entries if isinstance(e, dict) and e.get("job") == RECORD_JOB]
  return ReportConfig.from_record(mine[-1]) if mine else None


def write_report(workdir: str | pathlib.Path, config: ReportConfig) -> list[pathlib.Path]:
  """The standard report (when `config.evaluate` is set) with the named studies' parts, and the
  studies' own files; returns every path written (report.md first, when there is one)."""
  from jtransfer import analysis  # noqa: PLC0415

  workdir = pathlib.Path(workdir)
  modules = resolve(config.studies)
  if config.evaluate is not None:
    from jtransfer.analysis import report  # noqa: PLC0415

    report.remove(workdir)  # before any table or study file changes
  store = analysis.load_tables(workdir)
  a = None if config.evaluate is None else analysis.analyse_tables(store, config.evaluate)
  tables = Tables(store=store, analysis=a)
  parts = [p for p in (m.report(workdir, tables) for m in modules) if p is not None]
  out = []
  if a is not None:
    with_figures = config.evaluate.with_figures
    out.append(analysis.write_outputs(a, workdir, with_figures=with_figures, parts=parts))
  return out + [f for p in parts for f in p.files]

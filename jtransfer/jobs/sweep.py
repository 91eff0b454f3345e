"""One experiment end to end: pre-train → score → fine-tune → evaluate, in one workdir.

Each stage is one of the resumable jobs (`train.pretrain`, `score_job`, `train.finetune`,
`analysis`), so rerunning the sweep with the same workdir skips every finished unit (a
checkpoint, a scored checkpoint, a fine-tune curve) and redoes only what was missing. `plan`
turns the study's sections into every job call first (each stage's frozen config dataclass
and its `job.Runtime`), so a bad value fails before any stage runs.

The evaluate stage is `studies.write_report`: the standard report (the `evaluate` section) with
the study modules the config names (`studies`, checked with the plan: a typo fails at once, not
after the training), the same function `python -m jtransfer report` runs.
"""

from __future__ import annotations

import dataclasses
import logging
import pathlib
import time
from collections.abc import Mapping, Sequence
from typing import Any

log = logging.getLogger(__name__)

STAGES = ("pretrain", "score", "finetune", "evaluate")


def _timed(name: str, fn, *args, **kwargs):
  t0 = time.time()
  log.info("sweep: stage %s starts", name)
  print(f"[sweep] {name} ...", flush=True)
  out = fn(*args, **kwargs)
  print(f"[sweep] {name} done in {time.time() - t0:.0f} s", flush=True)
  return out


def _barrier(name: str) -> None:
  """Waits until every process reaches this point (one process: nothing to wait for).

  Between stages, so a stage reads what all processes wrote before it (their checkpoints, their
  store shards); a collective over every device, so it needs nothing but `jax.distributed`.
  """
  import jax

  if jax.process_count() > 1:
    from jax.experimental import multihost_utils

    multihost_utils.sync_global_devices(f"jtransfer sweep: {name}")


def _process_index() -> int:
  import jax

  return jax.process_index()


@dataclasses.dataclass(frozen=True)
class Call:
  """One job call of the sweep: `stage`'s job run with `config` in `runtime`."""

  stage: str
  label: str  # what the log says ("pretrain mnist", "score on fashion_mnist")
  config: Any
  runtime: Any  # a `job.Runtime`; None for the evaluate stage (a `studies.ReportConfig`)


def _targets(stage: str, section: Mapping[str, Any]) -> list[tuple[str, dict]]:
  """(target, its section) per target: a target is a dataset name, or a mapping {"name": ...,
  **overrides} whose other keys replace the section's for that target only (e.g. the `sources`
  a target is fine-tuned from, when one sweep holds image and audio models)."""
  rest = {k: v for k, v in section.items() if k != "targets"}
  out = []
  for target in section.get("targets") or ():
    overrides = {}
    if isinstance(target, Mapping):
      if "name" not in target:
        raise ValueError(f"{stage}: a target given as a mapping needs a 'name', got {target!r}")
      overrides = {k: v for k, v in target.items() if k != "name"}
      target = target["name"]
    out.append((target, {**rest, **overrides}))
  return out


@dataclasses.dataclass(frozen=True)
class Plan:
  """A checked sweep: its workdir, the stages to run, and every job call of them, in order."""

  workdir: pathlib.Path
  stages: tuple[str, ...]
  calls: tuple[Call, ...]

  def of(self, stage: str) -> list[Call]:
    return [c for c in self.calls if c.stage == stage]

  def only(self, stages: Sequence[str]) -> Plan:
    """This plan with the calls of `stages` only (a check plans pre-training too, for the
    architectures of the sources)."""
    stages = tuple(s for s in STAGES if s in stages)
    return Plan(self.workdir, stages, tuple(c for c in self.calls if c.stage in stages))


def stage_config(stage: str) -> type:
  """The frozen config dataclass of `stage` (its one schema)."""
  if stage == "pretrain":
    from jtransfer.jobs.pretrain import PretrainConfig as config_type
  elif stage == "score":
    from jtransfer.jobs.score import ScoreConfig as config_type
  elif stage == "finetune":
    from jtransfer.train.finetune_plan import FinetuneConfig as config_type
  elif stage == "evaluate":
    from jtransfer.analysis.pipeline import EvaluateConfig as config_type
  else:
    raise ValueError(f"unknown stage {stage!r}; valid stages: {STAGES}")
  return config_type


def plan(
  *,
  workdir: str | pathlib.Path,
  sources: Sequence[Mapping[str, Any]],
  pretrain: Mapping[str, Any],
  score: Mapping[str, Any],
  finetune: Mapping[str, Any],
  evaluate: Mapping[str, Any] | None,
  stages: Sequence[str] = STAGES,
  data_dir: str | None = None,
  studies: Sequence[str] = (),
) -> Plan:
  """Every job call of the requested stages, in order, each config built and checked (a
  ValueError of one line naming the stage, and the source or target, otherwise).

  sources: one mapping per source task: `name` plus per-source overrides of `pretrain`
    (e.g. `batch_size` 32 for the MNIST splits).
  pretrain / score / finetune: the fields of the stage's config dataclass (and the runtime
    fields `job.STAGE_RUNTIME`), except `targets` in score and finetune, which lists the target
    datasets (the stage runs once per target).
  evaluate: the fields of `analysis.EvaluateConfig`; None: no standard report (the evaluate
    stage then runs the studies only).
  studies: the names of the study modules (`jtransfer.studies.STUDIES`) the evaluate stage runs.
  """
  from jtransfer.jobs import context as job

  unknown = [s for s in stages if s not in STAGES]
  if unknown:
    raise ValueError(f"unknown stages {unknown}; valid stages: {STAGES}")
  where = dict(workdir=pathlib.Path(workdir), data_dir=data_dir)
  calls = []
  if "pretrain" in stages:
    first = 0  # the (source, seed) pairs, counted across sources, go round the processes
    for src in sources:
      name = src["name"]
      fields = {**pretrain, **{k: v for k, v in src.items() if k != "name"}, "source": name}
      config, rt = job.build(
        stage_config("pretrain"), fields, what=f"pretrain ({name})", first_process=first, **where
      )
      calls.append(Call("pretrain", f"pretrain {name}", config, rt))
      first += config.num_seeds
  for stage, section in (("score", score), ("finetune", finetune)):
    if stage not in stages:
      continue
    for target, fields in _targets(stage, section):
      what, fields = f"{stage} ({target})", {**fields, "target": target}
      config, rt = job.build(stage_config(stage), fields, what=what, **where)
      calls.append(Call(stage, f"{stage} on {target}", config, rt))
  if "evaluate" in stages and (evaluate is not None or studies):
    from jtransfer import studies as studies_lib

    standard = None
    if evaluate is not None:
      standard = job.make_config(stage_config("evaluate"), evaluate, what="evaluate")
    try:
      config = studies_lib.ReportConfig(evaluate=standard, studies=tuple(studies))
    except ValueError as e:
      raise ValueError(f"studies: {e}") from None
    calls.append(Call("evaluate", "evaluate", config, None))
  return Plan(pathlib.Path(workdir), tuple(stages), tuple(calls))


def run(plan: Plan) -> pathlib.Path | None:
  """Runs a checked plan (`plan`, `plan_study`); returns the report path when the standard
  report was written."""
  workdir, stages = plan.workdir, plan.stages
  workdir.mkdir(parents=True, exist_ok=True)
  report = None
  by_stage = {stage: plan.of(stage) for stage in STAGES}

  if "pretrain" in stages:
    from jtransfer.jobs import pretrain as pretrain_job

    for call in by_stage["pretrain"]:
      _timed(call.label, pretrain_job.run, call.config, call.runtime)

  if "score" in stages:
    from jtransfer.jobs import score as score_job
    from jtransfer.store import tracking

    _barrier("pretrain done")  # every process's checkpoints are on disk

    # logs/score.log: the extraction and progress lines too (the job logs its own lines there).
    with tracking.stage_log(workdir, "score"):
      for call in by_stage["score"]:
        _timed(call.label, score_job.run, call.config, call.runtime)

  if "finetune" in stages:
    from jtransfer.jobs import finetune as finetune_job

    _barrier("score done")
    for call in by_stage["finetune"]:
      _timed(call.label, finetune_job.run, call.config, call.runtime)

  # Evaluation once, on process 0, after every process's store shard holds its rows.
  if "evaluate" in stages:
    _barrier("finetune done")
  if "evaluate" in stages and _process_index() == 0:
    from jtransfer import studies as studies_lib
    from jtransfer.store import tracking

    with tracking.stage_log(workdir, "evaluate"):
      # evaluate=None: a study with its own report only (no scores, e.g. gradual transfer).
      for call in by_stage["evaluate"]:
        studies_lib.record(workdir, call.config)  # what `python -m jtransfer report` reruns
        paths = _timed("evaluate", studies_lib.write_report, workdir, call.config)
        if call.config.evaluate is not None:
          report = paths[0]
          log.info("sweep: report %s", report)
          print(f"[sweep] report: {report}", flush=True)
        for path in paths[call.config.evaluate is not None :]:
          print(f"[sweep] wrote: {path}", flush=True)
  return report


def plan_study(
  config: Mapping[str, Any],
  *,
  workdir: str | pathlib.Path,
  stages: Sequence[str] | None = None,
  data_dir: str | None = None,
) -> Plan:
  """`plan` of a study config (`configs/*.py`: sources, pretrain, score, finetune, evaluate,
  optional studies and stages); stages None: the config's `stages`, else all."""
  c = config.to_dict() if hasattr(config, "to_dict") else dict(config)
  return plan(
    workdir=workdir,
    sources=c["sources"],
    pretrain=c.get("pretrain") or {},
    score=c.get("score") or {},
    finetune=c.get("finetune") or {},
    evaluate=c.get("evaluate"),
    # A study that needs no scores (gradual transfer) declares its stages in its config.
    stages=tuple(stages or c.get("stages") or STAGES),
    data_dir=data_dir,
    studies=tuple(c.get("studies") or ()),
  )


def run_study(
  config: Mapping[str, Any],
  *,
  workdir: str | pathlib.Path,
  stages: Sequence[str] | None = None,
  data_dir: str | None = None,
) -> pathlib.Path | None:
  """`run` of `plan_study`: builds and checks every stage's config once, then runs them."""
  return run(plan_study(config, workdir=workdir, stages=stages, data_dir=data_dir))

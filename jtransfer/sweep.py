"""One experiment end to end: pre-train → score → fine-tune → evaluate, in one workdir.

Each stage is one of the resumable jobs (`train.pretrain`, `score_job`, `train.finetune`,
`analysis`), so rerunning the sweep with the same workdir skips every finished unit (a
checkpoint, a scored checkpoint, a fine-tune curve) and redoes only what was missing. The
stages receive plain keyword arguments: the config is turned into them at the launch boundary.

`reports` names extra report functions ("package.module:function", e.g. a config's plot) that
the evaluate stage calls as `fn(workdir)` after the standard report, so a study that needs its
own figure is still one command. They are imported before any stage runs: a typo fails at once,
not after the training.
"""

from __future__ import annotations

import importlib
import logging
import pathlib
import time
from collections.abc import Callable, Mapping, Sequence
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


def resolve_report(name: str) -> Callable[[pathlib.Path], Any]:
  """The function named "package.module:function"; a clear error when it does not exist."""
  module_name, sep, attr = name.partition(":")
  if not sep or not module_name or not attr:
    raise ValueError(f"report {name!r} must be named 'package.module:function'")
  try:
    module = importlib.import_module(module_name)
  except ImportError as e:
    raise ValueError(f"report {name!r}: cannot import {module_name!r} ({e})") from e
  fn = getattr(module, attr, None)
  if not callable(fn):
    raise ValueError(f"report {name!r}: {module_name!r} has no function {attr!r}")
  return fn


def _per_target(stage: str, job, config: Mapping[str, Any], **common) -> None:
  """Runs a job once per target in `config["targets"]` with the rest of `config` as kwargs.

  A target is a dataset name, or a mapping {"name": ..., **overrides} whose other keys replace
  the stage's kwargs for that target only (e.g. the `sources` a target is fine-tuned from, when
  one sweep holds image and audio models: `configs/gradual_transfer.py`).
  """
  kwargs = {k: v for k, v in config.items() if k != "targets"}
  for target in config["targets"]:
    overrides = {}
    if isinstance(target, Mapping):
      if "name" not in target:
        raise ValueError(f"{stage}: a target given as a mapping needs a 'name', got {target!r}")
      overrides = {k: v for k, v in target.items() if k != "name"}
      target = target["name"]
    _timed(f"{stage} on {target}", job, target=target, **common, **{**kwargs, **overrides})


def run(
  *,
  workdir: str | pathlib.Path,
  sources: Sequence[Mapping[str, Any]],
  pretrain: Mapping[str, Any],
  score: Mapping[str, Any],
  finetune: Mapping[str, Any],
  evaluate: Mapping[str, Any] | None,
  stages: Sequence[str] = STAGES,
  data_dir: str | None = None,
  reports: Sequence[str] = (),
) -> pathlib.Path | None:
  """Runs the requested stages; returns the report path when `evaluate` ran.

  sources: one mapping per source task: `name` plus per-source overrides of `pretrain`
    (e.g. `batch_size` 32 for the MNIST splits).
  pretrain / score / finetune: keyword arguments of the stage's `run`, except `targets` in
    score and finetune, which lists the target datasets (the stage runs once per target).
  evaluate: keyword arguments of `analysis.run`; None skips the standard report (the
    evaluate stage then runs `reports` only).
  reports: extra report functions, "package.module:function", run as `fn(workdir)` at the end
    of the evaluate stage.
  """
  unknown = [s for s in stages if s not in STAGES]
  if unknown:
    raise ValueError(f"unknown stages {unknown}; valid stages: {STAGES}")
  extra_reports = [(name, resolve_report(name)) for name in reports]
  workdir = pathlib.Path(workdir)
  workdir.mkdir(parents=True, exist_ok=True)
  report = None

  if "pretrain" in stages:
    from jtransfer.train import pretrain as pretrain_job

    first = 0  # the (source, seed) pairs, counted across sources, go round the processes
    for src in sources:
      kwargs = {**pretrain, **{k: v for k, v in src.items() if k != "name"}}
      _timed(
        f"pretrain {src['name']}",
        pretrain_job.run,
        workdir=workdir,
        source=src["name"],
        data_dir=data_dir,
        first_process=first,
        **kwargs,
      )
      first += kwargs.get("num_seeds", 1)

  if "score" in stages:
    from jtransfer import score_job, tracking

    _barrier("pretrain done")  # every process's checkpoints are on disk

    # logs/score.log: the extraction and progress lines too (the job logs its own lines there).
    with tracking.stage_log(workdir, "score"):
      _per_target("score", score_job.run, score, workdir=workdir, data_dir=data_dir)

  if "finetune" in stages:
    from jtransfer.train import finetune as finetune_job

    _barrier("score done")
    _per_target("finetune", finetune_job.run, finetune, workdir=workdir, data_dir=data_dir)

  # Evaluation once, on process 0, after every process's store shard holds its rows.
  if "evaluate" in stages:
    _barrier("finetune done")
  if "evaluate" in stages and _process_index() == 0:
    from jtransfer import analysis, tracking

    with tracking.stage_log(workdir, "evaluate"):
      # evaluate=None: a study with its own report only (no scores, e.g. gradual transfer).
      if evaluate is not None:
        report = _timed("evaluate", analysis.run, workdir, **evaluate)
        log.info("sweep: report %s", report)
        print(f"[sweep] report: {report}", flush=True)
      for name, fn in extra_reports:
        out = _timed(f"report {name}", fn, workdir)
        print(f"[sweep] {name}: {out}", flush=True)
  return report


def run_study(
  config: Mapping[str, Any],
  *,
  workdir: str | pathlib.Path,
  stages: Sequence[str] | None = None,
  data_dir: str | None = None,
) -> pathlib.Path | None:
  """`run` over a study config (`configs/*.py`: sources, pretrain, score, finetune, evaluate,
  optional reports and stages); stages None: the config's `stages`, else all."""
  c = config.to_dict() if hasattr(config, "to_dict") else dict(config)
  return run(
    workdir=workdir,
    sources=c["sources"],
    pretrain=c["pretrain"],
    score=c["score"],
    finetune=c["finetune"],
    evaluate=c["evaluate"],
    # A study that needs no scores (gradual transfer) declares its stages in its config.
    stages=tuple(stages or c.get("stages") or STAGES),
    data_dir=data_dir,
    reports=c.get("reports") or (),
  )

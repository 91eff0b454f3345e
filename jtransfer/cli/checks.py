"""The checks of a study config, run at start so that a typo fails before any training.

  check_study(config)      # ValueError with one line naming the field and the valid values
  study_schema()           # section -> {key: type}: what `--config.<section>.<key>` may set

A study config has `sources` and the sections `pretrain`, `score`, `finetune`, `evaluate`. Each
section feeds one stage's frozen config dataclass (`sweep.stage_config`), which holds its types,
defaults and cross-field checks; `check_study` builds them all (`sweep.plan`) and adds what
needs the registries: every source and target a registered dataset, every architecture a
registered model (built abstractly with `nnx.eval_shape` to read its taps), every score known,
the score layers and the evaluate stage's focus layer among each architecture's taps, and the
fine-tune modes valid for each architecture.
"""

from __future__ import annotations

import functools
import json
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
  import ml_collections

# What the sweep sets in each stage's config itself, from `sources` / `targets`.
SET_BY_SWEEP = {"pretrain": ("source",), "score": ("target",), "finetune": ("target",)}


@functools.lru_cache(maxsize=64)
def _model(arch: str, dataset: str, kwargs_json: str):
  from flax import nnx  # noqa: PLC0415

  from jtransfer import data  # noqa: PLC0415
  from jtransfer.models import base  # noqa: PLC0415

  spec = data.get(dataset)
  kwargs = base.fit_to_data(arch, json.loads(kwargs_json), spec)
  return nnx.eval_shape(
    lambda: base.get_model(arch, num_classes=spec.num_classes, rngs=nnx.Rngs(0), **kwargs)
  )


def abstract_model(arch: str, dataset: str, model_kwargs: Mapping[str, Any] | None = None):
  """The model `arch` for `dataset`'s classes and inputs, as shapes only (no parameters)."""
  return _model(arch, dataset, json.dumps(dict(model_kwargs or {}), sort_keys=True))


def study_schema() -> dict[str, dict[str, Any]]:
  """Section -> {key: type}: the fields of the stage's config dataclass (less what the sweep
  sets), the runtime fields a section may set (`job.STAGE_RUNTIME`) and `targets`."""
  from jtransfer.cli import overrides as config_cli  # noqa: PLC0415
  from jtransfer.jobs import context as job  # noqa: PLC0415
  from jtransfer.jobs import sweep

  runtime = config_cli.schema_fields(job.Runtime)
  out = {}
  for stage in sweep.STAGES:
    fields = config_cli.schema_fields(sweep.stage_config(stage))
    out[stage] = {k: t for k, t in fields.items() if k not in SET_BY_SWEEP.get(stage, ())}
    if stage != "evaluate":
      out[stage].update({k: runtime[k] for k in job.STAGE_RUNTIME})
  for section in ("score", "finetune"):
    out[section]["targets"] = tuple[str, ...]
  return out


def _one_of(what: str, values: Sequence[str], valid: Sequence[str]) -> None:
  bad = [v for v in values if v not in valid]
  if bad:
    raise ValueError(f"{what}: unknown {', '.join(map(repr, bad))}; valid: {', '.join(valid)}")


def study_models(config) -> list[tuple[str, str, dict]]:
  """(source, arch, model_kwargs) of every source of a study config, as pre-training sees it."""
  c = config.to_dict() if hasattr(config, "to_dict") else dict(config)
  return [
    (call.config.source, call.config.arch, call.config.model_kwargs) for call in _plan(c).calls
  ]


def _plan(c: Mapping[str, Any], stages: Sequence[str] = ("pretrain",), **where):
  from jtransfer.jobs import sweep  # noqa: PLC0415

  return sweep.plan_study(c, workdir=where.pop("workdir", "."), stages=stages, **where)


def minimal_study() -> ml_collections.ConfigDict:
  """A study config with no sources and no targets: what `launch/evaluate.py` runs without
  `--config` (its `evaluate` section takes every field of `analysis.EvaluateConfig`)."""
  import ml_collections  # noqa: PLC0415

  return ml_collections.ConfigDict(
    {
      "cpu_devices": 0,
      "sources": [],
      "pretrain": {},
      "score": {"targets": []},
      "finetune": {"targets": []},
      "evaluate": {},
    }
  )


def _name(target) -> str:
  return target["name"] if isinstance(target, Mapping) else target


def check_study(
  config, stages: Sequence[str] | None = None, *, workdir=".", data_dir: str | None = None
):
  """Raises ValueError (one line) at the first field that cannot work (see the module doc);
  returns the checked `sweep.Plan` of the stages to run (in `workdir`, with `data_dir`).

  stages: the stages about to run (default: the config's `stages`, else all); the sources must
  be non-empty only for pre-training, and the targets only for the stages that use them.
  """
  from jtransfer import data, models, scores  # noqa: PLC0415
  from jtransfer.data import image_folder  # noqa: PLC0415
  from jtransfer.jobs import score as score_job  # noqa: PLC0415
  from jtransfer.models import user_modules  # noqa: PLC0415
  from jtransfer.train import freezing  # noqa: PLC0415

  c = config.to_dict() if hasattr(config, "to_dict") else dict(config)
  # The study's own architectures and image folders exist before any name is checked.
  user_modules.import_modules(c.get("model_modules") or ())
  image_folder.register_all(c.get("image_folders") or ())
  datasets = data.names()
  imports = c.get("imports") or ()
  stages = tuple(stages or c.get("stages") or ("pretrain", "score", "finetune", "evaluate"))
  if "pretrain" in stages and not c["sources"] and not imports:
    raise ValueError("sources: empty; name at least one source dataset (or imports)")
  _one_of("sources", [s["name"] for s in c["sources"]], datasets)
  for stage in ("score", "finetune"):
    if stage not in stages:  # a study that skips the stage (gradual transfer: no scores)
      continue
    if not c[stage].get("targets"):
      raise ValueError(f"{stage}.targets: empty; name at least one target dataset")
    # A target is a dataset name or {"name": ..., **that stage's overrides for it}.
    names = [_name(t) for t in c[stage]["targets"]]
    _one_of(f"{stage}.targets", names, datasets)
  archs = {src.get("arch", c["pretrain"].get("arch")) for src in c["sources"]} - {None}
  _one_of("pretrain.arch", sorted(archs), models.names())  # unnamed: the dataclass default
  _one_of("imports.arch", sorted({imp["arch"] for imp in imports}), models.names())
  if c["score"].get("scores"):
    _one_of("score.scores", c["score"]["scores"], [*scores.names(), *score_job.BASELINES])
  # Every stage's config dataclass, built: its types, defaults and cross-field checks.
  checked = _plan(
    c, stages=tuple(dict.fromkeys(("pretrain", *stages))), workdir=workdir, data_dir=data_dir
  )
  calls = checked.calls
  runs = [(k.config.source, k.config.arch, k.config.model_kwargs) for k in calls
          if k.stage == "pretrain"]  # fmt: skip
  # An imported source is no dataset: its taps are those of its architecture on a target.
  if imports and c["score"].get("targets"):
    runs += [(_name(c["score"]["targets"][0]), imp["arch"], {}) for imp in imports]
  # The section's modes for every architecture (a target's own override names its sources).
  ft = [k.config for k in calls if k.stage == "finetune"]
  modes = [c["finetune"]["modes"]] if c["finetune"].get("modes") else [ft[0].modes] if ft else []

  layers = c["score"].get("layers") or ()
  focus = (c.get("evaluate") or {}).get("focus_layer")
  for source, arch, kwargs in runs:
    model = abstract_model(arch, source, kwargs)
    taps = tuple(model.taps)
    _one_of(f"score.layers ({arch} taps)", layers, taps)
    if focus is not None and focus not in taps:
      raise ValueError(
        f"evaluate.focus_layer: {focus!r} is not a tap of {arch}; valid: {', '.join(taps)}"
      )
    for mode_set in modes:
      try:
        freezing.parse_modes(mode_set, layers=model.layers, backbone_layers=model.backbone_layers)
      except ValueError as e:
        raise ValueError(f"finetune.modes ({arch}): {e}") from None
  return checked.only(stages)

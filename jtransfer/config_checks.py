"""Cross-field checks of a study config, run at start so that a typo fails before any training.

  check_study(config)      # ValueError with one line naming the field and the valid values

A study config has `sources` and the sections `pretrain`, `score`, `finetune`, `evaluate` (the
sweep's schema). Checked: every source and target is a registered dataset, every architecture a
registered model (built abstractly with `nnx.eval_shape` to read its taps), every score known,
the score layers and the evaluate stage's focus layer among each architecture's taps, the
fine-tune modes valid for each architecture, and every duration one positive amount in one unit.
"""

from __future__ import annotations

import functools
import json
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
  import ml_collections

DURATION_UNITS = ("steps", "epochs", "examples")
# Keyword arguments of the stage jobs that the sweep (or the launcher) sets itself.
SET_BY_SWEEP = {
  "pretrain": ("workdir", "source", "data_dir", "first_process"),
  "score": ("workdir", "target", "data_dir"),
  "finetune": ("workdir", "target", "data_dir"),
}
DEFAULT_ARCH = "cnn"  # train.pretrain.run's default


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
  """Section -> {key: annotation}: every keyword argument of the stage job a section feeds
  (`config_cli.apply_overrides` lets a study config's section set them all)."""
  from jtransfer import analysis, config_cli, score_job  # noqa: PLC0415
  from jtransfer.train import finetune, pretrain  # noqa: PLC0415

  jobs = {
    "pretrain": pretrain.run,
    "score": score_job.run,
    "finetune": finetune.run,
    "evaluate": analysis.run,
  }
  out = {section: config_cli.schema_fields(fn) for section, fn in jobs.items()}
  for section in ("score", "finetune"):
    out[section]["targets"] = tuple[str, ...]
  return out


def _one_of(what: str, values: Sequence[str], valid: Sequence[str]) -> None:
  bad = [v for v in values if v not in valid]
  if bad:
    raise ValueError(f"{what}: unknown {', '.join(map(repr, bad))}; valid: {', '.join(valid)}")


def check_duration(what: str, duration: Mapping[str, Any]) -> None:
  units = list(duration)
  if len(units) != 1 or units[0] not in DURATION_UNITS:
    raise ValueError(
      f"{what} must be one of {', '.join(DURATION_UNITS)} with an amount (e.g. steps:400), "
      f"got {dict(duration)}"
    )
  amount = duration[units[0]]
  if isinstance(amount, bool) or not isinstance(amount, (int, float)) or amount <= 0:
    raise ValueError(f"{what}.{units[0]} must be a positive number, got {amount!r}")


def study_models(config) -> list[tuple[str, str, dict]]:
  """(source, arch, model_kwargs) of every source of a study config, as pre-training sees it."""
  c = config.to_dict() if hasattr(config, "to_dict") else dict(config)
  pre = c["pretrain"]
  return [
    (
      src["name"],
      src.get("arch", pre.get("arch", DEFAULT_ARCH)),
      dict(src.get("model_kwargs", pre.get("model_kwargs")) or {}),
    )
    for src in c["sources"]
  ]


def minimal_study() -> ml_collections.ConfigDict:
  """A study config with no sources and no targets: what `launch/evaluate.py` runs without
  `--config` (its `evaluate` section takes every `analysis.run` keyword as an override)."""
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


def check_study(config, stages: Sequence[str] | None = None) -> None:
  """Raises ValueError (one line) at the first field that cannot work; see the module doc.

  stages: the stages about to run (default: the config's `stages`, else all); the sources must
  be non-empty only for pre-training, and the targets only for the stages that use them.
  """
  from jtransfer import data, models, score_job, scores, stacking  # noqa: PLC0415
  from jtransfer.data import image_folder  # noqa: PLC0415
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
  runs = study_models(c)
  _one_of("pretrain.arch", sorted({arch for _, arch, _ in runs}), models.names())
  _one_of("imports.arch", sorted({imp["arch"] for imp in imports}), models.names())
  # An imported source is no dataset: its taps are those of its architecture on a target.
  if imports and c["score"].get("targets"):
    runs += [(_name(c["score"]["targets"][0]), imp["arch"], {}) for imp in imports]
  check_duration("pretrain.duration", c["pretrain"].get("duration") or {"epochs": 100})
  for src in c["sources"]:
    if "duration" in src:
      check_duration(f"sources[{src['name']}].duration", src["duration"])
  check_duration("finetune.duration", c["finetune"].get("duration") or {"epochs": 100})
  for section, key in (("pretrain", "seed_parallel"), ("finetune", "seed_parallel")):
    if c[section].get(key) is not None:  # the stacking vocabulary (`jtransfer.stacking`)
      stacking.canonical(c[section][key], name=f"{section}.{key}")
  if c["score"].get("scores"):
    _one_of("score.scores", c["score"]["scores"], [*scores.names(), *score_job.BASELINES])

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
    try:
      freezing.parse_modes(
        c["finetune"].get("modes") or ("full",),
        layers=model.layers,
        backbone_layers=model.backbone_layers,
      )
    except ValueError as e:
      raise ValueError(f"finetune.modes ({arch}): {e}") from None

"""Every config file, every variant: loads, passes the start-up checks, builds its models
abstractly (`nnx.eval_shape`, no parameters allocated), so a broken config fails here."""

import pathlib

import jax
import numpy as np
import pytest

from jtransfer import data, models, scores
from jtransfer.cli import checks as config_checks
from jtransfer.cli import overrides as config_cli
from jtransfer.jobs import score as score_job
from jtransfer.jobs import sweep
from jtransfer.train import freezing

# Every config file (a module with get_config); study report modules beside them are not configs.
CONFIGS = sorted(
  p
  for p in (pathlib.Path(__file__).resolve().parents[1] / "configs").glob("[!_]*.py")
  if "\ndef get_config(" in p.read_text()
)
CASES = [(path, v) for path in CONFIGS for v in config_cli.variants(path)]


def _ids(case):
  return f"{case[0].stem}:{case[1]}"


def test_every_config_is_listed_with_variants():
  assert {p.stem for p in CONFIGS} >= {"thesis_cnn", "thesis_vgg", "audio_fsdd", "audio_nc"}
  for path in CONFIGS:  # every config has a full variant and a small one for a laptop CPU
    assert "full" in config_cli.variants(path) and len(config_cli.variants(path)) >= 2
  retired = {"mnist_zoo", "score_mnist", "finetune_mnist"}  # restated thesis_cnn (issue 12)
  assert not retired & {p.stem for p in CONFIGS}


def _n_params(model) -> int:
  from flax import nnx  # noqa: PLC0415

  return sum(int(np.prod(x.shape)) for x in jax.tree.leaves(nnx.state(model, nnx.Param)))


def _stand_in_folders(d: dict, tmp_path: pathlib.Path) -> None:
  """Image folders a full variant expects on the user's disk: a small synthetic stand-in (two
  classes of tiny PNGs) so the checks can run; the folder's name stays the config's."""
  from PIL import Image  # noqa: PLC0415

  for k, folder in enumerate(d.get("image_folders") or ()):
    if pathlib.Path(folder["root"]).is_dir():
      continue
    root = tmp_path / f"folder_{k}"
    for label in ("a", "b"):
      (root / label).mkdir(parents=True)
      for i in range(5):
        Image.new("RGB", (12, 10), (40 * i, 0, 0)).save(root / label / f"{i}.png")
    folder["root"] = str(root)


@pytest.mark.parametrize("case", CASES, ids=_ids)
def test_config_variant_loads_checks_and_builds(case, tmp_path):
  path, variant = case
  c = config_cli.load(f"{path}:{variant}")
  d = c.to_dict()
  # One schema: every config is a study config the sweep (and every launcher) runs.
  assert {"sources", "pretrain", "score", "finetune", "evaluate"} <= set(d), sorted(d)
  assert set(d.get("stages") or sweep.STAGES) <= set(sweep.STAGES)
  _stand_in_folders(d, tmp_path)
  config_checks.check_study(d)
  runs = config_checks.study_models(d)
  # Imported zoos (thesis_vgg) pre-train nothing: their sources come from `imports`.
  assert len(runs) == len(d["sources"]) and (runs or d.get("imports"))
  for source, arch, kwargs in runs:
    model = config_checks.abstract_model(arch, source, kwargs)
    from flax import nnx  # noqa: PLC0415

    leaves = jax.tree.leaves(nnx.state(model, nnx.Param))
    assert leaves and all(isinstance(x, jax.ShapeDtypeStruct) for x in leaves)  # no arrays
    assert _n_params(model) > 0 and model.taps[-1] == "logits"
    logits_kernel = model.head  # the classifier width is the source's class count
    assert data.get(source).num_classes in {
      x.shape[-1] for x in jax.tree.leaves(logits_kernel) if hasattr(x, "shape")
    }
    if d["score"].get("layers"):
      assert set(d["score"]["layers"]) <= set(model.taps)
    assert freezing.parse_modes(
      d["finetune"].get("modes") or ("full",),
      layers=model.layers,
      backbone_layers=model.backbone_layers,
    )
  assert set(d["score"].get("scores") or ()) <= {*scores.names(), *score_job.BASELINES}
  for stage in ("score", "finetune"):  # a target is a name or {"name": ..., **overrides}
    names = {t["name"] if isinstance(t, dict) else t for t in d[stage]["targets"]}
    assert names <= set(data.names())
  # Every key of every stage section is a field of that stage's config dataclass (or runtime).
  schema = config_checks.study_schema()
  for section, fields in schema.items():
    extra = set(d[section] or {}) - set(fields)
    assert not extra, f"{section}: {sorted(extra)} are no fields of its config"
    for target in (d[section] or {}).get("targets") or ():  # per-target overrides
      if isinstance(target, dict):
        assert set(target) - {"name"} <= set(fields), (section, target)
  for src in d["sources"]:  # per-source overrides of the pretrain section
    assert set(src) - {"name"} <= set(schema["pretrain"]), src
  # cpu_devices is what devices.request_cpu_devices takes.
  assert isinstance(d.get("cpu_devices", 0), int) and d.get("cpu_devices", 0) >= 0


def test_abstract_model_matches_a_real_one():
  """eval_shape's parameter count equals the real model's (the thesis CNN on MNIST)."""
  from flax import nnx  # noqa: PLC0415

  abstract = config_checks.abstract_model("cnn_tiny", "mnist")
  real = models.get_model("cnn_tiny", num_classes=10, rngs=nnx.Rngs(0))
  assert _n_params(abstract) == models.count_params(nnx.state(real, nnx.Param))


def test_minimal_study_is_what_evaluate_runs_without_a_config():
  """launch/evaluate.py's default: no sources or targets, enough for the evaluate stage only."""
  c = config_checks.minimal_study()
  config_checks.check_study(c, stages=("evaluate",))
  with pytest.raises(ValueError, match=r"^sources: empty"):
    config_checks.check_study(c, stages=("pretrain", "evaluate"))
  with pytest.raises(ValueError, match=r"^score.targets: empty"):
    config_checks.check_study(c, stages=("score",))
  overridden = config_cli.apply_overrides(
    c, [("evaluate.n_boot", "0"), ("evaluate.with_figures", "false")],
    schema=config_checks.study_schema(),
  )  # fmt: skip
  assert overridden.to_dict()["evaluate"] == {"n_boot": 0, "with_figures": False}


def test_stage_checks_follow_the_stages_that_run():
  """A score-only run of a study checks the score targets, not the fine-tune ones."""
  c = config_cli.load(f"{CONFIGS[0].parent / 'thesis_cnn.py'}:tiny")
  bad = config_cli.apply_overrides(c, [("finetune.targets", "no_such_set")])
  config_checks.check_study(bad, stages=("score",))
  with pytest.raises(ValueError, match=r"^finetune.targets: unknown 'no_such_set'"):
    config_checks.check_study(bad, stages=("finetune",))
  with pytest.raises(ValueError, match=r"^finetune.targets: unknown 'no_such_set'"):
    config_checks.check_study(bad)  # no stages given: the config's, else all


def test_configs_are_files_loaded_by_path_not_an_installed_package():
  """No top-level `configs` module outside the repository (a name clash waiting to happen); a
  config that derives from another gets it through the one loader, once per file."""
  import subprocess  # noqa: PLC0415
  import sys  # noqa: PLC0415

  folder = CONFIGS[0].parent
  assert not (folder / "__init__.py").exists()
  found = subprocess.run(
    [sys.executable, "-c", "import importlib.util as u; print(u.find_spec('configs'))"],
    cwd="/", capture_output=True, text=True, check=True,
  )  # fmt: skip
  assert found.stdout.strip() == "None"
  scale = config_cli.load_module(folder / "audio_scale.py")
  assert scale.audio_fsdd is config_cli.load_module(folder / "audio_fsdd.py")
  assert config_cli.load_module(folder / ".." / "configs" / "audio_scale.py") is scale
  # The derived config is its base with other sources: the base's pre-training, as loaded.
  quick = config_cli.load(f"{folder / 'audio_scale.py'}:quick")
  assert quick.pretrain.to_dict() == scale.audio_fsdd.get_config("quick").pretrain.to_dict()
  with pytest.raises(config_cli.ConfigError, match="^config file '.*nope.py' does not exist$"):
    config_cli.load_module(folder / "nope.py")

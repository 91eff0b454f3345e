"""Every config file, every variant: loads, passes the start-up checks, builds its models
abstractly (`nnx.eval_shape`, no parameters allocated), so a broken config fails here."""

import pathlib

import jax
import numpy as np
import pytest

from jtransfer import config_checks, config_cli, data, models, score_job, scores
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
  assert {p.stem for p in CONFIGS} >= {"thesis_cnn", "audio_fsdd", "audio_nc", "mnist_zoo"}
  for path in CONFIGS:  # every config has a full variant and a small one for a laptop CPU
    assert "full" in config_cli.variants(path) and len(config_cli.variants(path)) >= 2


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
  if "pretrain" in d:  # a study config (the sweep's schema)
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
    for stage in ("score", "finetune"):  # a target is a name or {"name": ..., **overrides}
      names = {t["name"] if isinstance(t, dict) else t for t in d[stage]["targets"]}
      assert names <= set(data.names())
    return
  # The single-stage launchers' own schemas.
  if "arch" in d:  # launch/pretrain.py
    for src in d["sources"]:
      model = config_checks.abstract_model(d["arch"], src["name"], d["model_kwargs"])
      assert _n_params(model) > 0
  if "layers" in d:  # launch/score.py: the thesis CNN's taps
    cnn = config_checks.abstract_model("cnn", d["targets"][0])
    assert set(d["layers"]) <= set(cnn.taps)
    assert set(d["scores"]) <= {*scores.names(), *score_job.BASELINES}
  if "modes" in d:  # launch/finetune.py
    cnn = config_checks.abstract_model("cnn", d["targets"][0])
    assert freezing.parse_modes(d["modes"], layers=cnn.layers, backbone_layers=cnn.backbone_layers)
  assert set(d.get("targets", ())) <= set(data.names())
  assert all(s["name"] in data.names() for s in d.get("sources") or ())


def test_abstract_model_matches_a_real_one():
  """eval_shape's parameter count equals the real model's (the thesis CNN on MNIST)."""
  from flax import nnx  # noqa: PLC0415

  abstract = config_checks.abstract_model("cnn_tiny", "mnist")
  real = models.get_model("cnn_tiny", num_classes=10, rngs=nnx.Rngs(0))
  assert _n_params(abstract) == models.count_params(nnx.state(real, nnx.Param))

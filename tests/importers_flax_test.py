"""A user's own Flax model (a module outside jtransfer/) from orbax checkpoints into a zoo."""

import json
import os
import pathlib
import subprocess
import sys
import textwrap

import jax
import numpy as np
import orbax.checkpoint as ocp
import pytest
from flax import nnx

from jtransfer.importers import flax_orbax
from jtransfer.models import functional, user_modules
from jtransfer.store import checkpointing, results, zoo

REPO = pathlib.Path(__file__).resolve().parents[1]

USER_MODULE = textwrap.dedent('''
  """The user's own code: a model with batch norm, and their image folder."""
  import os

  import jax
  import jax.numpy as jnp
  from flax import nnx

  from jtransfer.data import image_folder
  from jtransfer.models import base


  class UserNet(base.Model):
    def __init__(self, *, num_classes, rngs, width=4):
      self.backbone = nnx.Dict(
        conv=nnx.Conv(3, width, (3, 3), strides=(2, 2), rngs=rngs),
        norm=nnx.BatchNorm(width, rngs=rngs),
        fc=nnx.Linear(width, 8, rngs=rngs),
      )
      self.head = nnx.Dict(logits=nnx.Linear(8, num_classes, rngs=rngs))
      self.layers = ("conv", "norm", "fc", "logits")
      self.taps = ("pool", "fc", "logits")

    def _forward(self, x, *, train, dropout_key):
      x = self.backbone["conv"](x)
      x = jax.nn.relu(self.backbone["norm"](x, use_running_average=not train))
      x = jnp.mean(x, axis=(1, 2))
      yield "pool", x
      x = jax.nn.relu(self.backbone["fc"](x))
      yield "fc", x
      yield "logits", self.head["logits"](x)


  @base.register("user_net_e2e")
  def user_net(**kwargs):
    return UserNet(**kwargs)


  if os.environ.get("USER_IMAGES"):
    image_folder.register("user_images", os.environ["USER_IMAGES"], size=16, resize=18,
                          cache=os.environ["USER_CACHE"])
''')


FINETUNE_CONFIG = textwrap.dedent("""
  from jtransfer.cli import overrides as config_cli

  thesis_cnn = config_cli.load_module(THESIS_CNN)


  def get_config(arg="tiny"):
    if arg != "tiny":
      raise ValueError(f"unknown variant {arg!r}; valid: tiny")
    c = thesis_cnn.get_config("tiny")
    c.sources = []  # the zoo was imported, not pre-trained by this study
    c.finetune.targets = ["user_images"]
    c.finetune.modes = ["full", "frozen=2"]
    c.finetune.duration = {"steps": 6}
    c.finetune.train_examples = 24
    c.finetune.eval_examples = 6
    return c
""").replace("THESIS_CNN", repr(str(REPO / "configs" / "thesis_cnn.py")))


@pytest.fixture(scope="module")
def user_module(tmp_path_factory):
  root = tmp_path_factory.mktemp("user")
  (root / "user_models_e2e.py").write_text(USER_MODULE)
  sys.path.insert(0, str(root))
  try:
    user_modules.import_module("user_models_e2e")
    yield root
  finally:
    sys.path.remove(str(root))


def _state(seed, width=4, num_classes=3):
  """What a user saves: the whole nnx state (params and batch statistics), pure dict."""
  model = functional.merge(*functional.init("user_net_e2e", num_classes=num_classes, seed=seed,
                                            width=width))  # fmt: skip
  state = nnx.to_pure_dict(nnx.state(model))
  # Non-trivial statistics, so that carrying them over is visible.
  state["backbone"]["norm"]["mean"] = np.full((width,), 0.3, np.float32) * (seed + 1)
  state["backbone"]["norm"]["var"] = np.full((width,), 2.0, np.float32)
  return jax.tree.map(np.asarray, state)


def _manager(path, states):
  mngr = ocp.CheckpointManager(path)
  for step, state in states.items():
    mngr.save(step, args=ocp.args.StandardSave(state))
  mngr.wait_until_finished()
  mngr.close()


def test_orbax_forms_and_mapping(tmp_path, user_module):
  s10, s30 = _state(1), _state(2)
  _manager(tmp_path / "run", {10: {"model": s10}, 30: {"model": s30}})
  # Root -> latest step; explicit step; the step directory itself.
  assert flax_orbax.find_pytree(tmp_path / "run")[1] == 30
  assert flax_orbax.find_pytree(tmp_path / "run", step=10)[1] == 10
  d, step = flax_orbax.find_pytree(tmp_path / "run" / "10")
  assert step == 10 and d.name == "default"
  tree = checkpointing.restore_pytree(d)
  params, rest, warnings = flax_orbax.to_model_trees(tree, arch="user_net_e2e", num_classes=3)
  np.testing.assert_array_equal(params["head"]["logits"]["kernel"], s10["head"]["logits"]["kernel"])
  np.testing.assert_array_equal(rest["backbone"]["norm"]["mean"], s10["backbone"]["norm"]["mean"])
  assert "mean" not in params["backbone"]["norm"] and not warnings
  # A plain PyTree with other top-level names, params only: renamed, fresh statistics, warned.
  only = {"encoder": {k: v for k, v in s10["backbone"].items()}, "classifier": s10["head"]}
  only["encoder"]["norm"] = {k: only["encoder"]["norm"][k] for k in ("scale", "bias")}
  with ocp.StandardCheckpointer() as ckptr:
    ckptr.save(tmp_path / "plain", only)
  with pytest.raises(ValueError, match="rename"):
    flax_orbax.to_model_trees(checkpointing.restore_pytree(tmp_path / "plain"),
                              arch="user_net_e2e", num_classes=3)  # fmt: skip
  params, rest, warnings = flax_orbax.to_model_trees(
    checkpointing.restore_pytree(tmp_path / "plain"), arch="user_net_e2e", num_classes=3,
    rename={"encoder": "backbone", "classifier": "head"},
  )  # fmt: skip
  assert warnings and np.all(rest["backbone"]["norm"]["var"] == 1)
  with pytest.raises(ValueError, match=r"norm/scale \(4,\) != \(6,\)"):
    flax_orbax.to_model_trees(tree, arch="user_net_e2e", num_classes=3, model_kwargs={"width": 6})
  # The imported entry's logits equal the user's model's own.
  rec = flax_orbax.import_checkpoint(tmp_path / "wd", tmp_path / "run", arch="user_net_e2e",
                                     source="mine", num_classes=3, step=10)  # fmt: skip
  assert rec.step == 10 and rec.imported_from["format"] == "orbax" and rec.num_classes == 3
  assert zoo.read_entry(rec.path) == rec and rec.origin == zoo.IMPORTED
  p, r = checkpointing.split_rest(checkpointing.restore(rec.path))
  x = np.random.default_rng(0).uniform(size=(4, 8, 8, 3)).astype(np.float32)
  user = functional.merge(*functional.init("user_net_e2e", num_classes=3, seed=0))
  state = nnx.state(user)
  nnx.replace_by_pure_dict(state, s10)
  nnx.update(user, state)
  graphdef = functional.split(user)[0]
  got, _ = functional.apply(graphdef, p, r, x)
  np.testing.assert_allclose(np.asarray(got), np.asarray(user(x)), rtol=1e-6, atol=1e-6)


def _run(*args, env):
  out = subprocess.run(
    [sys.executable, *args], cwd=REPO, env=env, capture_output=True, text=True, timeout=900
  )
  assert out.returncode == 0, f"{args[0]} failed:\n{out.stdout[-3000:]}\n{out.stderr[-5000:]}"
  return out.stdout


@pytest.mark.slow
def test_user_model_import_score_finetune_report_from_the_command_line(tmp_path, user_module):
  """Only launchers: the user's module (outside jtransfer/) names the model and the images."""
  from PIL import Image

  rng = np.random.default_rng(0)
  for c, colour in enumerate(((220, 30, 30), (30, 220, 30), (30, 30, 220))):
    for i in range(10):
      a = np.clip(rng.normal(colour, 40, (20, 24, 3)), 0, 255).astype(np.uint8)
      (tmp_path / "images" / f"class{c}").mkdir(parents=True, exist_ok=True)
      Image.fromarray(a).save(tmp_path / "images" / f"class{c}" / f"{i}.png")
  _manager(tmp_path / "ckpts", {5: {"model": _state(1)}, 50: {"model": _state(2)}})
  env = {
    **os.environ,
    "PYTHONPATH": f"{user_module}{os.pathsep}{REPO}",
    "USER_IMAGES": str(tmp_path / "images"),
    "USER_CACHE": str(tmp_path / "cache"),
    "JTRANSFER_QUIET": "1",
  }
  wd = str(tmp_path / "wd")
  mod = "--model_module=user_models_e2e"
  _run("launch/import_zoo.py", f"--workdir={wd}", mod, "--arch=user_net_e2e",
       "--source=my_pretrain", "--num_classes=3", f"--weights={tmp_path / 'ckpts'}",
       "--all_steps", env=env)  # fmt: skip
  ckpts = results.load(wd, "checkpoints")
  assert sorted(ckpts["step"]) == [5, 50] and set(ckpts["arch"]) == {"user_net_e2e"}
  _run("launch/score.py", f"--workdir={wd}", mod, "--config=configs/thesis_cnn.py:quick",
       "--config.sources=", "--config.score.targets=user_images", "--config.score.layers=pool,fc",
       "--config.score.probe_per_class=4", env=env)  # fmt: skip
  scores = results.load(wd, "scores")
  assert set(scores["step"]) == {5, 50} and set(scores["layer"]) >= {"pool", "fc", "-"}
  assert scores.loc[scores.score == "knn_accuracy", "value"].between(0, 1).all()
  # The user's own study config, derived from the thesis one (overrides would do as well).
  (tmp_path / "my_study.py").write_text(FINETUNE_CONFIG)
  _run("launch/finetune.py", f"--workdir={wd}", mod, f"--config={tmp_path / 'my_study.py'}",
       env=env)  # fmt: skip
  ft = results.load(wd, "finetune")
  assert {"my_pretrain", "scratch", "random_init"} <= set(ft["source"])
  assert ft["test_acc"].between(0, 1).all()
  out = _run("launch/evaluate.py", f"--workdir={wd}", mod, "--config.evaluate.n_boot=0",
             "--config.evaluate.with_figures=false", env=env)  # fmt: skip
  report = pathlib.Path(out.strip().split("report: ")[-1])
  assert report.is_file() and "user_images" in report.read_text()
  # The jobs rebuilt the user's model from the zoo entries alone: no pre-training config entry.
  jobs = [e["job"] for e in json.loads((pathlib.Path(wd) / "config.json").read_text())]
  assert "pretrain" not in jobs and {"score", "finetune"} <= set(jobs)


def test_user_modules_by_name_or_file(tmp_path):
  f = tmp_path / "extra_arch_file.py"
  f.write_text("from jtransfer.models import base\nREGISTERED = base.names()\n")
  mod = user_modules.import_module(str(f))
  assert "vgg16" in mod.REGISTERED
  assert user_modules.import_module(str(f)) is mod  # imported once
  assert user_modules.import_modules(None) == []
  with pytest.raises(ValueError, match="cannot import model module 'no_such_mod_xyz'"):
    user_modules.import_module("no_such_mod_xyz")
  with pytest.raises(ValueError, match="does not exist"):
    user_modules.import_module(str(tmp_path / "missing.py"))

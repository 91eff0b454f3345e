"""Imports models trained elsewhere into a zoo, where every job treats them as pre-trained ones.

  # torchvision / timm weights (.safetensors: no torch needed; .pth: needs torch)
  python launch/import_zoo.py --workdir runs/hub --source imagenet --arch vgg16 \
      --weights vgg16-imagenet.safetensors
  # every entry of a study config's `imports`
  python launch/import_zoo.py --workdir runs/thesis_vgg --config configs/thesis_vgg.py
  # your own Flax model, params from an orbax checkpoint (PyTree dir, manager step or root)
  python launch/import_zoo.py --workdir runs/mine --model_module my_models --arch my_net \
      --source my_data --num_classes 10 --weights ckpts/ --all_steps

Then `launch/score.py`, `launch/finetune.py`, `launch/evaluate.py` on the same workdir: each
imported checkpoint carries its zoo record (`jtransfer.store.zoo.read_entry(path)`: num_classes,
model_kwargs, origin "imported", `imported_from` = file, file_sha256, original_keys), from which
those jobs rebuild the model. Importing the same weights again is a no-op; different weights
under one (source, arch, seed, step) fail.
"""

import json
from pathlib import Path

from absl import app, flags
from ml_collections import config_flags

from jtransfer import errors
from jtransfer.importers import flax_orbax, torch_weights
from jtransfer.models import user_modules

_CONFIG = config_flags.DEFINE_config_file(
  "config", None, "A study config whose `imports` list {source, arch, weights} entries (instead "
  "of --source/--arch/--weights).", lock_config=True)  # fmt: skip
_WORKDIR = flags.DEFINE_string("workdir", None, "Zoo workdir (gets zoo/ and results.sqlite).")
_SOURCE = flags.DEFINE_string("source", None, "Name of the task the weights were trained on.")
_ARCH = flags.DEFINE_string("arch", None, "Architecture: vgg16, vgg16_bn, vgg19, resnet18, or "
                            "one your --model_module registers.")  # fmt: skip
_WEIGHTS = flags.DEFINE_multi_string(
  "weights", None, "A .safetensors / .pth file, or an orbax checkpoint directory (repeatable)."
)
_SEED = flags.DEFINE_integer("seed", 0, "Zoo seed of the (first) entry; several --weights "
                             "files get consecutive seeds.")  # fmt: skip
_STEP = flags.DEFINE_integer("step", None, "Zoo step (orbax manager: which step; default latest).")
_ALL_STEPS = flags.DEFINE_bool("all_steps", False, "Orbax manager root: import every step.")
_ITEM = flags.DEFINE_string("item", None, "Orbax manager: the item holding the params.")
_NUM_CLASSES = flags.DEFINE_integer("num_classes", None, "Classes of the model's head (Flax: "
                                    "required; PyTorch: with --head=new).")  # fmt: skip
_HEAD = flags.DEFINE_enum("head", "keep", ["keep", "new"], "PyTorch: keep the file's classifier "
                          "or initialise a new one.")  # fmt: skip
_MODEL_KWARGS = flags.DEFINE_string("model_kwargs", "{}", "Flax: JSON constructor kwargs.")
_RENAME = flags.DEFINE_list("rename", [], "Flax: top-level renames old=new, e.g. encoder=backbone.")
_VERBOSE = flags.DEFINE_bool("verbose", False, "Tracebacks for user errors too.")
flags.mark_flags_as_required(["workdir"])
user_modules.define_flag()


def _orbax_steps(path: str) -> list:
  root = Path(path)
  if _ALL_STEPS.value:
    steps = sorted(int(p.name) for p in root.iterdir() if p.is_dir() and p.name.isdigit())
    if not steps:
      raise app.UsageError(f"--all_steps: {root} is not a CheckpointManager root")
    return steps
  return [_STEP.value]


def main(argv):
  if len(argv) > 1:
    raise app.UsageError(f"unexpected arguments: {argv[1:]}")
  # An unreadable or unusable weights file is one line naming it (the traceback: --verbose).
  with errors.exit_on("import_zoo.py", show_traceback=_VERBOSE.value):
    _import()


def _import():
  if _CONFIG.value is not None:
    for e in _CONFIG.value.to_dict()["imports"]:
      entry = torch_weights.import_file(
        _WORKDIR.value, e["weights"], arch=e["arch"], source=e["source"], seed=e.get("seed", 0)
      )
      print(f"[import] {e['weights']} -> {entry.path}", flush=True)
    return
  if not (_SOURCE.value and _ARCH.value and _WEIGHTS.value):
    raise app.UsageError("pass --config, or all of --source, --arch and --weights")
  for i, weights in enumerate(_WEIGHTS.value):
    seed = _SEED.value + i
    if Path(weights).is_dir():
      if _NUM_CLASSES.value is None:
        raise app.UsageError("--num_classes is required for an orbax checkpoint")
      rename = dict(r.split("=", 1) for r in _RENAME.value)
      for step in _orbax_steps(weights):
        entry = flax_orbax.import_checkpoint(
          _WORKDIR.value, weights, arch=_ARCH.value, source=_SOURCE.value,
          num_classes=_NUM_CLASSES.value, model_kwargs=json.loads(_MODEL_KWARGS.value),
          rename=rename, step=step, item=_ITEM.value, seed=seed,
        )  # fmt: skip
        print(f"[import] {weights} -> {entry.path}", flush=True)
    else:
      entry = torch_weights.import_file(
        _WORKDIR.value, weights, arch=_ARCH.value, source=_SOURCE.value, seed=seed,
        step=_STEP.value or 0, head=_HEAD.value, num_classes=_NUM_CLASSES.value,
      )  # fmt: skip
      print(f"[import] {weights} -> {entry.path}", flush=True)


if __name__ == "__main__":
  app.run(main)

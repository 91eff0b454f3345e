"""Architectures from the user's own modules: `--model_module my_pkg.my_models` on a launcher.

A user module registers its models with `jtransfer.models.register("my_net")` on import (a
`models.base.Model` with `backbone`, `head` and `taps`); every launcher, and the sweep config's
`model_modules` field, imports it before any job looks a name up.

  import_modules(["my_pkg.my_models", "extra_models.py"])   # dotted names or .py files

Dotted names are looked up on `sys.path` plus the current directory (a launcher started from the
user's project finds the user's package); a `.py` path is imported from that file.
"""

from __future__ import annotations

import importlib
import importlib.util
import os
import pathlib
import sys
from collections.abc import Sequence
from types import ModuleType

FLAG = "model_module"


def import_module(name: str) -> ModuleType:
  """Imports one user module (dotted name or .py path); a clear error when it cannot."""
  if name.endswith(".py"):
    path = pathlib.Path(name).absolute()
    if not path.is_file():
      raise ValueError(f"model module file {path} does not exist")
    mod_name = f"jtransfer_user_{path.stem}"
    if mod_name in sys.modules:
      return sys.modules[mod_name]
    spec = importlib.util.spec_from_file_location(mod_name, path)
    module = importlib.util.module_from_spec(spec)
    sys.modules[mod_name] = module
    spec.loader.exec_module(module)
    return module
  cwd = os.getcwd()
  if cwd not in sys.path:
    sys.path.append(cwd)
  try:
    return importlib.import_module(name)
  except ImportError as e:
    raise ValueError(f"cannot import model module {name!r} ({e}); is it on PYTHONPATH?") from e


def import_modules(names: Sequence[str] | str | None) -> list[ModuleType]:
  if not names:
    return []
  if isinstance(names, str):
    names = [names]
  return [import_module(n) for n in names]


def define_flag() -> None:
  """Defines `--model_module` (repeatable) on a launcher; the modules load as flags are parsed."""
  from absl import flags

  flags.DEFINE_multi_string(
    FLAG, [], "Module(s) registering extra architectures (dotted name or .py file)."
  )
  flags.register_validator(FLAG, lambda names: bool(import_modules(names)) or True)

r"""Configs from the command line: `--config FILE[:VARIANT]` plus `--config.<path>=<value>`.

  python launch/sweep.py --config configs/thesis_cnn.py:quick --workdir runs/x \
    --config.score.targets=mnist,fashion_mnist --config.pretrain.duration=epochs:2 \
    --config.finetune.eval_examples=500 --config.evaluate.focus_layer=fc1

Every field can be overridden, whatever its type; the value is parsed by the type of the field
it replaces:
- numbers, strings, booleans (`true`/`false`, `1`/`0`) as they are written;
- a list or tuple: comma-separated items (`a,b`; an empty value is the empty list), each parsed
  like the list's first item, or a Python literal (`"(1, 2)"`, `"['a']"`);
- a dict (e.g. `duration`): `key:value,key:value` or a Python dict literal; it REPLACES the
  whole dict, so `--config.pretrain.duration=steps:400` switches the unit from epochs to steps;
- a list of dicts named by `name` (the sources): comma-separated names keep the config's entry
  of each name (its batch size, architecture) and make `{"name": n}` for a new one;
- a field that is None: by its declared type (`ml_collections.config_dict.placeholder`), else
  as a Python literal when it is one, else as a string; `none` sets a field to None.
Sections with a `schema` (`config_checks.study_schema`: the fields of the stage's config
dataclass) also take any field the config leaves out, typed by its annotation.

An unknown key or a value that does not parse ends the program before any work with one line
naming the key and the valid ones (exit status 2). `config_flags` is not used: it cannot
override list fields, reads `a,b` as the one-item tuple `("a,b",)`, and answers an unknown key
with chained tracebacks.
"""

from __future__ import annotations

import ast
import collections.abc
import dataclasses
import importlib.util
import os
import pathlib
import sys
import types
import typing
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import ml_collections
from ml_collections import config_dict

_NONE_WORDS = ("none", "None", "null")
_TRUE, _FALSE = ("true", "True", "1", "yes"), ("false", "False", "0", "no")


class ConfigError(ValueError):
  """A config file, key or value that cannot be used; the message is one line."""


# -- loading --------------------------------------------------------------------------------


_MODULES: dict[pathlib.Path, types.ModuleType] = {}


def load_module(path: str | os.PathLike) -> types.ModuleType:
  """The config file at `path` as a module, executed once per file (by its resolved path).

  The one way configs are loaded: the study configs are files, not an installed package (no
  top-level `configs` name to clash with), so a config that derives from another loads it
  through here too: `audio_fsdd = config_cli.load_module(pathlib.Path(__file__).parent /
  "audio_fsdd.py")`."""
  file = pathlib.Path(path)
  if not file.is_file():
    raise ConfigError(f"config file {os.fspath(path)!r} does not exist")
  key = file.resolve()
  if key not in _MODULES:
    name = f"_jtransfer_config_{file.stem}"
    module_spec = importlib.util.spec_from_file_location(name, key)
    module = importlib.util.module_from_spec(module_spec)
    module_spec.loader.exec_module(module)
    _MODULES[key] = module
  return _MODULES[key]


def load(spec: str) -> ml_collections.ConfigDict:
  """`path/to/config.py[:variant]` -> `get_config(variant)` (or `get_config()` without one)."""
  path, _, variant = spec.partition(":")
  module = load_module(path)
  if not callable(getattr(module, "get_config", None)):
    raise ConfigError(f"config file {path!r} has no get_config function")
  try:
    config = module.get_config(variant) if variant else module.get_config()
  except ValueError as e:  # the configs reject an unknown variant with the valid ones
    raise ConfigError(f"{path}: {e}") from None
  if not isinstance(config, ml_collections.ConfigDict):
    raise ConfigError(f"{path}: get_config returned {type(config).__name__}, not a ConfigDict")
  return config


def variants(path: str | os.PathLike) -> tuple[str, ...]:
  """The variants a config file accepts, read from its error for an unknown one."""
  file = pathlib.Path(path)
  try:
    load(f"{file}:__no_such_variant__")
  except ConfigError as e:
    _, sep, valid = str(e).rpartition("valid: ")
    if sep:
      return tuple(v.strip() for v in valid.split(","))
  raise ConfigError(f"{path}: get_config does not reject an unknown variant with 'valid: ...'")


# -- the command line -----------------------------------------------------------------------


def split_argv(argv: Sequence[str], name: str = "config") -> tuple[list[str], list[tuple]]:
  """(argv without the `--<name>.<path>` overrides, [(path, raw value), ...] in order)."""
  rest, overrides, i = [], [], 0
  prefix = f"--{name}."
  while i < len(argv):
    arg = argv[i]
    if arg.startswith(prefix):
      key, sep, raw = arg[len(prefix) :].partition("=")
      if not sep:  # `--config.x value`
        if i + 1 >= len(argv):
          raise ConfigError(f"{arg} has no value")
        raw, i = argv[i + 1], i + 1
      overrides.append((key, raw))
    else:
      rest.append(arg)
    i += 1
  return rest, overrides


# -- values ---------------------------------------------------------------------------------


def _literal(raw: str) -> Any:
  try:
    return ast.literal_eval(raw)
  except (ValueError, SyntaxError):
    return raw


def _scalar(raw: str, kind: type, key: str) -> Any:
  if kind is bool:
    if raw in _TRUE:
      return True
    if raw in _FALSE:
      return False
    raise ConfigError(f"--config.{key}={raw}: expected a bool (true or false)")
  if kind in (int, float):
    try:
      value = ast.literal_eval(raw.replace("_", "")) if kind is int else float(raw)
    except (ValueError, SyntaxError):
      value = None
    if kind is int and not (isinstance(value, int) and not isinstance(value, bool)):
      raise ConfigError(f"--config.{key}={raw}: expected an int")
    if value is None:
      raise ConfigError(f"--config.{key}={raw}: expected a number")
    return value
  if kind is str:
    return raw
  return _literal(raw)


def _sequence(raw: str, current: Sequence | None, item: type | None, key: str, kind: type):
  if raw.strip()[:1] in ("(", "["):
    value = _literal(raw)
    if not isinstance(value, (list, tuple)):
      raise ConfigError(f"--config.{key}={raw}: expected a list")
    return kind(value)
  parts = [p.strip() for p in raw.split(",")] if raw.strip() else []
  items = list(current or ())
  if items and all(isinstance(x, Mapping) and "name" in x for x in items):
    by_name = {x["name"]: dict(x) for x in items}  # keep each named entry's own settings
    return kind(by_name.get(p, {"name": p}) for p in parts)
  if item is None and items:
    item = type(items[0])
  return kind(_scalar(p, item, key) if item is not None else _literal(p) for p in parts)


def _mapping(raw: str, key: str) -> dict:
  if raw.strip().startswith("{"):
    value = _literal(raw)
    if not isinstance(value, dict):
      raise ConfigError(f"--config.{key}={raw}: expected a dict")
    return value
  out = {}
  for part in filter(None, (p.strip() for p in raw.split(","))):
    k, sep, v = part.partition(":")
    if not sep or not k.strip():
      raise ConfigError(f"--config.{key}={raw}: expected key:value[,key:value] or a dict literal")
    out[k.strip()] = _literal(v.strip())
  return out


def parse_value(raw: str, *, current: Any, declared: Any, key: str) -> Any:
  """`raw` as the type of the field it replaces: its `current` value or `declared` type."""
  if raw in _NONE_WORDS:
    return None
  kind, item = _kind(declared) if declared is not None else (None, None)
  if kind is None and current is not None:
    kind = type(current)
  if isinstance(current, (Mapping, ml_collections.ConfigDict)) or kind in (dict, Mapping):
    return _mapping(raw, key)
  if isinstance(current, (list, tuple)) or kind in (list, tuple):
    container = type(current) if isinstance(current, (list, tuple)) else kind
    return _sequence(raw, current, item, key, container)
  if kind in (bool, int, float, str):
    return _scalar(raw, kind, key)
  return _literal(raw)


def _kind(annotation: Any) -> tuple[type | None, type | None]:
  """(container or scalar type, item type) of a type or annotation; (None, None) if unknown."""
  if isinstance(annotation, type) and annotation in (bool, int, float, str, list, tuple, dict):
    return annotation, None
  origin, args = typing.get_origin(annotation), typing.get_args(annotation)
  if origin in (typing.Union, types.UnionType):
    kinds = [_kind(a) for a in args if a is not type(None)]
    kinds = [k for k in kinds if k[0] is not None]
    return kinds[0] if kinds else (None, None)  # `str | os.PathLike`: str
  if origin in (list, tuple, collections.abc.Sequence):
    item = _kind(args[0])[0] if args and args[0] is not Ellipsis else None
    return (list if origin is list else tuple), item
  if origin in (dict, collections.abc.Mapping):
    return dict, None
  return None, None


def schema_fields(config_type: type) -> dict[str, Any]:
  """Fields of a config dataclass -> their type (what a section with this schema may set)."""
  hints = typing.get_type_hints(config_type)
  return {f.name: hints.get(f.name, Any) for f in dataclasses.fields(config_type)}


# -- overrides ------------------------------------------------------------------------------


def _keys(node: Any) -> list[str]:
  return sorted(node.keys()) if isinstance(node, (Mapping, ml_collections.ConfigDict)) else []


def apply_overrides(
  config: ml_collections.ConfigDict,
  overrides: Sequence[tuple[str, str]],
  *,
  schema: Mapping[str, Mapping[str, Any]] | None = None,
  exclude: Mapping[str, Sequence[str]] | None = None,
) -> ml_collections.ConfigDict:
  """Sets each `(dotted path, raw value)` on `config` (in place, unlocked); returns it.

  schema: section -> {extra key: annotation} the section may take although the config leaves
    it out (see `schema_fields`); exclude: section -> keys the launcher sets itself.
  """
  schema, exclude = dict(schema or {}), dict(exclude or {})
  for path, raw in overrides:
    *parents, leaf = path.split(".")
    node, where = config, ""
    for part in parents:
      if part not in _keys(node):
        raise _unknown(path, part, where, _keys(node))
      node, where = node[part], f"{where}.{part}" if where else part
    if not isinstance(node, (Mapping, ml_collections.ConfigDict)):
      raise ConfigError(f"--config.{path}: {where!r} is a {type(node).__name__}, it has no keys")
    extra = {k: t for k, t in schema.get(where, {}).items() if k not in exclude.get(where, ())}
    if leaf not in _keys(node) and leaf not in extra:
      raise _unknown(path, leaf, where, sorted({*_keys(node), *extra}))
    current = node[leaf] if leaf in _keys(node) else None
    declared = extra.get(leaf)
    if declared is None and isinstance(node, ml_collections.ConfigDict) and leaf in node:
      field_type = node.get_type(leaf)
      declared = None if field_type is type(None) else field_type
    value = parse_value(raw, current=current, declared=declared, key=path)
    if isinstance(node, ml_collections.ConfigDict):
      with node.unlocked():
        _set(node, leaf, value, path)
    else:
      node[leaf] = value
  return config


def _set(node: ml_collections.ConfigDict, leaf: str, value: Any, path: str) -> None:
  try:
    if isinstance(value, dict) and leaf in node:
      del node[leaf]  # a dict replaces the whole field (a new duration unit), not merges
    node[leaf] = value
  except TypeError as e:  # ConfigDict's own type check (e.g. a str into an int field)
    raise ConfigError(f"--config.{path}: {e}") from None


def _unknown(path: str, key: str, where: str, valid: Sequence[str]) -> ConfigError:
  scope = f"keys of {where!r}" if where else "top-level keys"
  return ConfigError(
    f"--config.{path}: unknown key {key!r}; valid {scope}: {', '.join(valid) or '(none)'}"
  )


# -- absl glue ------------------------------------------------------------------------------


class ConfigFlag:
  """`--<name>=FILE[:VARIANT]` plus overrides; `.value` is the checked, locked ConfigDict."""

  def __init__(self, name, help_, *, schema=None, exclude=None, checks=None, default=None):
    """default: a function giving the config when the flag is not passed (None: required)."""
    from absl import flags  # noqa: PLC0415

    self.name, self.schema, self.exclude, self.checks = name, schema, exclude, checks
    self.default = default
    help_ = f"{help_} FILE[:VARIANT]; override fields with --{name}.<key>=<value>."
    self._flag = flags.DEFINE_string(name, None, help_, required=default is None)
    self.overrides: list[tuple[str, str]] = []
    self.value: ml_collections.ConfigDict | None = None

  def build(self) -> ml_collections.ConfigDict:
    schema = self.schema() if callable(self.schema) else self.schema
    spec = self._flag.value
    config = load(spec) if spec is not None else self.default()
    config = apply_overrides(config, self.overrides, schema=schema, exclude=self.exclude)
    if self.checks is not None:
      self.checks(config)
    config.lock()
    return config


def run(main: Callable, config: ConfigFlag) -> None:
  """`absl.app.run(main)`, with `config`'s overrides taken from argv and the config loaded,
  overridden and checked before `main`; a `ConfigError` (or ValueError of a check) is one
  line on stderr and exit status 2."""
  from absl import app, flags  # noqa: PLC0415

  def parser(argv):
    try:
      rest, config.overrides = split_argv(argv, config.name)
      return flags.FLAGS(rest)
    except (ConfigError, flags.Error) as e:
      fail(e)

  def checked_main(argv):
    try:
      config.value = config.build()
    except (ValueError, FileNotFoundError) as e:  # ConfigError, the checks, a missing folder
      fail(e)
    return main(argv)

  app.run(checked_main, flags_parser=parser)


def fail(error: Exception) -> typing.NoReturn:
  """Ends the program before any work: `error: <one line>` on stderr, exit status 2."""
  print(f"error: {error}", file=sys.stderr)
  raise SystemExit(2)


def placeholder(kind: type) -> config_dict.FieldReference:
  """A None field that can be set to `kind` (re-exported for configs)."""
  return config_dict.placeholder(kind)

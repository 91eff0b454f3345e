"""The lock (requirements-lock.txt) pins every dependency pyproject.toml names, inside its range."""

import pathlib
import re
import tomllib

import pytest
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name
from packaging.version import Version

_REPO = pathlib.Path(__file__).resolve().parents[1]
_PIN = re.compile(r"^([A-Za-z0-9][A-Za-z0-9._-]*)==([^\s;]+)\s*(;.*)?$")


def parse_lock(text: str) -> dict[str, Version]:
  """name -> pinned version; every non-comment line must be an exact pin."""
  pins = {}
  for number, line in enumerate(text.splitlines(), 1):
    line = line.strip()
    if not line or line.startswith("#"):
      continue
    match = _PIN.match(line)
    if match is None:
      raise ValueError(f"lock line {number} is not an exact pin: {line!r}")
    pins[canonicalize_name(match[1])] = Version(match[2])
  return pins


def lock_problems(requirements: list[str], pins: dict[str, Version]) -> list[str]:
  """What is wrong with `pins` for `requirements` (missing or out of range); [] when fine."""
  problems = []
  for text in requirements:
    req = Requirement(text)
    if req.marker is not None and not req.marker.evaluate({"python_version": "3.12"}):
      continue
    version = pins.get(canonicalize_name(req.name))
    if version is None:
      problems.append(f"{req.name}: not in the lock")
    elif not req.specifier.contains(version, prereleases=True):
      problems.append(f"{req.name}: locked {version} is outside {req.specifier}")
  return problems


def _project() -> dict:
  return tomllib.loads((_REPO / "pyproject.toml").read_text())["project"]


def test_every_dependency_is_locked_within_its_range():
  project = _project()
  wanted = project["dependencies"] + project["optional-dependencies"]["test"]
  pins = parse_lock((_REPO / "requirements-lock.txt").read_text())
  assert lock_problems(wanted, pins) == []
  # The lock is the whole tested set, transitive packages included, not just the direct ones.
  assert {"jaxlib", "ml-dtypes", "tensorstore"} <= set(pins)


def test_the_checker_catches_a_pin_outside_its_range_and_a_missing_one():
  pins = {"jax": Version("0.13.0"), "numpy": Version("2.1.0")}
  problems = lock_problems(["jax>=0.10.2,<0.13", "numpy>=1.26", "scipy>=1.13"], pins)
  assert problems == ["jax: locked 0.13.0 is outside <0.13,>=0.10.2", "scipy: not in the lock"]


def test_a_lock_line_that_is_not_an_exact_pin_is_refused():
  with pytest.raises(ValueError, match="line 2 is not an exact pin"):
    parse_lock("jax==0.12.1\nnumpy>=2\n")


def test_the_setup_installs_the_lock_by_default():
  setup = (_REPO / "scripts" / "setup.sh").read_text()
  assert 'deps="${JTRANSFER_DEPS:-lock}"' in setup
  assert 'uv pip sync "$lock"' in setup

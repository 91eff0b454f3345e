#!/usr/bin/env bash
# Creates a venv with Python >= 3.12 (JAX >= 0.11 needs it) and installs jtransfer with its test
# extras: by default the tested set pinned in requirements-lock.txt (Python 3.12), so every fresh
# machine gets the same packages. Idempotent: a second run only checks that the install is current.
#   JTRANSFER_DEPS=latest  the newest versions pyproject.toml's ranges allow (scripts/test.sh
#                          --latest uses it, in .venv-latest); JTRANSFER_VENV picks the venv.
set -euo pipefail
cd "$(dirname "$0")/.."
venv="${JTRANSFER_VENV:-.venv}"
deps="${JTRANSFER_DEPS:-lock}"
lock=requirements-lock.txt
UV_VERSION=0.13.9  # the installer; pinned so the resolution itself does not drift

works() { $1 -c 'import sys; sys.exit(sys.version_info < (3, 12))' >/dev/null 2>&1; }

pick_python() {
  # pyenv machines: 3.12.x is installed but not the default (and shims such as python3.13 may
  # exist without a runnable interpreter), so every candidate is tried before it is used.
  if command -v pyenv >/dev/null 2>&1; then
    for v in $(pyenv versions --bare 2>/dev/null | grep -E '^3\.12\.' | sort -rV); do
      works "env PYENV_VERSION=$v python3" && { echo "env PYENV_VERSION=$v python3"; return; }
    done
  fi
  for cand in python3.12 python3.13 python3; do
    works "$cand" && { echo "$cand"; return; }
  done
  echo python3  # Python 3.11: falls back to jax 0.10.x (see README)
}

if [ ! -x "$venv/bin/python" ]; then
  py=$(pick_python)
  echo "[setup] creating $venv with: $py ($($py --version 2>&1))"
  $py -m venv "$venv"
fi
if [ ! -x "$venv/bin/uv" ]; then
  "$venv/bin/python" -m pip install -q "uv==$UV_VERSION" 2>&1 | grep -v "^WARNING: Location" || true
fi
uv() { "$venv/bin/uv" "$@" --python "$venv/bin/python" --quiet; }
pyver=$("$venv/bin/python" -c 'import sys; print(f"{sys.version_info[0]}.{sys.version_info[1]}")')
if [ "$deps" = lock ] && [ "$pyver" != 3.12 ]; then
  echo "[setup] $venv has Python $pyver, the lock is for 3.12: installing from pyproject's ranges"
  deps=ranges
fi
stamp="$venv/.jtransfer-installed"
# Editable, so `python launch/x.py` imports this checkout's jtransfer (the launchers
# do not touch sys.path); reinstalled when the lock or pyproject changes, the dependency set asked
# for changes, or the install points elsewhere.
here=$(pwd -P)
from_here() {
  (cd / && "$here/$venv/bin/python" -c "import jtransfer, pathlib, sys
sys.exit(pathlib.Path(jtransfer.__file__).resolve().parents[1] != pathlib.Path('$here'))") \
    >/dev/null 2>&1
}
current() {
  [ -f "$stamp" ] && [ "$(cat "$stamp")" = "$deps" ] && [ ! pyproject.toml -nt "$stamp" ] \
    && [ ! "$lock" -nt "$stamp" ] && [ "$deps" != latest ] && from_here
}
if ! current; then
  case "$deps" in
    lock)    # exactly the lock: sync also removes what the lock does not list
      uv pip sync "$lock"
      uv pip install --no-deps -e . ;;
    latest)  uv pip install --upgrade --resolution highest -e ".[test]" ;;
    ranges)  uv pip install -e ".[test]" ;;
    *) echo "[setup] JTRANSFER_DEPS=$deps: expected lock or latest" >&2; exit 2 ;;
  esac
  "$venv/bin/python" -c "import jax, flax, optax, orbax.checkpoint, tensorflow_datasets"
  echo "$deps" > "$stamp"
fi
case "$deps" in
  lock) what="the locked set ($lock)" ;;
  latest) what="the newest releases pyproject.toml allows" ;;
  *) what="pyproject.toml's ranges (no lock for Python $pyver)" ;;
esac
"$venv/bin/python" -c "import jax, flax, orbax.checkpoint as o
from importlib.metadata import version
print(f'[setup] $venv: $what: jax {jax.__version__}, flax {flax.__version__},'
      f' orbax-checkpoint {version(\"orbax-checkpoint\")}')"

#!/usr/bin/env bash
# Creates ./.venv with Python >= 3.12 (JAX >= 0.11 needs it) and installs jtransfer with its test
# extras. Idempotent: a second run only checks that the install is current.
set -euo pipefail
cd "$(dirname "$0")/.."

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

if [ ! -x .venv/bin/python ]; then
  py=$(pick_python)
  echo "[setup] creating .venv with: $py ($($py --version 2>&1))"
  $py -m venv .venv
  .venv/bin/python -m pip install -q --upgrade pip
fi
stamp=.venv/.jtransfer-installed
# Editable, so `python launch/x.py` imports this checkout's jtransfer and configs (the launchers
# do not touch sys.path); reinstalled when pyproject changes or the install points elsewhere.
here=$(pwd -P)
from_here() {
  (cd / && "$here/.venv/bin/python" -c "import configs, jtransfer, pathlib, sys
sys.exit(any(pathlib.Path(m.__file__).resolve().parents[1] != pathlib.Path('$here') for m in (configs, jtransfer)))") \
    >/dev/null 2>&1
}
if [ ! -f "$stamp" ] || [ pyproject.toml -nt "$stamp" ] || ! from_here; then
  echo "[setup] installing jtransfer and its test extras into .venv"
  .venv/bin/python -m pip install -q -e ".[test]" 2>&1 | grep -v "^WARNING: Location" || true
  .venv/bin/python -c "import jax, flax, optax, orbax.checkpoint, tensorflow_datasets" \
    && touch "$stamp"
fi
.venv/bin/python -c "import jax, flax; print(f'[setup] python ok: jax {jax.__version__}, flax {flax.__version__}')"

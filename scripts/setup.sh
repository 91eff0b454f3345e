#!/usr/bin/env bash
# Creates ./.venv with Python >= 3.12 (JAX >= 0.11 needs it) and installs jtransfer with its test
# extras. Idempotent: a second run only checks that the install is current.
set -euo pipefail
cd "$(dirname "$0")/.."

pick_python() {
  for cand in python3.13 python3.12; do
    command -v "$cand" >/dev/null 2>&1 && { echo "$cand"; return; }
  done
  # pyenv machines: 3.12.x is installed but not the default.
  if command -v pyenv >/dev/null 2>&1; then
    for v in $(pyenv versions --bare 2>/dev/null | grep -E '^3\.1[2-9]' | sort -rV); do
      echo "env PYENV_VERSION=$v python3"; return
    done
  fi
  echo python3  # falls back to jax 0.10.x on Python 3.11 (see README)
}

if [ ! -x .venv/bin/python ]; then
  py=$(pick_python)
  echo "[setup] creating .venv with: $py ($($py --version 2>&1))"
  $py -m venv .venv
  .venv/bin/python -m pip install -q --upgrade pip
fi
stamp=.venv/.jtransfer-installed
if [ ! -f "$stamp" ] || [ pyproject.toml -nt "$stamp" ]; then
  echo "[setup] installing jtransfer and its test extras into .venv"
  .venv/bin/python -m pip install -q -e ".[test]" 2>&1 | grep -v "^WARNING: Location" || true
  .venv/bin/python -c "import jax, flax, optax, orbax.checkpoint, tensorflow_datasets" \
    && touch "$stamp"
fi
.venv/bin/python -c "import jax, flax; print(f'[setup] python ok: jax {jax.__version__}, flax {flax.__version__}')"

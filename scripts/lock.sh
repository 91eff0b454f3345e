#!/usr/bin/env bash
# Refreshes requirements-lock.txt, the exact package set scripts/setup.sh installs: the newest
# versions that pyproject.toml's ranges allow (with the test extras), for Python 3.12 on every
# platform. Run `bash scripts/test.sh --latest` first (the same resolution, tested), then this,
# then `bash scripts/test.sh` on the new lock, and commit the lock with the suite green.
set -euo pipefail
cd "$(dirname "$0")/.."
# The installer comes from the newest lane's venv (the lock may not exist yet).
JTRANSFER_VENV=.venv-latest JTRANSFER_DEPS=latest bash scripts/setup.sh >/dev/null
.venv-latest/bin/uv pip compile pyproject.toml --extra test --universal --python-version 3.12 \
  --no-header --quiet -o requirements-lock.txt.new
{
  echo "# The tested package set: scripts/setup.sh installs it into .venv (Python 3.12)."
  echo "# Made by scripts/lock.sh (uv pip compile of pyproject.toml [test], --universal,"
  echo "# --python-version 3.12); refresh it with that script, never by hand."
  cat requirements-lock.txt.new
} > requirements-lock.txt
rm requirements-lock.txt.new
echo "[lock] requirements-lock.txt: $(grep -cE '^[a-z0-9]' requirements-lock.txt) packages"

#!/usr/bin/env bash
# The test command: set up (if needed), lint, then the test suite (slow tests included) on 8 fake
# CPU devices per worker.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
export JTRANSFER_DATA_DIR="${JTRANSFER_DATA_DIR:-$(cd .. && pwd)/shared/datasets}"
export JTRANSFER_QUIET=1
.venv/bin/ruff check .
.venv/bin/ruff format --check .
# Two workers, one test file each at a time (files share module fixtures such as the tiny sweep).
.venv/bin/python -m pytest -q -n 2 --dist loadfile "$@"

#!/usr/bin/env bash
# The test command: set up (if needed), lint, then the test suite on 8 fake CPU devices.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
export JTRANSFER_DATA_DIR="${JTRANSFER_DATA_DIR:-$(cd .. && pwd)/shared/datasets}"
export JTRANSFER_QUIET=1
.venv/bin/ruff check .
.venv/bin/ruff format --check .
.venv/bin/python -m pytest -q "$@"

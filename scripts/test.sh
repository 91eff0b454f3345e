#!/usr/bin/env bash
# The test command: set up (if needed), lint, then the test suite (slow tests included) on 8 fake
# CPU devices per worker, with the locked package set in .venv. This full lane is what CI runs.
#   bash scripts/test.sh --fast [pytest args]     the local lane: lint and the fast tests (not
#       slow), without the jax_enable_x64 pass.
#   bash scripts/test.sh --latest [pytest args]   the fast tests (not slow) against the newest
#       releases pyproject.toml allows, in .venv-latest; run it before refreshing the lock
#       (scripts/lock.sh).
set -euo pipefail
cd "$(dirname "$0")/.."
venv=.venv
select=()
x64=1
if [ "${1:-}" = --fast ]; then
  shift
  select=(-m "not slow")
  x64=0
  bash scripts/setup.sh
elif [ "${1:-}" = --latest ]; then
  shift
  venv=.venv-latest
  select=(-m "not slow")
  JTRANSFER_VENV=$venv JTRANSFER_DEPS=latest bash scripts/setup.sh
else
  bash scripts/setup.sh
fi
export JTRANSFER_DATA_DIR="${JTRANSFER_DATA_DIR:-$(cd .. && pwd)/shared/datasets}"
export JTRANSFER_QUIET=1
$venv/bin/ruff check .
$venv/bin/ruff format --check .
# Two workers, one test file each at a time (files share module fixtures such as the tiny sweep).
$venv/bin/python -m pytest -q -n 2 --dist loadfile "${select[@]}" "$@"
# The score core again with jax_enable_x64 on (users turn it on; float32 features must keep
# float32 kernels, and the float64 references still hold): the fast score tests, a plain run only.
if [ "$#" -eq 0 ] && [ "$venv" = .venv ] && [ "$x64" = 1 ]; then
  JAX_ENABLE_X64=1 $venv/bin/python -m pytest -q -n 2 --dist loadfile -m "not slow" \
    tests/scores_*.py tests/score_features_test.py
fi

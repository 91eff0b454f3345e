#!/usr/bin/env bash
# The main job: the thesis CNN study, quick variant, offline on the real data (2-core CPU,
# under 30 minutes). Rerunning resumes: finished stages and units are skipped.
#   bash scripts/main.sh [extra absl flags, e.g. --workdir=runs/other]
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
export JTRANSFER_DATA_DIR="${JTRANSFER_DATA_DIR:-$(cd .. && pwd)/shared/datasets}"
.venv/bin/python launch/sweep.py --config configs/thesis_cnn.py:quick \
  --workdir runs/thesis_cnn_quick "$@"

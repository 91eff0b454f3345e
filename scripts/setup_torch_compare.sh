#!/usr/bin/env bash
# Optional: a side venv with the CPU PyTorch wheel for the side-by-side zoo benchmark
# (benchmarks/zoo_throughput.py --torch_python .venv-torch/bin/python). The CPU wheel on this
# workplace's disk is for Python 3.11, and jax 0.12 needs 3.12, so torch gets its own venv.
set -euo pipefail
cd "$(dirname "$0")/.."
PY="${TORCH_PYTHON:-python3.11}"
[ -x .venv-torch/bin/python ] || "$PY" -m venv .venv-torch
.venv-torch/bin/pip install -q "torch==2.13.0" numpy safetensors
.venv-torch/bin/python -c "import torch; print('torch', torch.__version__)"

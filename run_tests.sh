#!/usr/bin/env bash
# Creates .venv (Python 3.11), installs the package with every extra but the GPU build at the
# tested versions (constraints.txt), runs the whole suite under the TensorFlow backend, then
# the backend-independent part (marked backend) under JAX and under PyTorch.
set -euo pipefail
cd "$(dirname "$0")"
PYTHON="${PYTHON:-python3.11}"
[ -x .venv/bin/python ] || "$PYTHON" -m venv .venv
.venv/bin/python -m pip install -q --upgrade pip
.venv/bin/python -m pip install -q -c constraints.txt -e ".[cpu,preprocess,tuning,test]"
.venv/bin/python -m pytest -q "$@"
KERAS_BACKEND=jax .venv/bin/python -m pytest -q -m backend "$@"
KERAS_BACKEND=torch .venv/bin/python -m pytest -q -m backend "$@"

#!/usr/bin/env bash
# Creates .venv (Python 3.11), installs the package with its test extras, runs the
# whole suite under the TensorFlow backend, then the JAX-marked part under JAX.
set -euo pipefail
cd "$(dirname "$0")"
PYTHON="${PYTHON:-python3.11}"
[ -x .venv/bin/python ] || "$PYTHON" -m venv .venv
.venv/bin/python -m pip install -q --upgrade pip
.venv/bin/python -m pip install -q -r requirements-test.txt -e .
.venv/bin/python -m pytest -q "$@"
KERAS_BACKEND=jax .venv/bin/python -m pytest -q -m backend "$@"

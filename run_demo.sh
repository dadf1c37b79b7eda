#!/usr/bin/env bash
# Creates .venv (Python 3.11), installs the package, then runs the main job: LOSO
# training of CMNet and of the classification-only baseline on the embedded
# real-face dataset (generated and preprocessed on first use), with results and plots.
set -euo pipefail
cd "$(dirname "$0")"
PYTHON="${PYTHON:-python3.11}"
[ -x .venv/bin/python ] || "$PYTHON" -m venv .venv
.venv/bin/python -m pip install -q --upgrade pip
.venv/bin/python -m pip install -q -r requirements.txt -e .
.venv/bin/python -m cmnet_keras.train --preset demo --out runs/demo-cmnet "$@"
.venv/bin/python -m cmnet_keras.train --preset demo --lambdas 0 0 1 --out runs/demo-baseline "$@"

#!/usr/bin/env bash
# Creates .venv (Python 3.11), installs the package, then runs the main job: LOSO
# training and evaluation of CMNet on the embedded real-face dataset (generated and
# preprocessed on first use), with results and plots in runs/demo-cmnet/, and the final model trained on every
# subject (runs/demo-cmnet/model.keras: what the README's export and predict examples use).
# --with-baseline: afterwards also the classification-only baseline, lambda = (0, 0, 1),
# in runs/demo-baseline/ (the README's comparison; ~10 more minutes on 2 CPU cores).
# Other arguments go to `python -m cmnet_keras.train`.
set -euo pipefail
cd "$(dirname "$0")"
BASELINE=0
if [ "${1:-}" = "--with-baseline" ]; then BASELINE=1; shift; fi
PYTHON="${PYTHON:-python3.11}"
[ -x .venv/bin/python ] || "$PYTHON" -m venv .venv
.venv/bin/python -m pip install -q --upgrade pip
.venv/bin/python -m pip install -q -c constraints.txt -e ".[cpu,preprocess]"
.venv/bin/python -m cmnet_keras.train --preset demo --out runs/demo-cmnet --final-model "$@"
if [ "$BASELINE" = 1 ]; then
  .venv/bin/python -m cmnet_keras.train --preset demo --lambdas 0 0 1 --out runs/demo-baseline "$@"
fi

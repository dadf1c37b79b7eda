#!/usr/bin/env bash
# GPU check (bench/gpu_check.py): CMNet's paper preset trained a few steps under
# KERAS_BACKEND=jax, float32 and mixed_bfloat16, batch 8 then doubling; prints clips/s,
# peak GPU memory and the FFE's share of the GPU's bf16 peak. Under 8 minutes.
# Needs python3 with jax (GPU build), keras and numpy; no TensorFlow. On a machine
# without keras, put its wheels (keras, namex, optree, ...) in WHEELS=DIR: they are
# installed into a temporary folder first. Arguments go to gpu_check.py (--smoke: tiny
# preset on any device, to debug on a CPU).
#   bash bench/gpu_check.sh
#   WHEELS=.whl bash bench/gpu_check.sh 2>&1 | tee gpu_check.log
set -euo pipefail
if [ -n "${WHEELS:-}" ]; then WHEELS="$(cd "$WHEELS" && pwd)"; fi
cd "$(dirname "$0")/.."
PYTHON="${PYTHON:-python3}"
if [ -n "${WHEELS:-}" ]; then
  SITE="$(mktemp -d)"
  "$PYTHON" -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --target "$SITE" "$WHEELS"/*.whl
  export PYTHONPATH="$SITE${PYTHONPATH:+:$PYTHONPATH}"
fi
export PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}" KERAS_BACKEND=jax PYTHONUNBUFFERED=1 TF_CPP_MIN_LOG_LEVEL=2
# One process at a time may use 95% of the GPU (jax preallocates 75% otherwise), growing as it needs.
export XLA_PYTHON_CLIENT_PREALLOCATE="${XLA_PYTHON_CLIENT_PREALLOCATE:-false}" XLA_PYTHON_CLIENT_MEM_FRACTION="${XLA_PYTHON_CLIENT_MEM_FRACTION:-0.95}"
date -u
nvidia-smi --query-gpu=name,memory.total,driver_version,clocks.max.sm --format=csv 2>/dev/null || echo "no nvidia-smi"
"$PYTHON" - <<'PY'
import importlib.util, platform
import jax, keras
print("python", platform.python_version(), "| jax", jax.__version__, "| keras", keras.__version__,
      "| tensorflow installed:", importlib.util.find_spec("tensorflow") is not None)
print("devices:", jax.devices())
PY
exec timeout 470 "$PYTHON" bench/gpu_check.py "$@"

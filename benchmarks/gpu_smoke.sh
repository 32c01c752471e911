#!/usr/bin/env bash
# GPU smoke check: step time and memory of each strategy against the plain network at full size, a short search
# on coco128, the batch-size probe and the out-of-memory halving, fp16 exports. At most 8 minutes on one GPU.
#   bash benchmarks/gpu_smoke.sh [--json results.json]     on a machine with CUDA
#   bash benchmarks/gpu_smoke.sh --dry-run                  on a CPU, tiny sizes (the test suite runs this)
# Python: $PYTHON, else the project's .venv, else python3. See benchmarks/gpu_smoke.py for the parts.
set -euo pipefail
cd "$(dirname "$0")/.."
if [ -z "${PYTHON:-}" ]; then
  if [ -x .venv/bin/python ]; then PYTHON=.venv/bin/python; else PYTHON=python3; fi
fi
exec timeout 480 "$PYTHON" benchmarks/gpu_smoke.py "$@"

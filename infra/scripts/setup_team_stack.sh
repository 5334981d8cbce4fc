#!/usr/bin/env bash
# What the team-stack tests need (MLflow on PostgreSQL + S3): the PostgreSQL 15 server binaries
# (Debian's postgresql-15, installed if missing) and the SeaweedFS `weed` binary, built once from
# its pinned Go module into ~/.cache/dualengine/seaweedfs-*/ by `dualengine setup` (needs Go, the
# version SeaweedFS's go.mod names; minutes the first time, seconds afterwards). Idempotent.
# Fails, never skips: CI runs the team-stack tests and must not pass without them.
set -euo pipefail
cd "$(dirname "$0")/../.."
VENV="${VENV:-.venv}"
if ! ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1 && ! command -v initdb >/dev/null 2>&1 \
    && [ -z "${DUALENGINE_PG_BIN:-}" ]; then
  SUDO=""
  [ "$(id -u)" -eq 0 ] || SUDO="sudo"
  $SUDO apt-get update -qq
  $SUDO env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq postgresql-15
  # the team stack runs its own cluster; the distribution's default one is not needed
  $SUDO systemctl disable --now postgresql >/dev/null 2>&1 || true
fi
[ -d /usr/local/go/bin ] && export PATH="$PATH:/usr/local/go/bin"
DUALENGINE_MLFLOW_BACKEND=postgres "$VENV/bin/dualengine" setup --profile tiny
echo "✓ team stack prerequisites (PostgreSQL server, SeaweedFS) present"

#!/usr/bin/env bash
# Runs ruff on the FastAPI example (the package's settings), then its tests:
# a real uvicorn serving the app, a real redis-server with the module (from
# $RL_MODULE, else target/debug, which `cargo build` makes), both on free
# loopback ports and stopped afterwards.
set -euo pipefail
source "$(dirname "$0")/venv.sh"
ensure_venv
ensure_deps chromium  # tests/test_ops.py: the operators' page in a headless browser

export RL_MODULE="${RL_MODULE:-$ROOT/target/debug/libratelimit.so}"
if [ ! -f "$RL_MODULE" ]; then
    echo "module not found at $RL_MODULE: run 'cargo build' first (or set RL_MODULE)" >&2
    exit 1
fi
cd "$EXAMPLE"
# The app and its tests under the package's lint rules.
echo "==> ruff"
"$VENV/bin/ruff" check --config "$ROOT/clients/python/pyproject.toml" "$EXAMPLE"
echo "==> pytest"
exec "$PY" -m pytest -q -p no:cacheprovider tests "$@"

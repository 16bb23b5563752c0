#!/usr/bin/env bash
# Client-side tests in Python (redis-py against a Redis Cluster started by
# scripts/cluster on free loopback ports), in the FastAPI example's venv.
set -euo pipefail
source "$(dirname "$0")/../../examples/fastapi/venv.sh"
ensure_venv
export RL_MODULE="${RL_MODULE:-$ROOT/target/debug/libratelimit.so}"
exec "$PY" -m pytest -q -p no:cacheprovider "$ROOT/tests/clients" "$@"

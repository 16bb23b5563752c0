#!/usr/bin/env bash
# Cluster clients against one Redis Cluster (scripts/cluster, 3+3 nodes on
# free loopback ports, always stopped): how each routes every RL.* command,
# the README's "Redis Cluster from clients" table.
#   Python (pytest): redis-py's RedisCluster and valkey-glide, pinned in
#     requirements.txt, in their own virtualenv (tmp/clients-venv).
#   Node.js (node --test): ioredis, node-redis and valkey-glide, locked in
#     package-lock.json, installed by `npm ci` into node_modules when it is
#     missing or the lock changed since.
# Arguments go to pytest. RL_MODULE=path tests that build (default: the
# debug build, which scripts/test has made).
set -euo pipefail
source "$(dirname "$0")/../../scripts/lib.sh"
HERE="$ROOT/tests/clients"
export RL_MODULE="${RL_MODULE:-$ROOT/target/debug/libratelimit.so}"

ensure_deps python3-venv
if ! command -v node >/dev/null 2>&1; then ensure_deps nodejs npm; fi
if [ "$(node -p 'process.versions.node.split(".")[0]')" -lt 20 ]; then
    echo "node $(node --version) is too old: ioredis 6 and node-redis 6 need Node.js 20 or later" >&2
    exit 1
fi

VENV="${CLIENTS_VENV:-$ROOT/tmp/clients-venv}"
PY="$VENV/bin/python"
if ! "$PY" -c 'import sys' >/dev/null 2>&1; then
    rm -rf "$VENV"
    "${PYTHON:-python3}" -m venv "$VENV"
fi
want="$(sha256sum <"$HERE/requirements.txt" | cut -d' ' -f1)"
if [ "$(cat "$VENV/.requirements.sha256" 2>/dev/null || true)" != "$want" ]; then
    echo "==> installing tests/clients/requirements.txt into $VENV"
    "$PY" -m pip install --quiet --disable-pip-version-check -r "$HERE/requirements.txt"
    echo "$want" >"$VENV/.requirements.sha256"
fi
want="$(sha256sum <"$HERE/package-lock.json" | cut -d' ' -f1)"
if [ "$(cat "$HERE/node_modules/.lock.sha256" 2>/dev/null || true)" != "$want" ]; then
    echo "==> npm ci in tests/clients (ioredis, redis, @valkey/valkey-glide)"
    (cd "$HERE" && npm ci --no-audit --no-fund --loglevel=error)
    echo "$want" >"$HERE/node_modules/.lock.sha256"
fi

# Six nodes, each also needing its cluster bus port (+10000): tests/pyserver.py.
base="$(PYTHONPATH="$ROOT/tests" "$PY" -c 'import pyserver as p; print(p.free_base(*p.CLIENTS_PORTS))')"
export BASE_PORT="$base" RL_CLUSTER_PORT="$base"
trap 'bash "$ROOT/scripts/cluster" stop >/dev/null' EXIT
echo "==> a Redis Cluster on 127.0.0.1:$base-$((base + 5))"
bash "$ROOT/scripts/cluster" >/dev/null

echo "==> Python: redis-py, valkey-glide"
"$PY" -m pytest -q -p no:cacheprovider "$HERE" "$@"
echo "==> Node.js: ioredis, node-redis, valkey-glide"
# One file at a time: each test resets and reads every node's statistics.
node --test --test-concurrency=1 "$HERE"

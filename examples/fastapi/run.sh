#!/usr/bin/env bash
# Starts the example API on http://127.0.0.1:${APP_PORT:-8000}, against the
# Redis at $REDIS_URL (default redis://127.0.0.1:6379, the one `scripts/run`
# starts with the module loaded). Other settings: see README.md.
set -euo pipefail
source "$(dirname "$0")/venv.sh"
ensure_venv
export REDIS_URL="${REDIS_URL:-redis://127.0.0.1:6379}"
cd "$EXAMPLE"
# --no-proxy-headers: uvicorn would otherwise take the client address from
# X-Forwarded-For whenever the peer is 127.0.0.1; the app decides that itself
# (RL_TRUSTED_PROXIES).
exec "$VENV/bin/uvicorn" app:create_app --factory --no-proxy-headers \
    --host "${APP_HOST:-127.0.0.1}" --port "${APP_PORT:-8000}" "$@"

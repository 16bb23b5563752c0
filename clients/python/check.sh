#!/usr/bin/env bash
# Checks the Python package in clients/python: ruff, mypy --strict, a wheel
# built with `pip wheel`, the test suite (pytest against real redis-server
# processes with the module: standalone, a 3+3 cluster, a master and a
# replica under three redis-sentinel processes, RESP2 and RESP3)
# run on that wheel installed, and `pip install ./clients/python`,
# `pip install './clients/python[fastapi]'` and './clients/python[prometheus]'
# in fresh virtualenvs. The dashboard's test drives Debian's chromium.
#
# Everything comes from PyPI at the versions pinned in requirements-dev.txt
# (also the constraint for the fresh installs and the build backend). The
# module is $RL_MODULE, else target/debug/libratelimit.so (`cargo build`).
# Extra arguments go to pytest.
set -euo pipefail
PKG="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
source "$PKG/../../scripts/lib.sh"   # ROOT, ensure_deps
# the Sentinel failover test, and the dashboard's headless test
ensure_deps python3-venv redis-sentinel chromium

WORK="$ROOT/tmp/python-client"
VENV="${VENV:-$WORK/venv}"
PY="$VENV/bin/python"
PIP=(--quiet --disable-pip-version-check)
export PIP_CONSTRAINT="$PKG/requirements-dev.txt"

export RL_MODULE="${RL_MODULE:-$ROOT/target/debug/libratelimit.so}"
if [ ! -f "$RL_MODULE" ]; then
    echo "module not found at $RL_MODULE: run 'cargo build' first (or set RL_MODULE)" >&2
    exit 1
fi

# The tools' venv, reinstalled only when requirements-dev.txt changed.
if ! "$PY" -c 'import sys' >/dev/null 2>&1; then
    echo "==> creating the virtualenv $VENV"
    rm -rf "$VENV"
    "${PYTHON:-python3}" -m venv "$VENV"
fi
stamp="$VENV/.requirements-dev.sha256"
want="$(sha256sum "$PKG/requirements-dev.txt" | cut -d' ' -f1)"
if [ "$(cat "$stamp" 2>/dev/null || true)" != "$want" ]; then
    echo "==> installing clients/python/requirements-dev.txt into $VENV"
    "$PY" -m pip install "${PIP[@]}" -r "$PKG/requirements-dev.txt"
    echo "$want" >"$stamp"
fi

cd "$PKG"
echo "==> ruff"
"$VENV/bin/ruff" check .
"$VENV/bin/ruff" format --check .
echo "==> mypy --strict"
"$VENV/bin/mypy" --strict

echo "==> pip wheel"
rm -rf "$WORK/wheel" "$WORK/build"
mkdir -p "$WORK/wheel"
# A copy of the sources, so the build leaves nothing in the work tree.
mkdir -p "$WORK/build" && cp -r "$PKG/pyproject.toml" "$PKG/README.md" "$PKG/src" "$WORK/build/"
"$PY" -m pip wheel "${PIP[@]}" --no-deps -w "$WORK/wheel" "$WORK/build"
WHEEL="$(ls "$WORK"/wheel/redis_ratelimit-*.whl)"
"$PY" -c 'import sys, zipfile; sys.exit("redis_ratelimit/py.typed" not in zipfile.ZipFile(sys.argv[1]).namelist())' "$WHEEL" \
    || { echo "py.typed missing from $WHEEL" >&2; exit 1; }
echo "    $(basename "$WHEEL")"

echo "==> pytest (on the wheel installed)"
"$PY" -m pip install "${PIP[@]}" --force-reinstall --no-deps "$WHEEL"
"$PY" -m pytest -q -p no:cacheprovider tests "$@"

echo "==> pip install ./clients/python, '[fastapi]' and '[prometheus]' in fresh virtualenvs"
for extra in "" "[fastapi]" "[prometheus]"; do
    fresh="$WORK/fresh"
    rm -rf "$fresh"
    "${PYTHON:-python3}" -m venv "$fresh"
    "$fresh/bin/python" -m pip install "${PIP[@]}" "$WORK/build$extra"
    if [ -z "$extra" ]; then
        "$fresh/bin/python" - <<'PYCHECK'
import importlib.metadata as md
import redis_ratelimit
requires = md.requires("redis-ratelimit") or []
plain = [r for r in requires if "extra ==" not in r]
assert [r.split(">")[0].split("=")[0].strip() for r in plain] == ["redis"], requires
installed = sorted(d.metadata["Name"].lower() for d in md.distributions())
assert "fastapi" not in installed and "starlette" not in installed, installed
print("    plain install: redis_ratelimit", redis_ratelimit.__version__, "with", ", ".join(installed))
PYCHECK
    elif [ "$extra" = "[fastapi]" ]; then
        "$fresh/bin/python" -c 'import redis_ratelimit.fastapi as f; print("    [fastapi] install:", f.__name__, "imports")'
    else
        "$fresh/bin/python" - <<'PYCHECK'
import redis.asyncio
import redis_ratelimit.fastapi.metrics as m
from prometheus_client import CollectorRegistry
from redis_ratelimit.fastapi import Limiter
from redis_ratelimit.fastapi.dashboard import dashboard
limiter = Limiter(redis.asyncio.Redis(), metrics=CollectorRegistry())
assert limiter.metrics is not None and dashboard(limiter, authorize=None) is not None
print("    [prometheus] install:", m.__name__, "imports, the dashboard's page is packaged")
PYCHECK
    fi
    rm -rf "$fresh"
done
echo "==> clients/python: all checks passed"

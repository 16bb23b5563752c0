#!/usr/bin/env bash
# The side-by-side benchmark (see clients/python/README.md, "Benchmark").
# Run by hand, not by scripts/test:
#
#     cargo build --release && bash clients/python/bench/run.sh [bench.py options]
#
# Makes its own venv under $ROOT/tmp/python-bench from requirements.txt
# (every version pinned), installs this package into it, installs wrk from
# Debian's packages if missing, and runs bench.py, which starts its own
# redis-server with the module on a free loopback port and stops it.
# The module is $RL_MODULE, else target/release, else target/debug.
set -euo pipefail
BENCH="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
source "$BENCH/../../../scripts/lib.sh"   # ROOT, ensure_deps
ensure_deps python3-venv wrk

WORK="$ROOT/tmp/python-bench"
VENV="$WORK/venv"
PIP=(--quiet --disable-pip-version-check)
module="${RL_MODULE:-}"
for m in "$ROOT/target/release/libratelimit.so" "$ROOT/target/debug/libratelimit.so"; do
    [ -n "$module" ] || { [ -f "$m" ] && module="$m"; }
done
[ -n "$module" ] || { echo "no module: run 'cargo build --release' first" >&2; exit 1; }

if ! "$VENV/bin/python" -c 'import sys' >/dev/null 2>&1; then
    rm -rf "$VENV"
    "${PYTHON:-python3}" -m venv "$VENV"
fi
stamp="$VENV/.requirements.sha256"
want="$(sha256sum "$BENCH/requirements.txt" | cut -d' ' -f1)"
if [ "$(cat "$stamp" 2>/dev/null || true)" != "$want" ]; then
    echo "==> installing bench/requirements.txt into $VENV"
    "$VENV/bin/python" -m pip install "${PIP[@]}" -r "$BENCH/requirements.txt"
    echo "$want" >"$stamp"
fi
# This package as it is in the work tree (a copy: the build leaves nothing here).
rm -rf "$WORK/build" && mkdir -p "$WORK/build"
cp -r "$BENCH/../pyproject.toml" "$BENCH/../README.md" "$BENCH/../src" "$WORK/build/"
"$VENV/bin/python" -m pip install "${PIP[@]}" --no-deps --force-reinstall "$WORK/build"

echo "==> module $module"
exec "$VENV/bin/python" "$BENCH/bench.py" --module "$module" --out "$WORK/results/bench.json" "$@"

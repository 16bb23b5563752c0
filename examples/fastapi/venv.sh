# Sourced by test.sh and run.sh: makes sure <repo>/.venv exists and holds
# exactly requirements.txt and the redis-ratelimit package from this repo
# (clients/python, installed editable: its changes apply at once). pip runs
# only when requirements.txt or the package's pyproject.toml changed since
# the last install (a hash stamp is kept inside the venv).
EXAMPLE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
source "$EXAMPLE/../../scripts/lib.sh"   # ROOT, ensure_deps
VENV="${VENV:-$ROOT/.venv}"
PY="$VENV/bin/python"

ensure_venv() {
    # python3-venv: Debian's python3 cannot make a venv without it.
    ensure_deps python3-venv
    if ! "$PY" -c 'import sys' >/dev/null 2>&1; then
        echo "==> creating the virtualenv $VENV"
        rm -rf "$VENV"
        "${PYTHON:-python3}" -m venv "$VENV"
    fi
    local stamp="$VENV/.fastapi-requirements.sha256" want
    want="$(cat "$EXAMPLE/requirements.txt" "$ROOT/clients/python/pyproject.toml" | sha256sum | cut -d' ' -f1)"
    if [ "$(cat "$stamp" 2>/dev/null || true)" != "$want" ]; then
        echo "==> installing clients/python and examples/fastapi/requirements.txt into $VENV"
        # The pinned versions of requirements.txt, the package's own
        # dependencies among them (hence --no-deps for it).
        "$PY" -m pip install --quiet --disable-pip-version-check -r "$EXAMPLE/requirements.txt"
        "$PY" -m pip install --quiet --disable-pip-version-check --no-deps -e "$ROOT/clients/python"
        echo "$want" >"$stamp"
    fi
}

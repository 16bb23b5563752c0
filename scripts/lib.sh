# Shared by the scripts: installs what the project needs from Debian's
# packages, only when it is missing, so a fresh machine needs nothing by hand.

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"

_have_pkg() {
    dpkg-query -W -f='${Status}' "$1" 2>/dev/null | grep -q "install ok installed"
}

_as_root() {
    if [ "$(id -u)" -eq 0 ]; then "$@"; else sudo "$@"; fi
}

# ensure_deps [extra-package ...]
ensure_deps() {
    local need=() pkg
    for pkg in redis-server redis-tools libclang-dev "$@"; do
        _have_pkg "$pkg" || need+=("$pkg")
    done
    if [ "${#need[@]}" -gt 0 ]; then
        echo "==> installing ${need[*]} (Debian packages)"
        _as_root env DEBIAN_FRONTEND=noninteractive apt-get update -qq
        _as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${need[@]}" >/dev/null
        case " ${need[*]} " in
            *" redis-server "*)
                # Debian starts its own redis-server service on 6379 when the
                # package is installed; it has no module and would hold the
                # port our server is meant to use.
                if command -v systemctl >/dev/null 2>&1 && systemctl is-active --quiet redis-server 2>/dev/null; then
                    echo "==> stopping the redis-server service Debian just started (it would hold port 6379)"
                    _as_root systemctl stop redis-server || true
                fi
                ;;
        esac
        case " ${need[*]} " in
            *" redis-sentinel "*)
                # Likewise its sentinel service (26379): tests start their own.
                if command -v systemctl >/dev/null 2>&1 && systemctl is-active --quiet redis-sentinel 2>/dev/null; then
                    echo "==> stopping the redis-sentinel service Debian just started"
                    _as_root systemctl stop redis-sentinel || true
                fi
                ;;
        esac
    fi
    if ! command -v cargo >/dev/null 2>&1; then
        echo "cargo not found: install Rust (rustup) first" >&2
        exit 1
    fi
}

# The integration suites scripts/servers and scripts/redis74 run against
# other servers: every tests/*.rs that starts one but the load (stress.rs),
# which is run on Debian's server only. trust.rs (who may change policies,
# replicas refusing policy writes, lease ids) depends on each server's ACL
# and replication, so it runs on all of them.
SERVER_SUITES=(
    --test algorithms --test commands --test configuration --test rl_all
    --test refunds --test penalty --test leases --test policies --test peek
    --test memory --test persistence --test replication --test cluster
    --test compat --test docs --test top --test trust
)

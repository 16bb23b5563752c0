"""A live page for operators: an ASGI app to mount behind the app's own
authentication (it shows identities: the keys being denied).

    app.mount("/ratelimit", dashboard(limiter, authorize=is_operator))

    GET /ratelimit/           one HTML page, no external asset (works
                              air-gapped), polling data.json and drawing
                              its charts in inline SVG
    GET /ratelimit/data.json  a sample: INFO ratelimit summed over every
                              master, RL.TOP (denied and SHADOW) merged
                              across masters, and the limiter's own state
                              (the deny cache's entries answering most:
                              denials that never reach Redis)

Counters are totals since each server started; the page turns two
successive samples into rates (by the samples' own `now_ms`, not the
browser's clock). Each sample asks every master two or three commands
(INFO ratelimit, RL.TOP, RL.TOP SHADOW) through the limiter's redis client,
outside its breaker: the page shows Redis as it is, not as the hot path
last saw it.
"""

from __future__ import annotations

import asyncio
import re
import time
from collections.abc import Mapping, Sequence
from importlib import resources
from typing import Any

from redis.asyncio.cluster import RedisCluster
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import HTMLResponse, JSONResponse, Response
from starlette.routing import Route
from starlette.types import ASGIApp

from .guard import Authorize, guarded
from .limiter import Limiter

_COUNTER = re.compile(r"^ratelimit_([a-z0-9]+?)_(calls|allowed|shadow_denied|denied)$")
_COUNTERS = ("calls", "allowed", "denied", "shadow_denied")


def _text(v: Any) -> Any:
    if isinstance(v, bytes):
        return v.decode("utf-8", "replace")
    return v


def _pairs(reply: Any) -> dict[str, Any]:
    """A map reply, RESP3 (a dict) or RESP2 (a flat list), its names as str."""
    if isinstance(reply, Mapping):
        return {str(_text(k)): v for k, v in reply.items()}
    items = list(reply)
    return {str(_text(items[i])): items[i + 1] for i in range(0, len(items) - 1, 2)}


def _policy_counters(value: Any) -> tuple[str, dict[str, int]] | None:
    """A policy_<i> field: name=..,calls=..,... (redis-py may have parsed it
    into a dict already)."""
    if isinstance(value, Mapping):
        fields = {str(k): v for k, v in value.items()}
    else:
        fields = {}
        text = str(_text(value))
        # The name may hold ',' and '=': the counters are read from the end.
        head, *parts = text.rsplit(",", len(_COUNTERS))
        for p in parts:
            k, _, n = p.partition("=")
            fields[k] = n
        fields["name"] = head.removeprefix("name=")
    if "name" not in fields:
        return None
    counters = {}
    for k in _COUNTERS:
        try:
            counters[k] = int(fields.get(k, 0))
        except (TypeError, ValueError):
            counters[k] = 0
    return str(_text(fields["name"])), counters


def merge_info(infos: Sequence[Mapping[str, Any]]) -> dict[str, Any]:
    """INFO ratelimit of several masters as one: counters summed per
    algorithm ("all" for RL.ALL) and per policy, the other numbers summed,
    the text fields (version) of the first."""
    algorithms: dict[str, dict[str, int]] = {}
    policies: dict[str, dict[str, int]] = {}
    fields: dict[str, Any] = {}
    for info in infos:
        for name, value in info.items():
            if re.match(r"^ratelimit_policy_\d+$", name):
                parsed = _policy_counters(value)
                if parsed is not None:
                    totals = policies.setdefault(parsed[0], dict.fromkeys(_COUNTERS, 0))
                    for k, n in parsed[1].items():
                        totals[k] += n
                continue
            m = _COUNTER.match(name)
            # leases_denied and the like are no algorithm's: fields
            if m and isinstance(value, int) and m.group(1) != "leases":
                algo = algorithms.setdefault(m.group(1), dict.fromkeys(_COUNTERS, 0))
                algo[m.group(2)] += value
                continue
            short = name.removeprefix("ratelimit_")
            if isinstance(value, int) and not isinstance(value, bool):
                fields[short] = fields.get(short, 0) + value
            else:
                fields.setdefault(short, _text(value))
    return {"algorithms": algorithms, "policies": policies, "fields": fields}


def merge_top(replies: Sequence[Any], count: int) -> dict[str, Any]:
    """RL.TOP of several masters as one list: entries of one key and
    policy summed (a key lives on one master; the same name on two is
    counted twice), most first, `count` of them. `bound` is the largest
    (a key not listed was denied at most that much on its master)."""
    merged: dict[tuple[str, str | None], dict[str, Any]] = {}
    out: dict[str, Any] = {"tracked": 0, "hidden": 0, "bound": 0, "at_ms": 0, "halflife_ms": 0}
    for reply in replies:
        top = _pairs(reply)
        for k in ("tracked", "hidden"):
            out[k] += int(top.get(k) or 0)
        for k in ("bound", "at_ms", "halflife_ms"):
            out[k] = max(out[k], int(top.get(k) or 0))
        for raw in top.get("keys") or ():
            e = {k: _text(v) for k, v in _pairs(raw).items()}
            key = (str(e.get("key")), e.get("policy"))
            was = merged.get(key)
            if was is None:
                merged[key] = {
                    "key": key[0],
                    "policy": key[1],
                    "count": int(e.get("count") or 0),
                    "error": int(e.get("error") or 0),
                    "denials": int(e.get("denials") or 0),
                    "last_denied_ms": int(e.get("last_denied_ms") or 0),
                    "truncated": bool(e.get("truncated")),
                }
            else:
                for k in ("count", "error", "denials"):
                    was[k] += int(e.get(k) or 0)
                was["last_denied_ms"] = max(
                    was["last_denied_ms"], int(e.get("last_denied_ms") or 0)
                )
    keys = sorted(merged.values(), key=lambda e: (-e["count"], -e["denials"], e["key"]))
    out["keys"] = keys[:count]
    return out


async def _masters(redis: Any, *args: Any) -> dict[str, Any]:
    """One command's reply from every master (one for a standalone server)."""
    if isinstance(redis, RedisCluster):
        await redis.initialize()
        nodes = redis.get_primaries()
        reply = await redis.execute_command(*args, target_nodes=nodes)
        if isinstance(reply, Mapping) and len(nodes) > 1:
            return {str(k): v for k, v in reply.items()}
        return {nodes[0].name: reply}
    pool = getattr(redis, "connection_pool", None)
    kw = getattr(pool, "connection_kwargs", {})
    name = f"{kw.get('host', 'localhost')}:{kw.get('port', 6379)}"
    return {str(kw.get("path") or name): await redis.execute_command(*args)}


async def sample(limiter: Limiter, top: int = 10, timeout: float = 2.0) -> dict[str, Any]:
    """What data.json answers (see the module)."""
    redis = limiter.client.redis
    errors: list[str] = []

    async def ask(*args: Any) -> dict[str, Any]:
        try:
            return await asyncio.wait_for(_masters(redis, *args), timeout)
        except Exception as e:  # shown on the page: an operator wants to know
            errors.append(f"{' '.join(map(str, args))}: {type(e).__name__}: {e}")
            return {}

    infos, denied, shadow = await asyncio.gather(
        ask("INFO", "ratelimit"),
        ask("RL.TOP", "COUNT", top),
        ask("RL.TOP", "COUNT", top, "SHADOW"),
    )
    info_maps = [i if isinstance(i, Mapping) else {} for i in infos.values()]
    breaker = limiter.breaker
    metrics = limiter.metrics
    return {
        "now_ms": round(time.time() * 1000, 3),  # ms, sub-ms: rates over short intervals
        "servers": sorted(infos) or sorted(denied),
        "errors": errors,
        "info": merge_info(info_maps),
        "top": merge_top(list(denied.values()), top),
        "shadow_top": merge_top(list(shadow.values()), top),
        "limiter": {
            "breaker": "none" if breaker is None else breaker.state,
            "failures": dict(limiter.failures),
            "deny_cache": {
                "entries": len(limiter.deny_cache),
                "hits": limiter.deny_cache.hits,
                # This process's, never seen by Redis (RL.TOP counts none).
                "top": [
                    {"key": k, "hits": h, "left_ms": round(left * 1000)}
                    for k, h, left in limiter.deny_cache.top(top)
                ],
            },
            "latency": None if metrics is None else metrics.latency(),
            "decisions": None if metrics is None else metrics.decisions(),
        },
    }


def dashboard(
    limiter: Limiter,
    *,
    authorize: Authorize | None,
    top: int = 10,
    interval: float = 2.0,
) -> ASGIApp:
    """The page and its data.json, as an ASGI app to mount. `authorize`:
    the app's check of an operator (see redis_ratelimit.fastapi.guard;
    `token_check(secret)` for a shared secret), required since the page
    lists the identities being denied: None serves everyone, for an app
    that checks before the mount. `top`: entries of RL.TOP shown;
    `interval`: seconds between two samples the page takes (?interval=
    overrides it)."""

    async def page(request: Request) -> Response:
        html = _PAGE.replace("__INTERVAL_MS__", str(int(interval * 1000)))
        return HTMLResponse(html, headers={"Cache-Control": "no-store"})

    async def data(request: Request) -> Response:
        return JSONResponse(await sample(limiter, top), headers={"Cache-Control": "no-store"})

    return guarded(Starlette(routes=[Route("/", page), Route("/data.json", data)]), authorize)


# The page: one file of HTML, CSS and JS, shipped in the package.
_PAGE = (resources.files(__package__) / "dashboard.html").read_text(encoding="utf-8")

__all__ = ["dashboard", "merge_info", "merge_top", "sample"]

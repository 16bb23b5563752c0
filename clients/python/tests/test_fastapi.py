"""The FastAPI/Starlette integration against a real redis-server with the
module: the app runs in Starlette's TestClient, Redis is real."""

from __future__ import annotations

import gc
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import pytest
import redis
import redis.asyncio
from fastapi import APIRouter, Depends, FastAPI, HTTPException, Request
from fastapi.testclient import TestClient
from starlette.responses import PlainTextResponse, Response

from redis_ratelimit import Decision
from redis_ratelimit.fastapi import (
    Denied,
    Limiter,
    Outcome,
    Quota,
    RateLimitMiddleware,
    by_api_key,
    by_ip,
    widen_young_generation,
)

from .conftest import Server, calls, make, silent_port


def test_dependency_limits_and_sets_headers(server: Server, sync_redis: redis.Redis) -> None:
    app, limiter = make(server.port)

    @app.get("/q", dependencies=[Depends(limiter.limit("2/minute", algorithm="fixed"))])
    async def q() -> dict[str, bool]:
        return {"ok": True}

    with TestClient(app) as c:
        r = c.get("/q")
        assert r.status_code == 200
        assert r.headers["RateLimit-Policy"] == '"minute";q=2;w=60'
        assert r.headers["RateLimit"] == '"minute";r=1;t=60'
        assert r.headers["X-RateLimit-Limit"] == "2"
        assert r.headers["X-RateLimit-Remaining"] == "1"
        assert "Retry-After" not in r.headers
        assert c.get("/q").status_code == 200
        r = c.get("/q")
        assert r.status_code == 429
        assert 1 <= int(r.headers["Retry-After"]) <= 60
        assert r.headers["X-RateLimit-Remaining"] == "0"
        assert r.json() == {"detail": "Rate limit exceeded"}


def test_several_limits_are_one_rl_all(server: Server, sync_redis: redis.Redis) -> None:
    app, limiter = make(server.port, deny_cache=0)
    dep = limiter.limit("100/minute;3/day", algorithm=("token", "fixed"))
    before = calls(sync_redis)

    @app.get("/q", dependencies=[Depends(dep)])
    async def q() -> str:
        return "ok"

    with TestClient(app) as c:
        r = c.get("/q")
        assert r.headers["RateLimit-Policy"] == '"minute";q=100;w=60, "day";q=3;w=86400'
        assert r.headers["X-RateLimit-Limit"] == "3"  # the tightest
        assert calls(sync_redis, "all") == before + 1
        assert calls(sync_redis) == before + 1  # one RL.ALL and nothing else
        c.get("/q")
        c.get("/q")
        r = c.get("/q")
        assert r.status_code == 429
        assert calls(sync_redis) == before + 4
        # The two keys share the identity's hash tag (one slot on a cluster).
        keys = sorted(k.decode() for k in sync_redis.keys("rl:*") if isinstance(k, bytes))
        assert len(keys) == 2 and all(k.startswith("rl:{ip:testclient}:GET:/q:") for k in keys)


def test_deny_cache_answers_without_redis(server: Server, sync_redis: redis.Redis) -> None:
    app, limiter = make(server.port)

    @app.get("/q", dependencies=[Depends(limiter.limit("1/hour", algorithm="fixed"))])
    async def q() -> str:
        return "ok"

    with TestClient(app) as c:
        assert c.get("/q").status_code == 200
        assert c.get("/q").status_code == 429
        before = calls(sync_redis)
        for _ in range(5):
            r = c.get("/q")
            assert r.status_code == 429
            assert 3500 <= int(r.headers["Retry-After"]) <= 3600
        assert calls(sync_redis) == before  # no Redis call
        assert limiter.deny_cache.hits == 5
        assert len(limiter.deny_cache) == 1


def test_middleware_defaults_exempt_and_headers_on_errors(
    server: Server, sync_redis: redis.Redis
) -> None:
    app, limiter = make(server.port)
    app.add_middleware(RateLimitMiddleware, limiter=limiter, limits="2/minute",
                       exempt=["/health", "/static/*"])  # fmt: skip

    @app.get("/a")
    async def a() -> str:
        return "a"

    @app.get("/b")
    async def b() -> str:
        raise HTTPException(401, "no")

    @app.get("/health")
    async def health() -> str:
        return "up"

    @app.get("/static/x")
    async def static() -> str:
        return "x"

    @app.get("/free")
    @limiter.exempt
    async def free() -> str:
        return "free"

    with TestClient(app) as c:
        assert c.get("/a").headers["X-RateLimit-Remaining"] == "1"
        r = c.get("/b")  # one budget for the app: an error still counts and has headers
        assert r.status_code == 401 and r.headers["X-RateLimit-Remaining"] == "0"
        assert c.get("/a").status_code == 429
        for path in ("/health", "/static/x", "/free"):
            r = c.get(path)
            assert r.status_code == 200 and "X-RateLimit-Limit" not in r.headers


def test_router_defaults(server: Server, sync_redis: redis.Redis) -> None:
    app, limiter = make(server.port)
    router = APIRouter(dependencies=[Depends(limiter.limit("1/minute"))])

    @router.get("/r")
    async def r() -> str:
        return "r"

    @app.get("/other")
    async def other() -> str:
        return "o"

    app.include_router(router)
    with TestClient(app) as c:
        assert c.get("/r").status_code == 200
        assert c.get("/r").status_code == 429
        assert c.get("/other").status_code == 200
        schema = c.get("/openapi.json").json()
        r429 = schema["paths"]["/r"]["get"]["responses"]["429"]
        assert "Retry-After" in r429["headers"] and "RateLimit-Policy" in r429["headers"]
        assert "429" not in schema["paths"]["/other"]["get"]["responses"]


def test_limits_per_request_tiers_and_policies(server: Server, sync_redis: redis.Redis) -> None:
    sync_redis.execute_command("RL.POLICY", "SET", "free", "TOKEN", 10, 5, "1s")
    app, limiter = make(server.port)

    def tier(request: Request) -> str | None:
        plan = request.headers.get("x-plan")
        if plan == "admin":
            return None  # not limited
        return "policy:free" if plan == "free" else "1/minute"

    @app.get("/q", dependencies=[Depends(limiter.limit(tier, key=by_api_key))])
    async def q() -> str:
        return "ok"

    with TestClient(app) as c:
        free = {"authorization": "Bearer k1", "x-plan": "free"}
        r = c.get("/q", headers=free)
        # The policy's quota is the bucket's capacity (10), not its rate.
        assert r.headers["RateLimit-Policy"] == '"free";q=10'
        assert r.headers["X-RateLimit-Remaining"] == "9"
        basic = {"authorization": "Bearer k2"}
        assert c.get("/q", headers=basic).status_code == 200
        assert c.get("/q", headers=basic).status_code == 429
        admin = {"authorization": "Bearer k2", "x-plan": "admin"}
        assert c.get("/q", headers=admin).status_code == 200
        assert c.get("/q").status_code == 200  # no key: not limited
        # Secrets never appear in key names.
        assert not any(b"k1" in k or b"k2" in k for k in sync_redis.keys("*"))


def test_custom_429_handler_and_disable_switch(server: Server, sync_redis: redis.Redis) -> None:
    def handler(request: Request, exc: Denied) -> Response:
        wait = exc.outcome.retry_after_s()
        return PlainTextResponse(f"slow down, {wait}s", status_code=429)

    app, limiter = make(server.port, on_denied=handler)

    @app.get("/q", dependencies=[Depends(limiter.limit("1/minute"))])
    async def q() -> str:
        return "ok"

    with TestClient(app) as c:
        c.get("/q")
        r = c.get("/q")
        assert r.status_code == 429 and r.text.startswith("slow down")
        assert "Retry-After" in r.headers  # the handler's response gets the headers
        limiter.enabled = False
        assert c.get("/q").status_code == 200


def test_trusted_proxies(server: Server, sync_redis: redis.Redis) -> None:
    app, limiter = make(server.port, trusted_proxies=1)

    @app.get("/q", dependencies=[Depends(limiter.limit("1/minute", key=by_ip))])
    async def q() -> str:
        return "ok"

    with TestClient(app) as c:
        # The proxy appends the address it saw; what is left of it is the client's claim.
        a = {"x-forwarded-for": "6.6.6.6, 10.0.0.1"}
        b = {"x-forwarded-for": "6.6.6.6, 10.0.0.2"}
        assert c.get("/q", headers=a).status_code == 200
        assert c.get("/q", headers=b).status_code == 200
        assert c.get("/q", headers=a).status_code == 429


def test_retry_after_agrees_with_the_window(server: Server, sync_redis: redis.Redis) -> None:
    app, limiter = make(server.port)

    @app.get("/q", dependencies=[Depends(limiter.limit("1/second", algorithm="token"))])
    async def q() -> str:
        return "ok"

    with TestClient(app) as c:
        c.get("/q")
        r = c.get("/q")
        assert r.status_code == 429 and r.headers["Retry-After"] == "1"
        assert r.headers["RateLimit"].startswith('"second";r=0;t=1')


def test_a_cost_above_the_limit_has_no_retry_after(server: Server, db: redis.Redis) -> None:
    app = FastAPI()
    limiter = Limiter(redis.asyncio.Redis(port=server.port, socket_timeout=5))
    limiter.init_app(app)

    @app.get("/big", dependencies=[Depends(limiter.limit("5/minute", cost=6))])
    async def big() -> str:
        return "ok"

    with TestClient(app) as c:
        r = c.get("/big")
        assert r.status_code == 429 and "Retry-After" not in r.headers
        assert r.headers["X-RateLimit-Remaining"] == "5"  # nothing spent

    never = Outcome(
        Decision(False, 5, 5, -1, 0), (Quota("minute", 60, Decision(False, 5, 5, -1, 0)),)
    )
    assert never.retry_after_s() is None and "Retry-After" not in never.headers()


@pytest.mark.parametrize("fail_open", [True, False])
def test_fail_open_or_closed_with_a_short_timeout(fail_open: bool) -> None:
    silent, port = silent_port()
    try:
        app = FastAPI()
        limiter = Limiter(redis.asyncio.Redis(port=port), fail_open=fail_open, timeout=0.2)
        limiter.init_app(app)

        @app.get("/q", dependencies=[Depends(limiter.limit("1/minute"))])
        async def q() -> str:
            return "ok"

        with TestClient(app) as c:
            r = c.get("/q")
            assert r.status_code == (200 if fail_open else 503)
            schema = c.get("/openapi.json").json()
            # Documented either way: failing open, a pool busy past its own
            # timeout still answers 503.
            doc = schema["paths"]["/q"]["get"]["responses"]["503"]["description"]
            assert ("busy" in doc) is fail_open
    finally:
        silent.close()


def test_plain_starlette_app_with_the_middleware(server: Server, sync_redis: redis.Redis) -> None:
    from starlette.applications import Starlette
    from starlette.middleware import Middleware
    from starlette.routing import Route

    async def home(request: Request) -> Response:
        return PlainTextResponse("home")

    limiter = Limiter(redis.asyncio.Redis(port=server.port, socket_timeout=5), headers="ietf")
    app = Starlette(
        routes=[Route("/", home)],
        middleware=[Middleware(RateLimitMiddleware, limiter=limiter, limits="1/minute")],
    )
    limiter.init_app(app)
    with TestClient(app) as c:
        r = c.get("/")
        assert r.status_code == 200 and r.headers["RateLimit-Policy"] == '"minute";q=1;w=60'
        assert "X-RateLimit-Limit" not in r.headers
        r = c.get("/")
        assert r.status_code == 429 and "Retry-After" in r.headers


def test_init_app_freezes_the_heap_after_startup(server: Server) -> None:
    started: list[int] = []

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        started.append(gc.get_freeze_count())
        yield

    threshold = gc.get_threshold()
    try:
        for freeze_gc in (False, True):
            gc.unfreeze()
            gc.set_threshold(700, *threshold[1:])
            app = FastAPI(lifespan=lifespan)
            limiter = Limiter(redis.asyncio.Redis(port=server.port, socket_timeout=5))
            limiter.init_app(app, freeze_gc=freeze_gc)
            limiter.init_app(app, freeze_gc=freeze_gc)  # wraps the lifespan once
            # The young generation widened (never narrowed), the older ones kept.
            assert gc.get_threshold() == ((50_000 if freeze_gc else 700), *threshold[1:])
            with TestClient(app):
                # after the app's own startup, not before
                assert started[-1] == 0
                assert (gc.get_freeze_count() > 0) == freeze_gc
        gc.set_threshold(90_000, *threshold[1:])
        widen_young_generation()
        assert gc.get_threshold()[0] == 90_000
    finally:
        gc.unfreeze()
        gc.set_threshold(*threshold)

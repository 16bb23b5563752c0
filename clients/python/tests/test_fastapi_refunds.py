"""Refunds through the FastAPI integration: charge first, give back on
success, to every limit at most what was spent, lost when Redis is gone;
against a real redis-server with the module."""

from __future__ import annotations

import asyncio

import httpx
import redis
import redis.asyncio
from fastapi import Depends, FastAPI, HTTPException, Request, Response
from fastapi.testclient import TestClient

from redis_ratelimit.fastapi import Limiter, Outcome, RateLimitMiddleware

from .conftest import Server, calls, run, silent_port


def test_refund_gives_back_to_every_limit_at_most_what_was_spent(
    server: Server, db: redis.Redis
) -> None:
    app = FastAPI()
    limiter = Limiter(redis.asyncio.Redis(port=server.port, socket_timeout=5))
    limiter.init_app(app)
    limit = limiter.limit("2/minute;5/hour", algorithm="fixed", key=lambda r: "u", scope="s")

    @app.post("/refund/{n}")
    async def refund(n: int, request: Request, response: Response) -> list[int]:
        outcome = await limit.refund(request, response, cost=n)
        assert outcome is not None
        return [q.decision.remaining for q in outcome.quotas]

    @app.post("/spend", dependencies=[Depends(limit)])
    async def spend() -> str:
        return "ok"

    with TestClient(app) as c:
        # Never charged: nothing to give back, and no key is made.
        assert c.post("/refund/1").json() == [2, 5]
        assert db.dbsize() == 0
        assert [c.post("/spend").status_code for _ in range(2)] == [200, 200]
        r = c.post("/refund/1")
        assert r.json() == [1, 4] and r.headers["X-RateLimit-Remaining"] == "1"
        assert c.post("/refund/5").json() == [2, 5]  # at most what was spent


def test_refund_charge_first_refund_on_success(server: Server, sync_redis: redis.Redis) -> None:
    app = FastAPI()
    limiter = Limiter(redis.asyncio.Redis(port=server.port, socket_timeout=5))
    limiter.init_app(app)
    login_limit = limiter.limit("2/minute", algorithm="fixed")
    app.add_middleware(RateLimitMiddleware, limiter=limiter)  # headers on the 401s too

    @app.post("/login")
    async def login(
        ok: bool,
        request: Request,
        response: Response,
        charged: Outcome | None = Depends(login_limit),  # noqa: B008 (a local dependency)
    ) -> str:
        if not ok:
            raise HTTPException(401)  # a failed attempt stays counted
        if charged is not None:
            refunded = await login_limit.refund(request, response)
            assert refunded is not None and refunded.allowed
        return "welcome"

    with TestClient(app) as c:
        for _ in range(5):  # successes give their unit back: never limited
            r = c.post("/login?ok=true")
            assert r.status_code == 200
            assert r.headers["X-RateLimit-Remaining"] == "2"
        assert calls(sync_redis, "refund") == 5
        assert c.post("/login?ok=false").status_code == 401
        r = c.post("/login?ok=false")
        assert r.status_code == 401 and r.headers["X-RateLimit-Remaining"] == "0"
        r = c.post("/login?ok=true")  # two failures spent the budget
        assert r.status_code == 429 and "Retry-After" in r.headers


def test_refund_of_several_limits_and_redis_down(server: Server, sync_redis: redis.Redis) -> None:
    async def body(client: httpx.AsyncClient, limiter: Limiter) -> None:
        r = await client.get("/x")
        assert r.status_code == 200
        assert r.headers["RateLimit"] == '"second";r=5;t=0, "minute";r=10;t=0'

    def build(limiter: Limiter) -> FastAPI:
        app = FastAPI()
        lim = limiter.limit("5/second;10/minute", algorithm="fixed")

        @app.get("/x", dependencies=[Depends(lim)])
        async def x(request: Request, response: Response) -> str:
            out = await lim.refund(request, response, cost=1)
            assert out is not None and out.decision.remaining == 5
            return "ok"

        return app

    run(server, build, body)
    assert calls(sync_redis, "refund") == 2 and calls(sync_redis, "all") == 2  # one pipeline

    # Redis gone after the charge: the refund is lost, the request served.
    silent, port = silent_port()
    try:

        async def lost() -> None:
            limiter = Limiter(redis.asyncio.Redis(port=port), timeout=0.1)
            lim = limiter.limit("1/minute")
            scope = {"type": "http", "method": "GET", "path": "/", "headers": [],
                     "client": ("1.2.3.4", 1), "query_string": b""}  # fmt: skip
            assert await lim.refund(Request(scope)) is None

        asyncio.run(lost())
    finally:
        silent.close()

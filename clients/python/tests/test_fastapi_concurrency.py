"""Concurrency limits (leases held for a request) against a real
redis-server with the module. The app is driven in-process over httpx's
ASGI transport, so requests run concurrently and can be cancelled."""

from __future__ import annotations

import asyncio
from typing import Any

import httpx
import pytest
import redis
import redis.asyncio
from fastapi import Depends, FastAPI, HTTPException
from fastapi.testclient import TestClient

from redis_ratelimit.fastapi import Limiter
from redis_ratelimit.testing import FakeClock

from .conftest import Server, calls, run, silent_port, until


def _inflight_app(limiter: Limiter, gate: asyncio.Event, **kw: Any) -> FastAPI:
    app = FastAPI()
    limiter.init_app(app)
    inflight = limiter.concurrency(1, **kw)

    @app.get("/work", dependencies=[Depends(inflight)])
    async def work(fail: bool = False) -> str:
        await gate.wait()
        if fail:
            raise HTTPException(500, "failed")
        return "done"

    return app


def test_concurrency_limit_holds_a_slot_per_request(
    server: Server, sync_redis: redis.Redis
) -> None:
    gate = asyncio.Event()

    async def body(client: httpx.AsyncClient, limiter: Limiter) -> None:
        first = asyncio.ensure_future(client.get("/work"))
        await until(lambda: calls(sync_redis, "acquire") == 1)
        r = await client.get("/work")  # the only slot is taken
        assert r.status_code == 429
        assert 1 <= int(r.headers["Retry-After"]) <= 10
        assert r.headers["RateLimit-Policy"] == '"inflight";q=1;qu="concurrent-requests"'
        assert r.headers["X-RateLimit-Remaining"] == "0"
        gate.set()
        r = await first
        assert r.status_code == 200 and r.headers["X-RateLimit-Remaining"] == "0"
        assert calls(sync_redis, "release") == 1
        gate.clear()
        failing = asyncio.ensure_future(client.get("/work?fail=true"))
        await until(lambda: calls(sync_redis, "acquire") == 3)
        gate.set()
        assert (await failing).status_code == 500  # raised: released all the same
        assert calls(sync_redis, "release") == 2
        assert (await client.get("/work")).status_code == 200

    run(server, lambda lim: _inflight_app(lim, gate, ttl="10s"), body)


def test_concurrency_limit_released_when_the_request_is_cancelled(
    server: Server, sync_redis: redis.Redis
) -> None:
    gate = asyncio.Event()  # never set: the request runs until cancelled

    async def body(client: httpx.AsyncClient, limiter: Limiter) -> None:
        task = asyncio.ensure_future(client.get("/work"))
        await until(lambda: calls(sync_redis, "acquire") == 1)
        await asyncio.sleep(0.05)
        task.cancel()  # the client went away
        with pytest.raises(asyncio.CancelledError):
            await task
        await until(lambda: calls(sync_redis, "release") == 1)
        key = "rl:{ip:127.0.0.1}:GET:/work:inflight"
        peek = sync_redis.execute_command("RL.ACQUIRE", key, 1, "10s", "COST", 0)
        assert peek[2] == 1  # the slot is free again

    run(server, lambda lim: _inflight_app(lim, gate, ttl="10s"), body)


def test_concurrency_limit_heartbeat_keeps_a_long_request_s_slot(
    server: Server, sync_redis: redis.Redis
) -> None:
    # On a FakeClock: the lease's ttl runs on it (AT on every lease
    # command), and the heartbeat renews as the test moves it, so three
    # ttls pass without sleeping.
    gate = asyncio.Event()
    clock = FakeClock()

    async def renewals(n: int) -> None:
        await until(lambda: calls(sync_redis, "renew") == n)

    async def body(client: httpx.AsyncClient, limiter: Limiter) -> None:
        limiter.use_clock(clock)
        first = asyncio.ensure_future(client.get("/work"))
        await until(lambda: calls(sync_redis, "acquire") == 1)
        for n in range(1, 10):  # 900 ms in steps of ttl/3: three ttls
            clock.advance(ms=100)
            await renewals(n)
        # Only the renewals keep the lease: it was taken 900 ms ago.
        assert (await client.get("/work")).status_code == 429
        gate.set()
        assert (await first).status_code == 200
        assert calls(sync_redis, "release") == 1
        # The heartbeat ended with the request: moving the clock on renews
        # nothing, and the slot is free.
        clock.advance(1)
        for _ in range(3):
            await limiter.execute(("PING",))
        assert calls(sync_redis, "renew") == 9
        gate.clear()
        second = asyncio.ensure_future(client.get("/work"))
        await until(lambda: calls(sync_redis, "acquire") == 3)
        gate.set()
        assert (await second).status_code == 200

    run(server, lambda lim: _inflight_app(lim, gate, ttl="300ms"), body)


def test_concurrency_and_rate_limit_headers_combine(
    server: Server, sync_redis: redis.Redis
) -> None:
    app = FastAPI()
    limiter = Limiter(redis.asyncio.Redis(port=server.port, socket_timeout=5))
    limiter.init_app(app)

    rate = limiter.limit("5/minute", algorithm="fixed")

    @app.get("/x", dependencies=[Depends(limiter.concurrency(3)), Depends(rate)])
    async def x() -> str:
        return "ok"

    with TestClient(app) as c:
        r = c.get("/x")
        assert r.status_code == 200
        assert r.headers["RateLimit-Policy"] == (
            '"inflight";q=3;qu="concurrent-requests", "minute";q=5;w=60'
        )
        assert r.headers["X-RateLimit-Limit"] == "5"  # the rate limit's numbers
        assert r.headers["X-RateLimit-Remaining"] == "4"
        schema = c.get("/openapi.json").json()
        assert "429" in schema["paths"]["/x"]["get"]["responses"]


def test_concurrency_limit_fails_open_or_closed() -> None:
    silent, port = silent_port()
    try:
        for fail_open in (True, False):
            app = FastAPI()
            limiter = Limiter(redis.asyncio.Redis(port=port), fail_open=fail_open, timeout=0.1)
            limiter.init_app(app)

            @app.get("/x", dependencies=[Depends(limiter.concurrency(1))])
            async def x() -> str:
                return "ok"

            with TestClient(app) as c:
                assert c.get("/x").status_code == (200 if fail_open else 503)
    finally:
        silent.close()

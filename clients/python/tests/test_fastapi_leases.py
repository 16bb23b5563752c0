"""Refunds, concurrency limits (leases held for a request), the circuit
breaker and the pool helper, against a real redis-server with the module.
The app is driven in-process over httpx's ASGI transport, so requests run
concurrently and can be cancelled."""

from __future__ import annotations

import asyncio
import socket
import time
from collections.abc import Awaitable, Callable
from typing import Any

import httpx
import pytest
import redis
import redis.asyncio
from fastapi import Depends, FastAPI, HTTPException, Request, Response
from fastapi.testclient import TestClient

from redis_ratelimit import CircuitBreaker, LimiterUnavailable, async_redis
from redis_ratelimit._breaker import CIRCUIT_OPEN, UNREACHABLE
from redis_ratelimit.fastapi import Limiter, Outcome, RateLimitMiddleware

from .conftest import Server, calls


def run(server: Server, build: Callable[[Limiter], FastAPI], body: Callable[..., Awaitable[Any]],
        **kw: Any) -> Any:  # fmt: skip
    """Builds the app inside an event loop and runs body(client, limiter)."""

    async def main() -> Any:
        limiter = Limiter(redis.asyncio.Redis(port=server.port, socket_timeout=5), **kw)
        app = build(limiter)
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://t") as client:
            try:
                return await body(client, limiter)
            finally:
                await limiter.client.redis.aclose()

    return asyncio.run(main())


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
    silent, port = _silent_port()
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
        await _until(lambda: calls(sync_redis, "acquire") == 1)
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
        await _until(lambda: calls(sync_redis, "acquire") == 3)
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
        await _until(lambda: calls(sync_redis, "acquire") == 1)
        await asyncio.sleep(0.05)
        task.cancel()  # the client went away
        with pytest.raises(asyncio.CancelledError):
            await task
        await _until(lambda: calls(sync_redis, "release") == 1)
        key = "rl:{ip:127.0.0.1}:GET:/work:inflight"
        peek = sync_redis.execute_command("RL.ACQUIRE", key, 1, "10s", "COST", 0)
        assert peek[2] == 1  # the slot is free again

    run(server, lambda lim: _inflight_app(lim, gate, ttl="10s"), body)


def test_concurrency_limit_heartbeat_keeps_a_long_request_s_slot(
    server: Server, sync_redis: redis.Redis
) -> None:
    gate = asyncio.Event()

    async def body(client: httpx.AsyncClient, limiter: Limiter) -> None:
        first = asyncio.ensure_future(client.get("/work"))
        await _until(lambda: calls(sync_redis, "acquire") == 1)
        await asyncio.sleep(0.9)  # three ttls: only the renewals keep the lease
        assert calls(sync_redis, "renew") >= 3
        assert (await client.get("/work")).status_code == 429
        gate.set()
        assert (await first).status_code == 200
        assert calls(sync_redis, "release") == 1
        await asyncio.sleep(0.05)  # a renewal in flight when it ended
        renewed = calls(sync_redis, "renew")
        await asyncio.sleep(0.3)  # the keeper stopped with the request
        assert calls(sync_redis, "renew") == renewed

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
    silent, port = _silent_port()
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


def test_circuit_breaker_states() -> None:
    now = [0.0]
    breaker = CircuitBreaker(2, 5.0, clock=lambda: now[0])

    async def fails() -> None:
        raise redis.ConnectionError("refused")

    async def answers() -> str:
        return "ok"

    async def error_reply() -> None:
        raise redis.ResponseError("ERR no such policy")

    async def main() -> None:
        for _ in range(2):
            with pytest.raises(LimiterUnavailable) as e:
                await breaker.call(fails)
            assert e.value.kind == "unreachable"
        assert breaker.state == "open"
        with pytest.raises(LimiterUnavailable) as e:
            await breaker.call(answers)  # not even asked
        assert e.value.kind == "circuit-open"
        now[0] = 5.0
        assert breaker.state == "half-open"
        with pytest.raises(LimiterUnavailable):
            await breaker.call(fails)  # the trial fails: open again
        assert breaker.state == "open"
        now[0] = 10.0
        assert await breaker.call(answers) == "ok"  # the trial passes: closed
        assert breaker.state == "closed"
        with pytest.raises(LimiterUnavailable) as e:
            await breaker.call(error_reply)  # an answer: the breaker stays closed
        assert e.value.kind == "error-reply"
        with pytest.raises(LimiterUnavailable):
            await breaker.call(fails)
        assert await breaker.call(answers) == "ok"  # a success resets the count
        with pytest.raises(LimiterUnavailable):
            await breaker.call(fails)
        assert breaker.state == "closed"
        with pytest.raises(ValueError):
            await breaker.call(_raises_value_error)  # not about Redis: passes through

    asyncio.run(main())


async def _raises_value_error() -> None:
    raise ValueError("bug")


def test_breaker_spares_requests_the_timeout_of_a_stalled_redis() -> None:
    silent, port = _silent_port()
    try:
        app = FastAPI()
        limiter = Limiter(redis.asyncio.Redis(port=port), timeout=0.3,
                          breaker=CircuitBreaker(2, 60))  # fmt: skip
        limiter.init_app(app)

        @app.get("/x", dependencies=[Depends(limiter.limit("1/minute"))])
        async def x() -> str:
            return "ok"

        with TestClient(app) as c:
            for _ in range(2):
                assert c.get("/x").status_code == 200  # each waits the timeout
            assert limiter.breaker is not None and limiter.breaker.state == "open"
            assert limiter.failures == {UNREACHABLE: 2}
            for _ in range(20):
                assert c.get("/x").status_code == 200
            # None waited: each took the fail mode at once, without a call
            # to Redis (a call would count UNREACHABLE, after the timeout).
            assert limiter.failures == {UNREACHABLE: 2, CIRCUIT_OPEN: 20}
    finally:
        silent.close()


def test_async_redis_pool_decides_a_burst_exactly(server: Server, sync_redis: redis.Redis) -> None:
    async def main() -> list[int]:
        client = async_redis(f"redis://127.0.0.1:{server.port}", pool_size=4)
        limiter = Limiter(client, timeout=10)
        lim = limiter.limit("50/minute", algorithm="fixed", key=lambda r: "one")
        scope = {"type": "http", "method": "GET", "path": "/", "headers": [],
                 "query_string": b""}  # fmt: skip

        async def one() -> int:
            out = await lim.check(Request(dict(scope)))
            assert out is not None
            return int(out.allowed)

        try:
            return await asyncio.gather(*(one() for _ in range(300)))
        finally:
            await client.aclose()

    allowed = asyncio.run(main())
    assert sum(allowed) == 50
    clients = [c for c in sync_redis.client_list() if c.get("cmd", "").startswith("rl.")]
    assert len(clients) <= 4


def _silent_port() -> tuple[socket.socket, int]:
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    s.listen(16)
    port: int = s.getsockname()[1]
    return s, port


async def _until(cond: Callable[[], bool], timeout: float = 5.0) -> None:
    deadline = time.monotonic() + timeout
    while not cond():
        if time.monotonic() > deadline:
            raise AssertionError("condition not reached")
        await asyncio.sleep(0.01)

"""Checks through redis-py's pool (pipelining=False; a cluster) under a
burst larger than the pool: exactly the limit gets through, the wait for a
free connection neither fails open nor opens the breaker. Real
redis-server processes with the module; the app driven in-process over
httpx's ASGI transport, every request of the burst at once."""

from __future__ import annotations

import asyncio
import socket
import time
import uuid
from collections import Counter
from typing import Any

import httpx
import pytest
import redis
from fastapi import Depends, FastAPI, Request
from redis.asyncio.cluster import RedisCluster as AsyncRedisCluster

from redis_ratelimit import async_redis
from redis_ratelimit._breaker import within
from redis_ratelimit.fastapi import Limiter

from .conftest import Server

LIMIT = 100


def _app(limiter: Limiter) -> FastAPI:
    app = FastAPI()
    limiter.init_app(app)
    lim = limiter.limit(f"{LIMIT}/minute", algorithm="fixed", key=lambda r: "burst")

    @app.get("/q", dependencies=[Depends(lim)])
    async def q() -> str:
        return "ok"

    return app


async def _burst(limiter: Limiter, n: int) -> Counter[int]:
    """n requests at once; how many got each status."""
    transport = httpx.ASGITransport(app=_app(limiter))
    async with httpx.AsyncClient(transport=transport, base_url="http://t") as client:
        replies = await asyncio.gather(*(client.get("/q") for _ in range(n)))
    return Counter(r.status_code for r in replies)


def _decided_exactly(limiter: Limiter, n: int, statuses: Counter[int], elapsed: float) -> None:
    assert statuses == {200: LIMIT, 429: n - LIMIT}, statuses
    assert limiter.breaker is not None and limiter.breaker.state == "closed"
    assert limiter.breaker.failed_in_a_row == 0  # no call timed out, none counted as Redis failing
    assert elapsed < 60


@pytest.mark.parametrize("pool_size", [4, 50])
@pytest.mark.parametrize("n", [300, 1000])
def test_burst_through_a_small_pool_is_decided_exactly(
    server: Server, n: int, pool_size: int
) -> None:
    # The client cold, as at start-up: the pool's connections are opened
    # during the burst, their round trips behind the burst's own work.
    with redis.Redis(port=server.port) as r:
        r.flushall()

    async def main() -> tuple[Counter[int], float, Limiter]:
        client = async_redis(f"redis://127.0.0.1:{server.port}", pool_size=pool_size)
        limiter = Limiter(client, pipelining=False)  # the default timeout, 0.5 s
        start = time.monotonic()
        try:
            return await _burst(limiter, n), time.monotonic() - start, limiter
        finally:
            await client.aclose()

    statuses, elapsed, limiter = asyncio.run(main())
    _decided_exactly(limiter, n, statuses, elapsed)


@pytest.mark.parametrize("n", [300, 1000])
def test_burst_on_a_cluster_is_decided_exactly(cluster_port: int, n: int) -> None:
    async def main() -> tuple[Counter[int], float, Limiter]:
        # 4 connections per node; past them redis-py raises at once rather
        # than wait, so the limiter's calls queue in front of the cluster.
        rc = AsyncRedisCluster(host="127.0.0.1", port=cluster_port, max_connections=4,
                               socket_timeout=10)  # fmt: skip
        limiter = Limiter(rc, prefix=f"rl{uuid.uuid4().hex[:8]}")
        start = time.monotonic()
        try:
            return await _burst(limiter, n), time.monotonic() - start, limiter
        finally:
            await rc.aclose()

    statuses, elapsed, limiter = asyncio.run(main())
    _decided_exactly(limiter, n, statuses, elapsed)


def test_a_pool_busy_past_its_own_timeout_answers_503_even_failing_open(server: Server) -> None:
    async def main() -> list[Any]:
        client = async_redis(f"redis://127.0.0.1:{server.port}", pool_size=1, pool_timeout=0.2)
        limiter = Limiter(client, pipelining=False, timeout=5, fail_open=True)
        transport = httpx.ASGITransport(app=_app(limiter))
        try:
            async with httpx.AsyncClient(transport=transport, base_url="http://t") as c:
                # The one connection held for 1 s (a blocking pop on nothing).
                held = asyncio.create_task(
                    limiter.call(lambda: client.execute_command("BLPOP", "nothing", 1))
                )
                await asyncio.sleep(0.05)
                busy = await c.get("/q")
                breaker = limiter.breaker
                assert breaker is not None
                state = (breaker.state, breaker.failed_in_a_row)
                await held
                after = await c.get("/q")
                return [busy.status_code, state, after.status_code]
        finally:
            await client.aclose()

    with redis.Redis(port=server.port) as r:
        r.flushall()
    assert asyncio.run(main()) == [503, ("closed", 0), 200]


def test_redis_unreachable_through_the_pool_still_fails_open() -> None:
    silent = socket.socket()  # accepts connections, never answers
    silent.bind(("127.0.0.1", 0))
    silent.listen(16)
    port = silent.getsockname()[1]

    async def main() -> tuple[int, int]:
        client = async_redis(f"redis://127.0.0.1:{port}", pool_size=2)
        limiter = Limiter(client, pipelining=False, timeout=0.2, fail_open=True)
        try:
            statuses = await _burst(limiter, 3)
        finally:
            await client.aclose()
        assert limiter.breaker is not None
        return statuses[200], limiter.breaker.failed_in_a_row

    try:
        assert asyncio.run(main()) == (3, 3)  # served, each timeout a failure
    finally:
        silent.close()


def test_the_timeout_does_not_count_the_loop_busy_with_other_work() -> None:
    async def main() -> None:
        loop = asyncio.get_running_loop()

        async def answered_behind_other_work() -> str:
            loop.call_soon(time.sleep, 0.6)  # other work holds the loop 0.6 s
            await asyncio.sleep(0.05)  # the reply, due after 0.05 s
            return "ok"

        assert await within(answered_behind_other_work, 0.3) == "ok"
        start = time.monotonic()
        with pytest.raises(TimeoutError):  # no reply, the loop idle: the plain timeout
            await within(lambda: asyncio.sleep(30), 0.3)
        assert time.monotonic() - start < 5

    asyncio.run(main())


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

"""Waiting for a slot (wait=) instead of answering 429 at once, against a
real uvicorn (in a thread, on a free loopback port) and a real
redis-server with the module."""

from __future__ import annotations

import asyncio
import time
from concurrent.futures import ThreadPoolExecutor

import httpx
import pytest
import redis
from fastapi import Depends, Request

from .conftest import Server, calls, make, serve, wait_until


def test_wait_serves_after_the_retry_or_answers_429(
    server: Server, sync_redis: redis.Redis
) -> None:
    app, limiter = make(server.port)

    @app.get("/soon")
    @limiter.limited("1/second", algorithm="fixed", wait=5)
    async def soon() -> str:
        return "ok"

    @app.get("/later", dependencies=[Depends(limiter.limit("1/minute", wait="500ms"))])
    async def later() -> str:
        return "ok"

    async def read_stream(request: Request) -> None:
        async for _ in request.stream():  # to its end, not cached (as a form parser does)
            pass

    @app.post("/streamed", dependencies=[Depends(read_stream),
                                         Depends(limiter.limit("1/second", wait=5))])  # fmt: skip
    async def streamed() -> str:
        return "ok"

    with serve(app) as addr, httpx.Client(base_url=f"http://{addr}") as c:
        for _ in range(2):  # the second waits
            assert c.post("/streamed", content=b"x" * 100).status_code == 200
        assert limiter.waits["served"] == 1
        limiter.waits.clear()
        assert c.get("/soon").status_code == 200
        r = c.get("/soon")  # waits for the next second's window
        assert r.status_code == 200
        assert "Retry-After" not in r.headers
        assert limiter.waits["served"] == 1
        assert c.get("/later").status_code == 200
        r = c.get("/later")  # a minute is past the bound: 429 at once
        assert r.status_code == 429
        assert limiter.waits["beyond"] == 1
    assert limiter.waiting.now == 0


def test_wait_is_bounded_in_all_with_an_injected_clock(
    server: Server, sync_redis: redis.Redis
) -> None:
    app, limiter = make(server.port)
    clock = [1000.0]
    slept: list[float] = []

    async def sleep(seconds: float) -> None:
        slept.append(seconds)
        clock[0] += seconds

    limiter.waiting.sleep = sleep
    limiter.waiting.clock = lambda: clock[0]

    @app.get("/q")
    @limiter.limited("1/minute", algorithm="fixed", wait=150)
    async def q() -> str:
        return "ok"

    with serve(app) as addr, httpx.Client(base_url=f"http://{addr}") as c:
        assert c.get("/q").status_code == 200
        r = c.get("/q")
        assert r.status_code == 429
        assert 1 <= int(r.headers["Retry-After"]) <= 60
    # each nap the retry_after then known (about 60 s), never past 150 s in all
    assert 2 <= len(slept) <= 3 and sum(slept) <= 150, slept
    assert limiter.waits == {"timed-out": 1}


def test_waiting_requests_are_bounded(server: Server, sync_redis: redis.Redis) -> None:
    app, limiter = make(server.port, max_waiting=1)

    @app.get("/q")
    @limiter.limited("1/2 seconds", algorithm="fixed", wait=5)
    async def q() -> str:
        return "ok"

    with serve(app) as addr, httpx.Client(base_url=f"http://{addr}", timeout=10) as c:
        assert c.get("/q").status_code == 200
        with ThreadPoolExecutor(2) as pool:
            first = pool.submit(c.get, "/q")
            wait_until(lambda: limiter.waiting.now == 1, "one request waiting")
            second = pool.submit(c.get, "/q")
            assert second.result().status_code == 429  # at once: one waits already
            assert first.result().status_code == 200
    assert limiter.waits == {"full": 1, "served": 1}


def test_a_waiting_request_stops_when_its_client_goes(
    server: Server, sync_redis: redis.Redis
) -> None:
    app, limiter = make(server.port)

    @app.get("/q", dependencies=[Depends(limiter.limit("1/minute", algorithm="fixed", wait=90))])
    async def q() -> str:
        return "ok"

    @app.get("/tasks")
    async def tasks() -> list[str]:
        names = (getattr(t.get_coro(), "__qualname__", "") for t in asyncio.all_tasks())
        return [n for n in names if n in ("_disconnected", "sleep")]

    with serve(app) as addr:
        assert httpx.get(f"http://{addr}/q").status_code == 200
        before = calls(sync_redis)
        with ThreadPoolExecutor(1) as pool:
            waiting = pool.submit(httpx.get, f"http://{addr}/q", timeout=2)
            wait_until(lambda: limiter.waiting.now == 1, "the request to wait")
            assert sorted(httpx.get(f"http://{addr}/tasks").json()) == ["_disconnected", "sleep"]
            with pytest.raises(httpx.ReadTimeout):
                waiting.result()
        wait_until(lambda: limiter.waits["gone"] == 1, "the wait to stop")
        assert limiter.waiting.now == 0
        assert calls(sync_redis) - before == 1  # the check; nothing after
        assert httpx.get(f"http://{addr}/tasks").json() == []  # no task left behind


def test_leaky_requests_wait_for_their_turn(server: Server, sync_redis: redis.Redis) -> None:
    app, limiter = make(server.port)

    @app.get("/smooth")
    @limiter.limited("2/second", algorithm="leaky", burst=4, wait=5, scope="smooth")
    async def smooth() -> str:
        return "ok"

    @app.get("/short")
    @limiter.limited("2/second", algorithm="leaky", burst=4, wait="100ms", scope="short")
    async def short() -> str:
        return "ok"

    with serve(app) as addr, httpx.Client(base_url=f"http://{addr}", timeout=10) as c:
        started = time.monotonic()
        statuses = [c.get("/smooth").status_code for _ in range(3)]
        assert statuses == [200, 200, 200]
        assert time.monotonic() - started >= 0.6  # turns at about 0.5 and 1 s
        assert limiter.waits["served"] == 2
        assert c.get("/short").status_code == 200
        r = c.get("/short")  # its turn is about 500 ms away: past the bound
        assert r.status_code == 429
        assert int(r.headers["Retry-After"]) == 1
        assert limiter.waits["beyond"] == 1
    # the refused place was given back: the queue holds the first only
    state = sync_redis.execute_command("RL.LEAKY", "rl:{ip:127.0.0.1}:short:second", 4, 2,
                                       "1s", "COST", 0)  # fmt: skip
    assert int(state[2]) >= 2, state

"""WebSocket limits and waiting for a slot (wait=), against a real uvicorn
(in a thread, on a free loopback port) and a real redis-server with the
module; WebSocket clients from the `websockets` package."""

from __future__ import annotations

import asyncio
import json
import threading
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from typing import Any

import httpx
import pytest
import redis
import redis.asyncio
import uvicorn
from fastapi import Depends, FastAPI, Request, WebSocket
from websockets.exceptions import ConnectionClosed, InvalidStatus
from websockets.sync.client import connect

from redis_ratelimit.fastapi import Limiter, Outcome

from .conftest import Server, calls, free_port


def make(port: int, **kw: Any) -> tuple[FastAPI, Limiter]:
    app = FastAPI()
    limiter = Limiter(redis.asyncio.Redis(port=port, socket_timeout=5), **kw)
    limiter.init_app(app)
    return app, limiter


@contextmanager
def serve(app: FastAPI) -> Iterator[str]:
    """The app under uvicorn on a free loopback port: its host:port."""
    port = free_port()
    config = uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning",
                            ws="websockets-sansio")  # fmt: skip
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    try:
        wait_until(lambda: server.started, "uvicorn started")
        yield f"127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(15)


def wait_until(ok: Callable[[], bool], what: str, timeout: float = 15) -> None:
    deadline = time.monotonic() + timeout
    while not ok():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for: {what}")
        time.sleep(0.02)


def ws_app(server: Server, **kw: Any) -> tuple[FastAPI, Limiter]:
    app, limiter = make(server.port, **kw)
    limits = limiter.websocket(connect="2/minute", message="3/minute", algorithm="fixed")
    closing = limiter.websocket(connect="1/minute", algorithm="fixed", deny="close")

    async def slow_down(websocket: WebSocket, outcome: Outcome) -> None:
        await websocket.send_text(f"slow down: {outcome.retry_after_s()}")

    frames = limiter.websocket(message="2/minute", algorithm="fixed", on_denied=slow_down)

    @app.websocket("/echo")
    async def echo(websocket: WebSocket) -> None:
        if not await limits.accept(websocket):
            return
        async for text in websocket.iter_text():
            if not await limits.hit(websocket):
                return
            await websocket.send_text(text)

    @app.websocket("/closing")
    async def closing_ws(websocket: WebSocket) -> None:
        if await closing.accept(websocket):
            await websocket.send_text("hello")
            await websocket.receive_text()

    @app.websocket("/frames")
    async def frames_ws(websocket: WebSocket) -> None:
        await websocket.accept()
        async for text in websocket.iter_text():
            if await frames.hit(websocket):
                await websocket.send_text(text)

    dep = limiter.websocket(connect="1/minute", algorithm="fixed")

    @app.websocket("/dep", dependencies=[Depends(dep)])
    async def dep_ws(websocket: WebSocket) -> None:
        await websocket.accept()
        await websocket.send_text("in")
        await websocket.receive_text()

    return app, limiter


def test_websocket_connect_limit_headers_and_429(server: Server, sync_redis: redis.Redis) -> None:
    app, limiter = ws_app(server)
    with serve(app) as addr:
        for left in (1, 0):
            with connect(f"ws://{addr}/echo") as ws:
                assert ws.response is not None
                assert ws.response.headers["RateLimit-Policy"] == '"minute";q=2;w=60'
                assert ws.response.headers["X-RateLimit-Remaining"] == str(left)
        before = calls(sync_redis)
        for _ in range(2):  # the second from the deny cache
            with pytest.raises(InvalidStatus) as refused:
                connect(f"ws://{addr}/echo")
            response = refused.value.response
            assert response.status_code == 429
            assert 1 <= int(response.headers["Retry-After"]) <= 60
            assert response.headers["X-RateLimit-Remaining"] == "0"
            assert json.loads(response.body or b"{}") == {"detail": "Rate limit exceeded"}
        assert calls(sync_redis) - before == 1

        # deny="close": accepted, then closed 1008 with the reason
        with connect(f"ws://{addr}/closing") as ws:
            assert ws.recv() == "hello"
        with connect(f"ws://{addr}/closing") as ws, pytest.raises(ConnectionClosed) as closed:
            ws.recv()
        assert closed.value.rcvd is not None
        assert closed.value.rcvd.code == 1008
        assert closed.value.rcvd.reason.startswith("rate limit exceeded, retry after ")
        assert ws.response is not None and ws.response.headers["Retry-After"]

        # the dependency form: init_app's handler answers the 429
        with connect(f"ws://{addr}/dep") as ws:
            assert ws.recv() == "in"
        with pytest.raises(InvalidStatus) as refused:
            connect(f"ws://{addr}/dep")
        assert refused.value.response.status_code == 429
    assert limiter.failures == {}


def test_websocket_message_limit_closes_or_calls_on_denied(
    server: Server, sync_redis: redis.Redis
) -> None:
    app, _ = ws_app(server)
    with serve(app) as addr:
        with connect(f"ws://{addr}/echo") as ws:
            for i in range(3):
                ws.send(f"m{i}")
                assert ws.recv() == f"m{i}"
            ws.send("one too many")
            with pytest.raises(ConnectionClosed) as closed:
                ws.recv()
        assert closed.value.rcvd is not None
        assert closed.value.rcvd.code == 1008
        assert closed.value.rcvd.reason.startswith("rate limit exceeded, retry after ")
        # the messages' budget is apart from the connections': one left
        with connect(f"ws://{addr}/echo") as ws:
            ws.send("again")
            with pytest.raises(ConnectionClosed):
                ws.recv()

        with connect(f"ws://{addr}/frames") as ws:
            got: list[str] = []
            for i in range(4):
                ws.send(f"f{i}")
                got.append(str(ws.recv()))
            assert got[:2] == ["f0", "f1"]
            assert all(g.startswith("slow down: ") for g in got[2:])  # still open


@pytest.mark.parametrize("fail_open", [True, False])
def test_websocket_fail_modes(fail_open: bool) -> None:
    dead = free_port()  # nothing listens there
    app, limiter = make(dead, fail_open=fail_open, timeout=0.2)
    limits = limiter.websocket(connect="1/minute", message="1/minute")

    @app.websocket("/ws")
    async def ws_endpoint(websocket: WebSocket) -> None:
        if not await limits.accept(websocket):
            return
        async for text in websocket.iter_text():
            if not await limits.hit(websocket):
                return
            await websocket.send_text(text)

    with serve(app) as addr:
        if fail_open:
            with connect(f"ws://{addr}/ws") as ws:
                for _ in range(3):
                    ws.send("x")
                    assert ws.recv() == "x"
        else:
            with pytest.raises(InvalidStatus) as refused:
                connect(f"ws://{addr}/ws")
            assert refused.value.response.status_code == 503
    assert limiter.failures["unreachable"] >= 1


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


def test_websocket_message_waits_within_its_bound(server: Server, sync_redis: redis.Redis) -> None:
    app, limiter = make(server.port)
    limits = limiter.websocket(message="1/second", algorithm="fixed", wait=5)

    @app.websocket("/ws")
    async def ws_endpoint(websocket: WebSocket) -> None:
        await websocket.accept()
        async for text in websocket.iter_text():
            if await limits.hit(websocket):
                await websocket.send_text(text)

    with serve(app) as addr, connect(f"ws://{addr}/ws") as ws:
        for i in range(2):
            ws.send(str(i))
            assert ws.recv(timeout=10) == str(i)
    assert limiter.waits == {"served": 1}

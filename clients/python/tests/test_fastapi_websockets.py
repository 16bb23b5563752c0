"""WebSocket limits (on connecting, per message, waiting for a message's
slot), against a real uvicorn (in a thread, on a free loopback port) and a
real redis-server with the module; WebSocket clients from the
`websockets` package."""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable
from typing import Any

import pytest
import redis
from fastapi import Depends, FastAPI, WebSocket
from websockets.exceptions import ConnectionClosed, InvalidStatus
from websockets.sync.client import connect

from redis_ratelimit.fastapi import Limiter, Outcome, WebSocketLimit

from .conftest import Server, calls, free_port, make, serve


def echo_through(limits: WebSocketLimit) -> Callable[[WebSocket], Awaitable[None]]:
    """An endpoint that accepts under `limits` and echoes each frame it lets through."""

    async def echo(websocket: WebSocket) -> None:
        if not await limits.accept(websocket):
            return
        async for text in websocket.iter_text():
            if not await limits.hit(websocket):
                return
            await websocket.send_text(text)

    return echo


def ws_app(server: Server, **kw: Any) -> tuple[FastAPI, Limiter]:
    app, limiter = make(server.port, **kw)
    limits = limiter.websocket(connect="2/minute", message="3/minute", algorithm="fixed")
    closing = limiter.websocket(connect="1/minute", algorithm="fixed", deny="close")

    async def slow_down(websocket: WebSocket, outcome: Outcome) -> None:
        await websocket.send_text(f"slow down: {outcome.retry_after_s()}")

    frames = limiter.websocket(message="2/minute", algorithm="fixed", on_denied=slow_down)

    app.add_api_websocket_route("/echo", echo_through(limits))

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

    app.add_api_websocket_route("/ws", echo_through(limits))

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

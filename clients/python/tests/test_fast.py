"""The pipelined connection the FastAPI integration checks through, against
a real redis-server with the module."""

from __future__ import annotations

import asyncio
import socket
import time
from collections.abc import Callable, Coroutine
from typing import Any

import pytest
import redis
import redis.asyncio
from redis.asyncio.cluster import RedisCluster

from redis_ratelimit._fast import FastConnection, _parse, encode
from redis_ratelimit.fastapi import Limiter
from redis_ratelimit.fastapi.transport import Pipelined, Pooled

from .conftest import Server


def test_encode_and_parse() -> None:
    assert encode(["RL.FIXED", "k", 5, b"60s"]) == (
        b"*4\r\n$8\r\nRL.FIXED\r\n$1\r\nk\r\n$1\r\n5\r\n$3\r\n60s\r\n"
    )
    reply = b"*6\r\n:1\r\n:5\r\n:4\r\n:0\r\n:60000\r\n$2\r\nab\r\n+OK\r\n"
    value, pos = _parse(reply, 0)
    assert value == [1, 5, 4, 0, 60000, b"ab"]
    assert _parse(reply, pos) == ("OK", len(reply))
    assert _parse(b"*2\r\n*-1\r\n$-1\r\n", 0) == ([None, None], 14)
    err, _ = _parse(b"-ERR no such policy\r\n", 0)
    assert isinstance(err, redis.ResponseError) and str(err) == "ERR no such policy"


def _run(main: Callable[[], Coroutine[Any, Any, None]], loop: str) -> None:
    if loop == "uvloop":  # uvicorn's loop when installed; its transports differ
        import uvloop

        ev = uvloop.new_event_loop()
        try:
            ev.run_until_complete(main())
        finally:
            ev.close()
    else:
        asyncio.run(main())


@pytest.mark.parametrize("loop", ["asyncio", "uvloop"])
def test_many_concurrent_commands_get_their_own_replies(
    server: Server, sync_redis: redis.Redis, loop: str
) -> None:
    async def main() -> None:
        conn = FastConnection(host="127.0.0.1", port=server.port, timeout=5)
        try:
            replies = await asyncio.gather(
                *(conn.execute(["RL.FIXED", f"k{i % 7}", 1000, "60s"]) for i in range(700))
            )
            # per key, remaining counts down 999, 998, ... in the order sent
            for k in range(7):
                mine = [r[2] for i, r in enumerate(replies) if i % 7 == k]
                assert mine == list(range(999, 899, -1))
            with pytest.raises(redis.ResponseError, match="ERR"):
                await conn.execute(["RL.FIXED", "k0", "nan", "60s"])
            assert (await conn.execute(["RL.FIXED", "k0", 1000, "60s"]))[2] == 899
        finally:
            conn.close()

    _run(main, loop)


def test_reconnects_after_the_connection_is_killed(server: Server, sync_redis: redis.Redis) -> None:
    async def main() -> None:
        conn = FastConnection(host="127.0.0.1", port=server.port, db=2, timeout=5)
        try:
            assert (await conn.execute(["RL.FIXED", "k", 10, "60s"]))[2] == 9
            sync_redis.execute_command("CLIENT", "KILL", "TYPE", "normal", "SKIPME", "yes")
            await asyncio.sleep(0.05)  # the loss is seen: the next call connects again
            assert (await conn.execute(["RL.FIXED", "k", 10, "60s"]))[2] == 8
        finally:
            conn.close()

    asyncio.run(main())
    db2 = redis.Redis(port=server.port, db=2)
    assert db2.exists("k") and not sync_redis.exists("k")  # SELECT 2 on connecting
    db2.close()


def test_a_silent_server_times_out_every_waiting_command() -> None:
    silent = socket.socket()
    silent.bind(("127.0.0.1", 0))
    silent.listen(16)
    port = silent.getsockname()[1]

    async def main() -> None:
        conn = FastConnection(host="127.0.0.1", port=port, timeout=0.2)
        start = time.monotonic()
        results = await asyncio.gather(
            *(conn.execute(["RL.FIXED", "k", 1, "1s"]) for _ in range(50)),
            return_exceptions=True,
        )
        assert all(isinstance(r, redis.TimeoutError) for r in results)
        assert 0.15 < time.monotonic() - start < 1.0
        conn.close()

    try:
        asyncio.run(main())
    finally:
        silent.close()


def test_which_clients_get_the_pipelined_connection(server: Server) -> None:
    assert FastConnection.for_client(redis.asyncio.Redis(port=server.port), 1) is not None
    unix = redis.asyncio.Redis(unix_socket_path="/tmp/none.sock")
    assert FastConnection.for_client(unix, 1) is not None
    assert FastConnection.for_client(redis.asyncio.Redis(port=server.port, ssl=True), 1) is None
    assert FastConnection.for_client(redis.Redis(port=server.port), 1) is None  # sync
    cluster = RedisCluster.__new__(RedisCluster)
    assert FastConnection.for_client(cluster, 1) is None
    limiter = Limiter(redis.asyncio.Redis(port=server.port), pipelining=False)
    assert isinstance(limiter.transport, Pooled)
    assert isinstance(Limiter(redis.asyncio.Redis(port=server.port)).transport, Pipelined)


def test_limiter_with_and_without_pipelining_decide_alike(
    server: Server, sync_redis: redis.Redis
) -> None:
    from starlette.requests import Request

    async def main(pipelining: bool) -> list[bool]:
        limiter = Limiter(redis.asyncio.Redis(port=server.port), pipelining=pipelining)
        lim = limiter.limit("30/minute;50/hour", algorithm="fixed", key=lambda r: "u")
        scope = {"type": "http", "method": "GET", "path": "/", "headers": [],
                 "query_string": b""}  # fmt: skip
        try:
            outs = await asyncio.gather(*(lim.check(Request(dict(scope))) for _ in range(100)))
        finally:
            limiter.close()
            await limiter.client.redis.aclose()
        return [o is not None and o.allowed for o in outs]

    for pipelining in (True, False):
        sync_redis.flushall()
        assert sum(asyncio.run(main(pipelining))) == 30


def test_replies_split_anywhere_between_reads() -> None:
    from redis_ratelimit._fast import _Protocol

    replies = [b"*5\r\n:1\r\n:10\r\n:9\r\n:0\r\n:60000\r\n", b"-ERR bad\r\n",
               b"*6\r\n:1\r\n:2\r\n:1\r\n:0\r\n:0\r\n$4\r\nab\r\n\r\n", b":1\r\n",
               b"*2\r\n:0\r\n*5\r\n:0\r\n:5\r\n:0\r\n:-1\r\n:7\r\n"]  # fmt: skip
    stream = b"".join(replies)

    async def main() -> None:
        loop = asyncio.get_running_loop()
        for cut in range(1, len(stream)):
            proto = _Protocol(FastConnection())
            futs = [loop.create_future() for _ in replies]
            proto.pending.extend((f, 0.0) for f in futs)
            proto.data_received(stream[:cut])
            proto.data_received(stream[cut:])
            assert [f.result() if not f.exception() else str(f.exception()) for f in futs] == [
                [1, 10, 9, 0, 60000], "ERR bad", [1, 2, 1, 0, 0, b"ab\r\n"], 1,
                [0, [0, 5, 0, -1, 7]],
            ]  # fmt: skip

    asyncio.run(main())

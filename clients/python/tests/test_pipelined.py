"""The pipelined connection the FastAPI integration checks through, and which
clients and limiters get it, against a real redis-server with the module."""

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

from redis_ratelimit._fast import FastConnection
from redis_ratelimit.fastapi import Limiter
from redis_ratelimit.fastapi.transport import Pipelined, Pooled

from .conftest import PARSERS, Server, silent_port


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
@pytest.mark.parametrize("parser", PARSERS)
@pytest.mark.parametrize("protocol", [2, 3], ids=["resp2", "resp3"])
def test_many_concurrent_commands_get_their_own_replies(
    server: Server, sync_redis: redis.Redis, loop: str, parser: str, protocol: int
) -> None:
    async def main() -> None:
        conn = FastConnection(host="127.0.0.1", port=server.port, timeout=5, parser=parser,
                              protocol=protocol)  # fmt: skip
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
            hello = await conn.execute(["HELLO"])  # the connection's protocol, as asked
            proto = hello[b"proto"] if protocol == 3 else hello[hello.index(b"proto") + 1]
            assert proto == protocol
            info = await conn.execute(["RL.INFO", "k0"])  # a map in RESP3, pairs in RESP2
            assert isinstance(info, dict if protocol == 3 else list)
            assert await conn.execute(["RL.POLICY", "GET", "none"]) is None
        finally:
            conn.close()

    _run(main, loop)


@pytest.mark.parametrize("protocol", [2, 3], ids=["resp2", "resp3"])
def test_reconnects_after_the_connection_is_killed(
    server: Server, sync_redis: redis.Redis, protocol: int
) -> None:
    async def main() -> None:
        conn = FastConnection(host="127.0.0.1", port=server.port, db=2, timeout=5,
                              protocol=protocol)  # fmt: skip
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


@pytest.mark.parametrize("protocol", [2, 3], ids=["resp2", "resp3"])
def test_credentials_on_connecting(server: Server, sync_redis: redis.Redis, protocol: int) -> None:
    sync_redis.acl_setuser("rl", enabled=True, passwords=["+s3cret"], keys=["*"],
                           commands=["+@all"])  # fmt: skip

    async def main() -> None:
        for user, password, ok in (("rl", "s3cret", True), ("rl", "wrong", False)):
            conn = FastConnection(host="127.0.0.1", port=server.port, username=user,
                                  password=password, timeout=5, protocol=protocol)  # fmt: skip
            try:
                if ok:
                    assert await conn.execute(["ACL", "WHOAMI"]) == b"rl"
                else:
                    with pytest.raises(redis.ResponseError, match="WRONGPASS"):
                        await conn.execute(["PING"])
            finally:
                conn.close()

    try:
        asyncio.run(main())
    finally:
        sync_redis.acl_deluser("rl")


@pytest.mark.parametrize("loop", ["asyncio", "uvloop"])
@pytest.mark.parametrize("protocol", [2, 3], ids=["resp2", "resp3"])
def test_the_clients_name_and_keepalive(server: Server, loop: str, protocol: int) -> None:
    # What a redis.asyncio client gives its own connections, the pipelined
    # one gets too: its name in CLIENT LIST, and TCP keepalive as set.
    client = redis.asyncio.Redis(
        port=server.port, protocol=protocol, client_name="orders-api", socket_keepalive=True,
        socket_keepalive_options={socket.TCP_KEEPIDLE: 45, socket.TCP_KEEPCNT: 3},
    )  # fmt: skip
    conn = FastConnection.for_client(client, 5)
    assert conn is not None

    async def main() -> None:
        try:
            assert (await conn.execute(["RL.FIXED", "named", 10, "1m"]))[0] == 1
            assert await conn.execute(["CLIENT", "GETNAME"]) == b"orders-api"
            assert conn._proto is not None and conn._proto.transport is not None
            sock = conn._proto.transport.get_extra_info("socket")
            assert sock.getsockopt(socket.SOL_SOCKET, socket.SO_KEEPALIVE) == 1
            assert sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_KEEPIDLE) == 45
            assert sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_KEEPCNT) == 3
        finally:
            conn.close()

    _run(main, loop)
    # Unset, as redis-py's own connections resolve it (redis-py 8: keepalive
    # on, with its default options).
    plain = redis.asyncio.Redis(port=server.port)
    own = plain.connection_pool.make_connection()
    fast = FastConnection.for_client(plain, 5)
    assert fast is not None and fast.client_name is None
    assert fast.keepalive == bool(own.socket_keepalive)
    assert fast.keepalive_options == dict(own.socket_keepalive_options or {})


def test_a_silent_server_times_out_every_waiting_command() -> None:
    silent, port = silent_port()

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

    class Mine(redis.asyncio.Redis):
        pass

    assert FastConnection.for_client(Mine(port=server.port), 1) is None
    # the protocol the client's own connections speak
    default = redis.asyncio.Redis(port=server.port).connection_pool.make_connection()
    for client, protocol in (
        (redis.asyncio.Redis(port=server.port, protocol=2), 2),
        (redis.asyncio.Redis(port=server.port, protocol=3), 3),
        (redis.asyncio.Redis.from_url(f"redis://127.0.0.1:{server.port}?protocol=2"), 2),
        (redis.asyncio.Redis(port=server.port), int(default.get_protocol())),
    ):
        fast = FastConnection.for_client(client, 1)
        assert fast is not None and fast.protocol == protocol
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


def test_limiter_with_a_resp3_client(server: Server, sync_redis: redis.Redis) -> None:
    """protocol=3: both transports speak it, and decide, read and report alike."""
    from starlette.requests import Request

    async def main(pipelining: bool) -> tuple[int, Any]:
        client = redis.asyncio.Redis(port=server.port, protocol=3)
        limiter = Limiter(client, pipelining=pipelining)
        assert isinstance(limiter.transport, Pipelined if pipelining else Pooled)
        lim = limiter.limit("5/minute", algorithm="fixed", key=lambda r: "u")
        scope = {"type": "http", "method": "GET", "path": "/", "headers": [],
                 "query_string": b""}  # fmt: skip
        try:
            await limiter.transport.check_module()
            outs = await asyncio.gather(*(lim.check(Request(dict(scope))) for _ in range(8)))
            (key,) = await limiter.transport.send(["KEYS", "*"])
            info = await limiter.transport.send(["RL.INFO", key])
        finally:
            limiter.close()
            await client.aclose()
        return sum(o is not None and o.allowed for o in outs), info

    for pipelining in (True, False):
        sync_redis.flushall()
        allowed, info = asyncio.run(main(pipelining))
        assert allowed == 5
        assert isinstance(info, dict) and info[b"remaining"] == 0

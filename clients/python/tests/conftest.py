"""Real redis-server processes with the module loaded, on free loopback ports
(never 6379), always stopped: one standalone server, and a 3+3 cluster
started by scripts/cluster (both from tests/pyserver.py, on pytest's
pythonpath: see pyproject.toml). And the helpers more than one test file
uses: an app with a limiter, an app under uvicorn or driven in-process, a
port that never answers, and polling until a condition holds."""

from __future__ import annotations

import asyncio
import socket
import subprocess
import threading
import time
from collections.abc import Awaitable, Callable, Iterator
from contextlib import contextmanager
from typing import Any

import httpx
import pyserver
import pytest
import redis
import redis.asyncio
import uvicorn
from fastapi import FastAPI
from pyserver import Server, free_port, port_free
from redis.cluster import RedisCluster

from redis_ratelimit.fastapi import Limiter

__all__ = [
    "PARSERS",
    "Server",
    "calls",
    "free_port",
    "make",
    "run",
    "serve",
    "silent_port",
    "until",
    "wait_until",
]

# The pipelined connection's RESP parsers.
PARSERS = ["python", "hiredis"]


@pytest.fixture(scope="session")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    s = Server(tmp_path_factory.mktemp("redis"))
    yield s
    s.stop()


@pytest.fixture(scope="session")
def plain_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    """A redis-server without the module."""
    s = Server(tmp_path_factory.mktemp("plain"), module=False)
    yield s
    s.stop()


@pytest.fixture
def sync_redis(server: Server) -> Iterator[redis.Redis]:
    """The standalone server, emptied (its "free" policy too), its command
    counts reset."""
    c = redis.Redis(port=server.port, socket_timeout=5)
    c.flushall()
    c.execute_command("RL.POLICY", "DEL", "free")
    c.config_resetstat()
    yield c
    c.close()


def emptied(server: Server) -> Iterator[redis.Redis]:
    """A decoding client of the standalone server, emptied of keys and of
    every policy (FLUSHALL keeps policies: they are the server's, not the
    keyspace's), so no test sees another's."""
    c = redis.Redis(port=server.port, socket_timeout=5, decode_responses=True)
    c.flushall()
    for name in c.execute_command("RL.POLICY", "LIST"):
        c.execute_command("RL.POLICY", "DEL", name)
    yield c
    c.close()


@pytest.fixture
def db(server: Server) -> Iterator[redis.Redis]:
    """A decoding client of the standalone server, emptied of keys."""
    c = redis.Redis(port=server.port, socket_timeout=5, decode_responses=True)
    c.flushall()
    yield c
    c.close()


def calls(r: redis.Redis, command: str = "") -> int:
    """RL.* commands the server has run (INFO commandstats): all of them, or
    one ("all" for RL.ALL)."""
    stats = r.info("commandstats")
    return sum(
        int(v["calls"])
        for k, v in stats.items()
        if k.lower().startswith("cmdstat_rl.")
        and (not command or k.lower() == f"cmdstat_rl.{command}")
    )


@pytest.fixture(params=[2, 3], ids=["resp2", "resp3"])
def protocol(request: pytest.FixtureRequest) -> int:
    p: int = request.param
    return p


@pytest.fixture(params=[False, True], ids=["bytes", "decoded"])
def decode(request: pytest.FixtureRequest) -> bool:
    d: bool = request.param
    return d


@pytest.fixture
def client(server: Server, protocol: int, decode: bool) -> Iterator[redis.Redis]:
    c = redis.Redis(port=server.port, protocol=protocol, decode_responses=decode,
                    socket_timeout=5)  # fmt: skip
    c.flushall()
    c.execute_command("RL.POLICY", "DEL", "free")
    yield c
    c.close()


@pytest.fixture(scope="session")
def cluster_port() -> Iterator[int]:
    """A 3-master, 3-replica cluster (scripts/cluster), always stopped."""
    with pyserver.cluster(pyserver.free_base(*pyserver.PACKAGE_PORTS)) as base:
        yield base


@pytest.fixture
def cluster(cluster_port: int, protocol: int) -> Iterator[RedisCluster]:
    rc = RedisCluster(host="127.0.0.1", port=cluster_port, protocol=protocol, socket_timeout=10)
    yield rc
    rc.close()


@pytest.fixture(scope="session")
def partial_cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[list[Server]]:
    """A cluster of 3 masters, no replicas, the module loaded on the first
    only (a node added without it): its servers, the first one's port
    the one to connect to."""
    servers: list[Server] = []
    try:
        for attempt in range(5):  # ports below the ephemeral range, bus ports (+10000) too
            base = next(b for b in range(20000 + 97 * attempt, 22700, 11)
                        if all(port_free(p) and port_free(p + 10000)
                               for p in range(b, b + 3)))  # fmt: skip
            try:
                for i in range(3):
                    d = tmp_path_factory.mktemp(f"partial{i}")
                    servers.append(Server(d, module=i == 0, port=base + i, extra=(
                        "--cluster-enabled", "yes", "--cluster-node-timeout", "3000",
                        "--cluster-config-file", str(d / "nodes.conf"))))  # fmt: skip
                break
            except RuntimeError:
                for s in servers:
                    s.stop()
                servers.clear()
                if attempt == 4:
                    raise
        subprocess.run(["redis-cli", "--cluster", "create",
                        *(f"127.0.0.1:{s.port}" for s in servers),
                        "--cluster-replicas", "0", "--cluster-yes"],
                       check=True, timeout=60, stdout=subprocess.DEVNULL)  # fmt: skip
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            states = []
            for s in servers:
                with redis.Redis(port=s.port, socket_timeout=2) as c:
                    states.append(c.cluster("info")["cluster_state"])
            if states == ["ok"] * 3:
                break
            time.sleep(0.1)
        else:
            raise RuntimeError("the partial cluster did not become ready")
        yield servers
    finally:
        for s in servers:
            s.stop()


def make(port: int, **kw: Any) -> tuple[FastAPI, Limiter]:
    """An app and its limiter (checking through Redis on `port`), the
    limiter's handlers installed by init_app."""
    app = FastAPI()
    limiter = Limiter(redis.asyncio.Redis(port=port, socket_timeout=5), **kw)
    limiter.init_app(app)
    return app, limiter


def run(server: Server, build: Callable[[Limiter], FastAPI], body: Callable[..., Awaitable[Any]],
        **kw: Any) -> Any:  # fmt: skip
    """Builds the app inside an event loop and runs body(client, limiter):
    the app driven in-process over httpx's ASGI transport, so requests run
    concurrently and can be cancelled."""

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


def silent_port() -> tuple[socket.socket, int]:
    """A port that accepts connections and never answers."""
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    s.listen(16)
    port: int = s.getsockname()[1]
    return s, port


def _polls(
    ok: Callable[[], bool], what: str, timeout: float, ignoring: tuple[type[Exception], ...]
) -> Iterator[None]:
    """Yields (for the caller to sleep) until `ok()` holds, an exception in
    `ignoring` counting as not yet; fails once `timeout` seconds are past."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            if ok():
                return
        except ignoring:
            pass
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for: {what}")
        yield


def wait_until(
    ok: Callable[[], bool],
    what: str = "the condition",
    *,
    timeout: float = 15,
    interval: float = 0.02,
    ignoring: tuple[type[Exception], ...] = (),
) -> None:
    """Polls `ok` every `interval` seconds until it holds (see `_polls`)."""
    for _ in _polls(ok, what, timeout, ignoring):
        time.sleep(interval)


async def until(
    ok: Callable[[], bool],
    what: str = "the condition",
    *,
    timeout: float = 15,
    interval: float = 0.01,
) -> None:
    """`wait_until` for a coroutine: the event loop runs between polls."""
    for _ in _polls(ok, what, timeout, ()):
        await asyncio.sleep(interval)

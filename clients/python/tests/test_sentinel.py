"""Sentinel: a master and a replica, both with the module, watched by three
redis-sentinel processes (Debian's package, installed by check.sh), on
free loopback ports, always stopped. A FastAPI Limiter over
`Sentinel.master_for()` (redis-py's pool: the pipelined connection is for a
plain Redis) and a RateLimiter over the sync one, through a failover
during a few seconds of load: no unhandled error, the fail mode while the
master is gone, and the counts going on afterwards, exact, on the replica
made master (the limiter's state came with replication)."""

from __future__ import annotations

import asyncio
import pathlib
import shutil
import subprocess
import time
from collections import Counter
from collections.abc import Iterator

import httpx
import pytest
import redis
import redis.asyncio.sentinel
import redis.sentinel
from fastapi import Depends, FastAPI

from redis_ratelimit import CircuitBreaker, RateLimiter
from redis_ratelimit.fastapi import Limiter
from redis_ratelimit.fastapi.transport import Pooled

from .conftest import Server, free_port, wait_until

NAME = "rlmaster"
LIMIT = 100_000  # never reached: every request Redis decides is counted


class Sentinels:
    """Three redis-sentinel processes watching one master (quorum 2)."""

    def __init__(self, workdir: pathlib.Path, master_port: int) -> None:
        binary = shutil.which("redis-sentinel")
        if binary is None:
            pytest.fail("redis-sentinel not found: clients/python/check.sh installs it "
                        "(Debian's redis-sentinel)")  # fmt: skip
        self.procs: list[subprocess.Popen[bytes]] = []
        self.ports: list[int] = []
        for i in range(3):
            port = free_port()
            conf = workdir / f"sentinel-{i}.conf"
            conf.write_text(
                f"port {port}\nbind 127.0.0.1\ndir {workdir}\n"
                f"sentinel monitor {NAME} 127.0.0.1 {master_port} 2\n"
                f"sentinel down-after-milliseconds {NAME} 1000\n"
                f"sentinel failover-timeout {NAME} 10000\n"
            )
            with open(workdir / f"sentinel-{i}.log", "ab") as out:
                self.procs.append(subprocess.Popen([binary, str(conf)], stdout=out,
                                                   stderr=subprocess.STDOUT))  # fmt: skip
            self.ports.append(port)
        self.addresses = [("127.0.0.1", p) for p in self.ports]

    def ready(self) -> bool:
        """Each knows the replica and the two other sentinels."""
        for port in self.ports:
            with redis.Redis(port=port, socket_timeout=1, decode_responses=True) as s:
                m = s.sentinel_master(NAME)
                if int(m["num-slaves"]) < 1 or int(m["num-other-sentinels"]) < 2:
                    return False
        return True

    def master_port(self) -> int:
        with redis.Redis(port=self.ports[0], socket_timeout=1) as s:
            _, port = s.sentinel_get_master_addr_by_name(NAME)
            return int(port)

    def stop(self) -> None:
        for p in self.procs:
            if p.poll() is None:
                p.terminate()
        for p in self.procs:
            try:
                p.wait(10)
            except subprocess.TimeoutExpired:
                p.kill()
                p.wait()


@pytest.fixture
def topology(tmp_path: pathlib.Path) -> Iterator[tuple[Server, Server, Sentinels]]:
    servers: list[Server] = []
    sentinels: Sentinels | None = None
    try:
        for d in ("m", "r"):
            (tmp_path / d).mkdir()
        master = Server(tmp_path / "m")
        servers.append(master)
        replica = Server(tmp_path / "r", extra=("--replicaof", "127.0.0.1", str(master.port)))
        servers.append(replica)
        wait_until(lambda: replica.client.info("replication")["master_link_status"] == "up",
                   "the replica's sync", timeout=30, interval=0.05,
                   ignoring=(redis.RedisError,))  # fmt: skip
        sentinels = Sentinels(tmp_path, master.port)
        wait_until(sentinels.ready, "the sentinels to know each other and the replica",
                   timeout=30, interval=0.05, ignoring=(redis.RedisError,))  # fmt: skip
        yield master, replica, sentinels
    finally:
        if sentinels is not None:
            sentinels.stop()
        for s in servers:
            s.stop()


def test_a_failover_under_load(topology: tuple[Server, Server, Sentinels]) -> None:
    master, replica, sentinels = topology
    # The sync client: counts on the master, to be continued after.
    sync_sentinel = redis.sentinel.Sentinel(sentinels.addresses, socket_timeout=1)
    sync_rl = RateLimiter(sync_sentinel.master_for(NAME, socket_timeout=1))
    assert [sync_rl.fixed("sync", 10, "1h").remaining for _ in range(3)] == [9, 8, 7]

    async def run() -> tuple[Counter[str], int, Limiter]:
        sentinel = redis.asyncio.sentinel.Sentinel(sentinels.addresses, socket_timeout=0.5)
        client = sentinel.master_for(NAME, socket_timeout=0.5, socket_connect_timeout=0.5)
        # A short cooldown: the switch takes about the sentinels' 1 s.
        limiter = Limiter(client, timeout=0.5, breaker=CircuitBreaker(5, 0.5))
        assert isinstance(limiter.transport, Pooled)  # Sentinel: through redis-py's pool
        assert await limiter.check_server()
        app = FastAPI()
        limiter.init_app(app, check_server=False)

        @app.get("/q", dependencies=[Depends(limiter.limit(f"{LIMIT}/hour", algorithm="fixed",
                                                           key=lambda r: "me"))])  # fmt: skip
        async def q() -> dict[str, bool]:
            return {"ok": True}

        seen: Counter[str] = Counter()
        decided_after = 0  # decisions by the new master
        failed_over = asyncio.Event()
        stop = asyncio.Event()
        transport = httpx.ASGITransport(app=app)

        async def worker(http: httpx.AsyncClient) -> None:
            nonlocal decided_after
            while not stop.is_set():
                # A request failed open asks no one: without this the loop
                # would never yield (ASGITransport runs the app inline).
                await asyncio.sleep(0)
                r = await http.get("/q")
                if r.status_code != 200:
                    seen[f"status {r.status_code}"] += 1
                elif "X-RateLimit-Remaining" in r.headers:
                    seen["decided"] += 1
                    if failed_over.is_set():
                        decided_after += 1
                else:
                    seen["fail-open"] += 1

        async def switch() -> None:
            await asyncio.sleep(1.0)  # a second of load on the first master
            before = seen["decided"]
            assert before > 0
            await asyncio.to_thread(master.stop)  # SIGTERM: it waits for the replica
            deadline = time.monotonic() + 30
            while sentinels.master_port() != replica.port:
                assert time.monotonic() < deadline, "no failover within 30 s"
                await asyncio.sleep(0.05)
            failed_over.set()
            while decided_after < 200:  # until the new master has decided a few
                assert time.monotonic() < deadline, "no decision after the failover"
                await asyncio.sleep(0.05)
            stop.set()

        async with httpx.AsyncClient(transport=transport, base_url="http://t") as http:
            await asyncio.wait_for(asyncio.gather(switch(), *(worker(http) for _ in range(8))),
                                   60)  # fmt: skip
        await client.aclose()
        return seen, decided_after, limiter

    seen, decided_after, limiter = asyncio.run(run())
    # No unhandled error: every request answered 200, decided or failed open.
    assert set(seen) <= {"decided", "fail-open"}, seen
    assert seen["fail-open"] > 0  # the switch took the fail mode (open)...
    assert set(limiter.failures) <= {"unreachable", "circuit-open"}, limiter.failures
    # ... and every request Redis decided is counted, on either master: the
    # count went on from the first master's, not from 0.
    (key,) = replica.client.keys("rl:*")
    info = RateLimiter(replica.client).info(key.decode() if isinstance(key, bytes) else key)
    assert info is not None and info["count"] == seen["decided"], (info, seen)
    assert decided_after < seen["decided"]
    assert replica.client.info("replication")["role"] == "master"
    # The sync client finds the new master, its count going on as well.
    assert sync_rl.fixed("sync", 10, "1h").remaining == 6

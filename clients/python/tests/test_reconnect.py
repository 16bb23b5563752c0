"""Refunds that survive a Redis restart: the sync client's go through
redis-py's pool as its other calls do (the pool replaces a connection the
restart closed when it hands it out, its Retry sends again), and a FastAPI
Limiter's through the pool are sent again, once, on the connection error
an idle pooled connection gives after the restart (Limiter.settle), where
checks take the fail mode."""

from __future__ import annotations

import pathlib
from collections.abc import Iterator

import pytest
import redis
from fastapi import Depends, FastAPI, Request, Response
from fastapi.testclient import TestClient
from redis.backoff import NoBackoff
from redis.retry import Retry

from redis_ratelimit import RateLimiter, async_redis
from redis_ratelimit.fastapi import Limiter

from .conftest import Server


class Restartable:
    """A server whose state survives a restart (AOF, written at shutdown),
    on the same port."""

    def __init__(self, workdir: pathlib.Path) -> None:
        self.workdir = workdir
        self.server = Server(workdir, extra=("--appendonly", "yes"))
        self.port = self.server.port

    def restart(self) -> None:
        self.server.stop()
        self.server = Server(self.workdir, port=self.port, extra=("--appendonly", "yes"))


@pytest.fixture
def restartable(tmp_path: pathlib.Path) -> Iterator[Restartable]:
    r = Restartable(tmp_path)
    try:
        yield r
    finally:
        r.server.stop()


@pytest.mark.parametrize("retries", [None, 0], ids=["default-retry", "no-retry"])
def test_the_sync_clients_refund_after_a_restart(
    restartable: Restartable, retries: int | None
) -> None:
    kw = {} if retries is None else {"retry": Retry(NoBackoff(), retries)}
    with redis.Redis(port=restartable.port, socket_timeout=5, **kw) as r:  # type: ignore[arg-type]
        rl = RateLimiter(r)
        assert rl.fixed("k", 3, "1h").remaining == 2
        restartable.restart()
        assert rl.refund("k") == 1  # the state came back with the AOF
        restartable.restart()
        assert rl.fixed("k", 3, "1h").remaining == 2


def test_a_limiters_refund_through_the_pool_after_a_restart(restartable: Restartable) -> None:
    app = FastAPI()
    limiter = Limiter(async_redis(f"redis://127.0.0.1:{restartable.port}"), pipelining=False)
    limiter.init_app(app)
    login = limiter.limit("3/hour", algorithm="fixed", key=lambda r: "me", scope="login")

    @app.post("/login")
    async def post(request: Request, response: Response,
                   charged: object = Depends(login)) -> dict[str, bool]:  # fmt: skip
        return {"charged": charged is not None}

    @app.post("/refund")
    async def refund(request: Request, response: Response) -> dict[str, bool]:
        return {"refunded": await login.refund(request, response) is not None}

    with TestClient(app) as c:
        assert c.post("/login").headers["X-RateLimit-Remaining"] == "2"
        assert c.post("/login").headers["X-RateLimit-Remaining"] == "1"
        restartable.restart()  # the pool's idle connection is now closed
        r = c.post("/refund")
        assert r.json() == {"refunded": True} and r.headers["X-RateLimit-Remaining"] == "2"
        assert limiter.failures == {}  # sent again once: nothing lost
        assert c.post("/login").headers["X-RateLimit-Remaining"] == "1"


def test_a_leases_release_through_the_pool_after_a_restart(restartable: Restartable) -> None:
    app = FastAPI()
    limiter = Limiter(async_redis(f"redis://127.0.0.1:{restartable.port}"), pipelining=False)
    limiter.init_app(app)
    one = limiter.concurrency(1, ttl="1h", key=lambda r: "me", heartbeat=False)

    @app.post("/job", dependencies=[Depends(one)])
    async def job(restart: bool = False) -> dict[str, bool]:
        if restart:  # while the lease is held: its release finds the pool's connection closed
            restartable.restart()
        return {"ok": True}

    with TestClient(app) as c:
        assert c.post("/job?restart=true").status_code == 200
        assert limiter.failures == {}  # the release was sent again, once
        # Released: the one slot is free (else held for the lease's hour).
        assert c.post("/job").status_code == 200

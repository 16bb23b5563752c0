"""Key names, refunds and a cost no window can hold, through the FastAPI
integration against a real redis-server (moved here from the FastAPI
example's tests of its own copy of the limiter)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
import redis
import redis.asyncio
from fastapi import Depends, FastAPI, Request, Response
from fastapi.testclient import TestClient

from redis_ratelimit import Decision
from redis_ratelimit.fastapi import Limiter, Outcome, Quota

from .conftest import Server


@pytest.fixture
def db(server: Server) -> Iterator[redis.Redis]:
    c = redis.Redis(port=server.port, socket_timeout=5, decode_responses=True)
    c.flushall()
    yield c
    c.close()


def test_braces_in_identities_and_routes_cannot_move_the_hash_tag(
    server: Server, db: redis.Redis
) -> None:
    app = FastAPI()
    limiter = Limiter(redis.asyncio.Redis(port=server.port, socket_timeout=5))
    limiter.init_app(app)
    limit = limiter.limit("5/minute;9/hour", key=lambda r: "user:{x}%")

    @app.get("/quotes/{symbol}", dependencies=[Depends(limit)])
    async def quote(symbol: str) -> str:
        return symbol

    with TestClient(app) as c:
        assert c.get("/quotes/ACME").status_code == 200
    assert sorted(db.keys("*")) == [
        "rl:{user:%7Bx%7D%25}:GET:/quotes/%7Bsymbol%7D:hour",
        "rl:{user:%7Bx%7D%25}:GET:/quotes/%7Bsymbol%7D:minute",
    ]


def test_refund_gives_back_to_every_limit_at_most_what_was_spent(
    server: Server, db: redis.Redis
) -> None:
    app = FastAPI()
    limiter = Limiter(redis.asyncio.Redis(port=server.port, socket_timeout=5))
    limiter.init_app(app)
    limit = limiter.limit("2/minute;5/hour", algorithm="fixed", key=lambda r: "u", scope="s")

    @app.post("/refund/{n}")
    async def refund(n: int, request: Request, response: Response) -> list[int]:
        outcome = await limit.refund(request, response, cost=n)
        assert outcome is not None
        return [q.decision.remaining for q in outcome.quotas]

    @app.post("/spend", dependencies=[Depends(limit)])
    async def spend() -> str:
        return "ok"

    with TestClient(app) as c:
        # Never charged: nothing to give back, and no key is made.
        assert c.post("/refund/1").json() == [2, 5]
        assert db.dbsize() == 0
        assert [c.post("/spend").status_code for _ in range(2)] == [200, 200]
        r = c.post("/refund/1")
        assert r.json() == [1, 4] and r.headers["X-RateLimit-Remaining"] == "1"
        assert c.post("/refund/5").json() == [2, 5]  # at most what was spent


def test_a_cost_above_the_limit_has_no_retry_after(server: Server, db: redis.Redis) -> None:
    app = FastAPI()
    limiter = Limiter(redis.asyncio.Redis(port=server.port, socket_timeout=5))
    limiter.init_app(app)

    @app.get("/big", dependencies=[Depends(limiter.limit("5/minute", cost=6))])
    async def big() -> str:
        return "ok"

    with TestClient(app) as c:
        r = c.get("/big")
        assert r.status_code == 429 and "Retry-After" not in r.headers
        assert r.headers["X-RateLimit-Remaining"] == "5"  # nothing spent

    never = Outcome(
        Decision(False, 5, 5, -1, 0), (Quota("minute", 60, Decision(False, 5, 5, -1, 0)),)
    )
    assert never.retry_after_s() is None and "Retry-After" not in never.headers()

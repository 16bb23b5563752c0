"""The keys the FastAPI integration makes, against a real redis-server with
the module."""

from __future__ import annotations

import redis
import redis.asyncio
from fastapi import Depends, FastAPI
from fastapi.testclient import TestClient

from redis_ratelimit.fastapi import Limiter

from .conftest import Server


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

"""@limiter.limited: the limit as a decorator on an endpoint, against a real
redis-server with the module (the app in Starlette's TestClient)."""

from __future__ import annotations

import threading
from typing import Annotated, Any

import pytest
import redis
import redis.asyncio
from fastapi import Depends, FastAPI, Header, Request
from fastapi.testclient import TestClient
from pydantic import BaseModel
from starlette.responses import Response

import redis_ratelimit.fastapi.rules as rules
from redis_ratelimit.fastapi import Limiter

from .conftest import Server, calls, make, silent_port


class Item(BaseModel):
    name: str
    price: int


def test_decorator_limits_sets_headers_and_keeps_the_endpoint(
    server: Server, sync_redis: redis.Redis
) -> None:
    app, limiter = make(server.port)

    @app.post("/items/{item_id}")
    @limiter.limited("2/minute", algorithm="fixed")
    async def create(item_id: int, item: Item, q: str = "none") -> dict[str, Any]:
        return {"id": item_id, "item": item.model_dump(), "q": q}

    before = calls(sync_redis)
    with TestClient(app) as c:
        r = c.post("/items/7?q=x", json={"name": "a", "price": 3})
        assert r.status_code == 200
        assert r.json() == {"id": 7, "item": {"name": "a", "price": 3}, "q": "x"}
        assert r.headers["RateLimit-Policy"] == '"minute";q=2;w=60'
        assert r.headers["RateLimit"] == '"minute";r=1;t=60'
        assert r.headers["X-RateLimit-Remaining"] == "1"
        assert calls(sync_redis) == before + 1  # one command per request
        # The request is validated first: a 422 is not counted.
        assert c.post("/items/7", json={"name": "a"}).status_code == 422
        assert calls(sync_redis) == before + 1
        assert c.post("/items/8", json={"name": "b", "price": 1}).status_code == 200
        r = c.post("/items/9", json={"name": "c", "price": 1})
        assert r.status_code == 429
        assert r.json() == {"detail": "Rate limit exceeded"}
        assert 1 <= int(r.headers["Retry-After"]) <= 60
        assert r.headers["X-RateLimit-Remaining"] == "0"
        # The key is the route's, as for the dependency.
        keys = [k.decode() for k in sync_redis.keys("rl:*") if isinstance(k, bytes)]
        assert keys == ["rl:{ip:testclient}:POST:/items/%7Bitem_id%7D:minute"]


def test_decorator_uses_the_endpoints_own_request_and_response(
    server: Server, sync_redis: redis.Redis
) -> None:
    app, limiter = make(server.port)
    seen: list[str] = []

    @app.get("/own")
    @limiter.limited("5/minute", algorithm="fixed")
    async def own(request: Request, response: Response) -> str:
        seen.append(request.url.path)
        response.headers["X-Own"] = "yes"
        return "ok"

    with TestClient(app) as c:
        r = c.get("/own")
        assert r.status_code == 200
        assert r.headers["X-Own"] == "yes"
        assert r.headers["X-RateLimit-Remaining"] == "4"
        assert seen == ["/own"]
        schema = c.get("/openapi.json").json()
        op = schema["paths"]["/own"]["get"]
        assert "parameters" not in op  # neither theirs nor ours shows
        assert {"429", "503"} <= set(op["responses"])


def test_decorator_on_a_sync_endpoint_runs_it_in_the_threadpool(
    server: Server, sync_redis: redis.Redis
) -> None:
    app, limiter = make(server.port)
    threads: list[str] = []

    @app.get("/sync")
    @limiter.limited("1/minute", algorithm="fixed")
    def sync_endpoint(x: int = 1) -> dict[str, int]:
        threads.append(threading.current_thread().name)
        return {"x": x}

    with TestClient(app) as c:
        r = c.get("/sync?x=4")
        assert (r.status_code, r.json()) == (200, {"x": 4})
        assert c.get("/sync").status_code == 429
    assert len(threads) == 1 and threads[0] != threading.main_thread().name


def test_decorator_documents_openapi_and_hides_its_parameters(
    server: Server, sync_redis: redis.Redis
) -> None:
    app, limiter = make(server.port)

    @app.get("/limited")
    @limiter.limited("5/minute")
    async def limited(x_tenant: Annotated[str | None, Header()] = None) -> Item:
        return Item(name=x_tenant or "none", price=1)

    @app.get("/free")
    async def free() -> str:
        return "ok"

    with TestClient(app) as c:
        r = c.get("/limited", headers={"X-Tenant": "t1"})
        assert r.json() == {"name": "t1", "price": 1}  # the response model, inferred
        schema = c.get("/openapi.json").json()
    op = schema["paths"]["/limited"]["get"]
    assert [p["name"] for p in op["parameters"]] == ["x-tenant"]
    assert {"429", "503"} <= set(op["responses"])
    assert op["responses"]["429"]["headers"]["Retry-After"]
    assert "429" not in schema["paths"]["/free"]["get"]["responses"]


ORDER: list[str] = []


async def auth(request: Request) -> str:
    """A dependency (at module level: the annotations are strings, resolved
    in the module's globals)."""
    ORDER.append("auth")
    return "user"


def test_stacked_decorators_and_dependencies_run_together(
    server: Server, sync_redis: redis.Redis
) -> None:
    app, limiter = make(server.port)
    order = ORDER
    order.clear()

    @app.get("/both")
    @limiter.limited("3/minute", algorithm="fixed", scope="a")
    @limiter.limited("1/minute;5/hour", algorithm="fixed", scope="b")
    async def both(user: Annotated[str, Depends(auth)]) -> str:
        order.append("endpoint")
        return user

    with TestClient(app) as c:
        assert c.get("/both").json() == "user"
        assert order == ["auth", "endpoint"]  # dependencies first, then the limits
        assert len(sync_redis.keys("rl:{ip:testclient}:a:*")) == 1
        assert len(sync_redis.keys("rl:{ip:testclient}:b:*")) == 2
        r = c.get("/both")
        assert r.status_code == 429  # b: one a minute
    assert order == ["auth", "endpoint", "auth"]


def test_decorator_disabled_and_failing_closed(server: Server, sync_redis: redis.Redis) -> None:
    app, limiter = make(server.port, enabled=False)

    @app.get("/q")
    @limiter.limited("1/minute")
    async def q() -> str:
        return "ok"

    before = calls(sync_redis)
    with TestClient(app) as c:
        assert [c.get("/q").status_code for _ in range(3)] == [200, 200, 200]
    assert calls(sync_redis) == before

    silent, port = silent_port()
    try:
        app = FastAPI()
        closed = Limiter(redis.asyncio.Redis(port=port), fail_open=False, timeout=0.2)
        closed.init_app(app)

        @app.get("/q")
        @closed.limited("1/minute")
        async def q2() -> str:
            return "ok"

        with TestClient(app) as c:
            assert c.get("/q").status_code == 503
    finally:
        silent.close()


def test_decorator_refuses_what_is_not_an_endpoint(server: Server) -> None:
    _, limiter = make(server.port)
    rule = limiter.limit("1/minute")
    with pytest.raises(TypeError, match="endpoint"):
        rule.wrap(rule)
    with pytest.raises(TypeError, match="endpoint"):
        limiter.limited("1/minute")(42)  # type: ignore[type-var]


def test_many_identities_past_the_key_cache(
    server: Server, sync_redis: redis.Redis, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The keys each rule remembers per caller start over when full: every
    caller keeps its own budget, whatever was forgotten."""
    monkeypatch.setattr(rules, "_TARGETS", 2)
    app, limiter = make(server.port, deny_cache=0)
    rule = limiter.limit("2/minute", algorithm="fixed", key=lambda r: r.headers.get("x-user"))

    @app.get("/q", dependencies=[Depends(rule)])
    async def q() -> str:
        return "ok"

    users = [f"u{i}" for i in range(5)]
    with TestClient(app) as c:
        for round_ in range(3):
            for u in users:
                r = c.get("/q", headers={"X-User": u})
                assert r.status_code == (200 if round_ < 2 else 429), (u, round_)
                assert r.headers["X-RateLimit-Remaining"] == str(max(0, 1 - round_))
    assert len(rule._targets) <= 2
    assert len(sync_redis.keys("rl:*")) == 5


def test_a_dependency_counts_invalid_requests_the_decorator_does_not(
    server: Server, sync_redis: redis.Redis
) -> None:
    app, limiter = make(server.port)

    @app.post("/dep", dependencies=[Depends(limiter.limit("5/minute"))])
    async def dep(item: Item) -> str:
        return item.name

    @app.post("/deco")
    @limiter.limited("5/minute")
    async def deco(item: Item) -> str:
        return item.name

    with TestClient(app) as c:
        before = calls(sync_redis)
        assert c.post("/dep", json={"name": "a"}).status_code == 422
        assert calls(sync_redis) == before + 1  # checked, then refused by validation
        assert c.post("/deco", json={"name": "a"}).status_code == 422
        assert calls(sync_redis) == before + 1  # refused before the check

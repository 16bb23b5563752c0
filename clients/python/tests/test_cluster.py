"""The clients over redis-py's RedisCluster (sync and async), against the
3-master, 3-replica cluster of scripts/cluster, under RESP2 and RESP3."""

from __future__ import annotations

import asyncio
import uuid

import pytest
from redis.asyncio.cluster import RedisCluster as AsyncRedisCluster
from redis.cluster import RedisCluster

from redis_ratelimit import (
    AsyncRateLimiter,
    Decision,
    Fixed,
    Policy,
    RateLimiter,
    RateLimitError,
    Token,
)


def _tag() -> str:
    return uuid.uuid4().hex[:8]


def _masters(rc: RedisCluster, keys: list[str]) -> set[str]:
    return {rc.get_node_from_key(k).name for k in keys}


def test_single_key_commands_route_by_key(cluster: RedisCluster) -> None:
    rl = RateLimiter(cluster)
    t = _tag()
    keys = [f"{t}:user:{i}" for i in range(30)]
    assert len(_masters(cluster, keys)) == 3  # the keys do spread over the masters
    for k in keys:
        assert rl.token(k, 10, 5, "1h") == Decision(True, 10, 9, 0, 720_000)
        assert rl.peek(k, Token(10, 5, "1h"), cost=0).remaining == 9
        info = rl.info(k)
        assert info is not None and info["algorithm"] == "TOKEN"
        assert rl.refund(k, 1) == 1
        with rl.lease(f"{{{k}}}:in", 1, 30) as lease:
            assert lease.decision.allowed


def test_all_with_a_hash_tag(cluster: RedisCluster) -> None:
    rl = RateLimiter(cluster)
    t = _tag()
    d = rl.all({f"{{{t}}}:s": Token(10, 10, "1s"), f"{{{t}}}:d": Fixed(1000, "1d")})
    assert d.allowed and [x.limit for x in d.limits] == [10, 1000]


def test_policies_go_to_every_master(cluster: RedisCluster) -> None:
    rl = RateLimiter(cluster)
    name = f"p{_tag()}"
    rl.policy_set(name, Fixed(3, "1h"))
    assert rl.policy_get(name) == ["FIXED", "3", "1h"]
    assert name in rl.policy_list()
    t = _tag()
    keys = [f"{t}:{i}" for i in range(30)]
    assert len(_masters(cluster, keys)) == 3
    for k in keys:  # every master knows it
        assert rl.check(name, k).remaining == 2
        assert rl.decide(k, Policy(name)).remaining == 1
    assert rl.policy_del(name) is True
    with pytest.raises(RateLimitError, match="no such policy"):
        rl.check(name, keys[0])


def test_async_cluster(cluster_port: int, protocol: int) -> None:
    async def main() -> None:
        rc = AsyncRedisCluster(host="127.0.0.1", port=cluster_port, protocol=protocol,
                               socket_timeout=10)  # fmt: skip
        rl = AsyncRateLimiter(rc)
        t = _tag()
        for i in range(10):
            assert (await rl.fixed(f"{t}:{i}", 2, 60)).remaining == 1
        d = await rl.all({f"{{{t}}}:a": Fixed(2, 60), f"{{{t}}}:b": Token(5, 1, 1)})
        assert d.allowed and len(d.limits) == 2
        name = f"p{t}"
        await rl.policy_set(name, Token(10, 5, "1s"))
        assert await rl.policy_get(name) == ["TOKEN", "10", "5", "1s"]
        for i in range(10):
            assert (await rl.check(name, f"{t}:c{i}")).remaining == 9
        assert await rl.policy_del(name)
        async with rl.lease(f"{t}:job", 1, 30):
            assert await rc.exists(f"{t}:job") == 1
        assert await rc.exists(f"{t}:job") == 0
        await rc.aclose()

    asyncio.run(main())


def test_fastapi_dependency_on_a_cluster(cluster_port: int) -> None:
    from fastapi import Depends, FastAPI
    from fastapi.testclient import TestClient

    from redis_ratelimit.fastapi import Limiter

    app = FastAPI()
    rc = AsyncRedisCluster(host="127.0.0.1", port=cluster_port, socket_timeout=10)
    limiter = Limiter(rc, prefix=f"rl{_tag()}", timeout=5, fail_open=False)
    limiter.init_app(app)

    @app.get("/q", dependencies=[Depends(limiter.limit("100/minute;2/day"))])
    async def q() -> str:
        return "ok"

    with TestClient(app) as c:
        for i in range(6):  # identities spread over the masters; one RL.ALL each
            headers = {"x-forwarded-for": f"10.0.0.{i}"}
            limiter.trusted_proxies = 1
            assert c.get("/q", headers=headers).status_code == 200
            assert c.get("/q", headers=headers).status_code == 200
            r = c.get("/q", headers=headers)
            assert r.status_code == 429, r.text
            assert r.headers["RateLimit-Policy"] == '"minute";q=100;w=60, "day";q=2;w=86400'

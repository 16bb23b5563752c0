"""Limiter(metrics=...): the app's /metrics scraped and parsed with
prometheus_client's parser, against known traffic on a real server."""

from __future__ import annotations

from typing import Any

import pytest
import redis
import redis.asyncio
from fastapi import Depends, FastAPI
from fastapi.testclient import TestClient
from prometheus_client import CollectorRegistry
from prometheus_client.parser import text_string_to_metric_families

from redis_ratelimit.fastapi import Limiter
from redis_ratelimit.fastapi.metrics import metrics_app
from redis_ratelimit.fastapi.transport import Pipelined

from .conftest import Server, free_port


def scrape(c: TestClient) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    r = c.get("/metrics/")
    assert r.status_code == 200
    return {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for family in text_string_to_metric_families(r.text)
        for s in family.samples
    }


def decisions(m: dict[Any, float], rule: str) -> dict[str, float]:
    """The rule's outcomes that happened (each is exported from the start, at 0)."""
    return {
        dict(labels)["outcome"]: v
        for (name, labels), v in m.items()
        if name == "redis_ratelimit_decisions_total" and dict(labels)["rule"] == rule and v
    }


def make(port: int, registry: CollectorRegistry, **kw: Any) -> tuple[FastAPI, Limiter]:
    app = FastAPI()
    limiter = Limiter(redis.asyncio.Redis(port=port, socket_timeout=5), metrics=registry, **kw)
    limiter.init_app(app, check_server=False)
    assert limiter.metrics is not None
    app.mount("/metrics", metrics_app(limiter, authorize=None))
    return app, limiter


def test_outcomes_latency_breaker_and_deny_cache(server: Server, sync_redis: redis.Redis) -> None:
    registry = CollectorRegistry()
    app, limiter = make(server.port, registry)

    rule = limiter.limit("3/minute", algorithm="fixed", scope="metrics-q")

    @app.get("/q", dependencies=[Depends(rule)])
    async def q() -> str:
        return "ok"

    @app.get("/s")
    @limiter.limited("1/minute", algorithm="fixed", shadow=True, scope="metrics-trial")
    async def s() -> str:
        return "ok"

    shadow_before = sync_redis.info("ratelimit")["ratelimit_fixed_shadow_denied"]
    with TestClient(app) as c:
        assert [c.get("/q").status_code for _ in range(5)] == [200] * 3 + [429] * 2
        assert [c.get("/s").status_code for _ in range(4)] == [200] * 4
        m = scrape(c)
    assert decisions(m, "metrics-q") == {"allowed": 3, "denied": 1, "denied_cache": 1}
    assert ("redis_ratelimit_decisions_total",
            (("outcome", "failed_open"), ("rule", "metrics-q"))) in m  # fmt: skip
    assert decisions(m, "metrics-trial") == {"shadow": 4}  # the server counts its shadow denials
    shadow_after = sync_redis.info("ratelimit")["ratelimit_fixed_shadow_denied"]
    assert shadow_after - shadow_before == 3
    # Every Redis call timed: 4 for /q (the 5th from the deny cache), 4 for /s.
    assert m[("redis_ratelimit_redis_call_duration_seconds_count", ())] == 8
    assert m[("redis_ratelimit_redis_call_duration_seconds_sum", ())] > 0
    assert m[("redis_ratelimit_breaker_state", (("state", "closed"),))] == 1
    assert m[("redis_ratelimit_breaker_state", (("state", "open"),))] == 0
    assert m[("redis_ratelimit_deny_cache_entries", ())] == 1
    assert m[("redis_ratelimit_deny_cache_hits_total", ())] == 1
    limiter.close()


def test_failures_counted_per_rule(plain_server: Server) -> None:
    registry = CollectorRegistry()
    down = free_port()  # nothing listens: Redis unreachable
    app, open_limiter = make(down, registry, timeout=0.2, breaker=False)
    closed_limiter = Limiter(redis.asyncio.Redis(port=down), metrics=registry, fail_open=False,
                             timeout=0.2, breaker=False)  # fmt: skip
    wrong = Limiter(redis.asyncio.Redis(port=plain_server.port), metrics=registry)  # no module

    rule_open = open_limiter.limit("5/minute", scope="metrics-open")

    @app.get("/open", dependencies=[Depends(rule_open)])
    async def fo() -> str:
        return "ok"

    rule_closed = closed_limiter.limit("5/minute", scope="metrics-closed")

    @app.get("/closed", dependencies=[Depends(rule_closed)])
    async def fc() -> str:
        return "ok"

    rule_wrong = wrong.limit("5/minute", scope="metrics-wrong")

    @app.get("/wrong", dependencies=[Depends(rule_wrong)])
    async def fw() -> str:
        return "ok"

    with TestClient(app) as c:
        assert [c.get("/open").status_code for _ in range(2)] == [200, 200]
        assert c.get("/closed").status_code == 503
        assert c.get("/wrong").status_code == 503
        m = scrape(c)
    assert decisions(m, "metrics-open") == {"failed_open": 2}
    assert decisions(m, "metrics-closed") == {"failed_closed": 1}
    assert decisions(m, "metrics-wrong") == {"misconfigured": 1}
    # Three limiters in one registry: one set of names, their states summed.
    assert m[("redis_ratelimit_breaker_state", (("state", "closed"),))] == 1  # `wrong`'s
    for lim in (open_limiter, closed_limiter, wrong):
        lim.close()


def test_no_metrics_costs_nothing(server: Server) -> None:
    limiter = Limiter(redis.asyncio.Redis(port=server.port))
    assert limiter.metrics is None
    assert isinstance(limiter.transport, Pipelined)  # not wrapped in a timer
    assert limiter.limit("1/minute")._metrics is None
    # Mounting a /metrics for it is a mistake said at start-up.
    with pytest.raises(ValueError, match="has no metrics"):
        metrics_app(limiter, authorize=None)
    limiter.close()


def test_waits_counted_with_a_fake_clock(server: Server) -> None:
    """wait= routes: what became of the waiting requests, on a FakeClock
    (its naps take no real time); the clock's transport wraps the timed one."""
    from redis_ratelimit.testing import FakeClock

    registry = CollectorRegistry()
    clock = FakeClock()
    app, limiter = make(server.port, registry, clock=clock)
    served = limiter.limit("1/minute", algorithm="fixed", wait=90, scope="metrics-wait")
    beyond = limiter.limit("1/hour", algorithm="fixed", wait=5, scope="metrics-beyond")

    @app.get("/w", dependencies=[Depends(served)])
    async def w() -> str:
        return "ok"

    @app.get("/b", dependencies=[Depends(beyond)])
    async def b() -> str:
        return "ok"

    with TestClient(app) as c:
        assert [c.get("/w").status_code for _ in range(2)] == [200, 200]  # the 2nd waited
        assert [c.get("/b").status_code for _ in range(2)] == [200, 429]  # an hour > 5 s
        m = scrape(c)
    name = "redis_ratelimit_waits_total"
    waits = {dict(lb)["outcome"]: v for (n, lb), v in m.items() if n == name}
    assert waits == {"served": 1, "timed-out": 0, "beyond": 1, "full": 0, "gone": 0}
    assert m[("redis_ratelimit_waiting", ())] == 0
    # The waiting request's decisions: denied, then allowed after its nap.
    assert decisions(m, "metrics-wait") == {"allowed": 2, "denied": 1}
    assert m[("redis_ratelimit_redis_call_duration_seconds_count", ())] >= 5
    limiter.close()

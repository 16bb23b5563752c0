"""The circuit breaker: its states on an injected clock, and an app sparing
its requests the timeout of a Redis that never answers."""

from __future__ import annotations

import asyncio

import pytest
import redis
import redis.asyncio
from fastapi import Depends, FastAPI
from fastapi.testclient import TestClient

from redis_ratelimit import CircuitBreaker, LimiterUnavailable
from redis_ratelimit._breaker import CIRCUIT_OPEN, UNREACHABLE
from redis_ratelimit.fastapi import Limiter

from .conftest import silent_port


def test_circuit_breaker_states() -> None:
    now = [0.0]
    breaker = CircuitBreaker(2, 5.0, clock=lambda: now[0])

    async def fails() -> None:
        raise redis.ConnectionError("refused")

    async def answers() -> str:
        return "ok"

    async def error_reply() -> None:
        raise redis.ResponseError("ERR no such policy")

    async def main() -> None:
        for _ in range(2):
            with pytest.raises(LimiterUnavailable) as e:
                await breaker.call(fails)
            assert e.value.kind == "unreachable"
        assert breaker.state == "open"
        with pytest.raises(LimiterUnavailable) as e:
            await breaker.call(answers)  # not even asked
        assert e.value.kind == "circuit-open"
        now[0] = 5.0
        assert breaker.state == "half-open"
        with pytest.raises(LimiterUnavailable):
            await breaker.call(fails)  # the trial fails: open again
        assert breaker.state == "open"
        now[0] = 10.0
        assert await breaker.call(answers) == "ok"  # the trial passes: closed
        assert breaker.state == "closed"
        with pytest.raises(LimiterUnavailable) as e:
            await breaker.call(error_reply)  # an answer: the breaker stays closed
        assert e.value.kind == "error-reply"
        with pytest.raises(LimiterUnavailable):
            await breaker.call(fails)
        assert await breaker.call(answers) == "ok"  # a success resets the count
        with pytest.raises(LimiterUnavailable):
            await breaker.call(fails)
        assert breaker.state == "closed"
        with pytest.raises(ValueError):
            await breaker.call(_raises_value_error)  # not about Redis: passes through

    asyncio.run(main())


async def _raises_value_error() -> None:
    raise ValueError("bug")


def test_breaker_spares_requests_the_timeout_of_a_stalled_redis() -> None:
    silent, port = silent_port()
    try:
        app = FastAPI()
        limiter = Limiter(redis.asyncio.Redis(port=port), timeout=0.3,
                          breaker=CircuitBreaker(2, 60))  # fmt: skip
        limiter.init_app(app)

        @app.get("/x", dependencies=[Depends(limiter.limit("1/minute"))])
        async def x() -> str:
            return "ok"

        with TestClient(app) as c:
            for _ in range(2):
                assert c.get("/x").status_code == 200  # each waits the timeout
            assert limiter.breaker is not None and limiter.breaker.state == "open"
            assert limiter.failures == {UNREACHABLE: 2}
            for _ in range(20):
                assert c.get("/x").status_code == 200
            # None waited: each took the fail mode at once, without a call
            # to Redis (a call would count UNREACHABLE, after the timeout).
            assert limiter.failures == {UNREACHABLE: 2, CIRCUIT_OPEN: 20}
    finally:
        silent.close()

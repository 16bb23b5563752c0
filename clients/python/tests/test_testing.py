"""redis_ratelimit.testing: a FakeClock sent as AT, for the FastAPI Limiter
(pipelined and pooled, its deny cache too) and both clients, and the
`ratelimit_clock` fixture of the package's pytest plugin."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime

import pytest
import redis
import redis.asyncio
from fastapi import Depends, FastAPI, Request, Response
from fastapi.testclient import TestClient

from redis_ratelimit import AsyncRateLimiter, Fixed, RateLimiter
from redis_ratelimit.fastapi import Limiter
from redis_ratelimit.fastapi.transport import Clocked
from redis_ratelimit.testing import FakeClock, with_at

from .conftest import Server


@pytest.mark.parametrize("pipelining", [True, False], ids=["pipelined", "pooled"])
def test_a_minute_quota_comes_back_when_the_clock_moves(
    server: Server, sync_redis: redis.Redis, ratelimit_clock: FakeClock, pipelining: bool
) -> None:
    app = FastAPI()
    limiter = Limiter(redis.asyncio.Redis(port=server.port), pipelining=pipelining)
    limiter.init_app(app)
    plain = limiter.transport
    ratelimit_clock.attach(limiter)
    assert isinstance(limiter.transport, Clocked) and limiter.transport.inner is plain

    @app.get("/q", dependencies=[Depends(limiter.limit("3/minute", algorithm="fixed"))])
    async def q() -> dict[str, bool]:
        return {"ok": True}

    with TestClient(app) as c:
        assert [c.get("/q").status_code for _ in range(3)] == [200] * 3
        r = c.get("/q")
        # No time passes on the fake clock: exact to the second.
        assert r.status_code == 429 and r.headers["Retry-After"] == "60"
        assert r.headers["RateLimit"] == '"minute";r=0;t=60'
        assert c.get("/q").status_code == 429  # from the deny cache
        assert limiter.deny_cache.hits == 1
        ratelimit_clock.advance(59.999)
        r = c.get("/q")  # the deny cache counts on the fake clock: 1 ms left
        assert r.status_code == 429 and r.headers["Retry-After"] == "1"
        ratelimit_clock.advance(ms=1)
        r = c.get("/q")  # the cache's entry has passed, and Redis agrees
        assert r.status_code == 200 and r.headers["X-RateLimit-Remaining"] == "2"
    ratelimit_clock.detach()
    assert limiter.transport is plain and limiter.clock is None


def test_refunds_and_leases_take_the_clock(
    server: Server, sync_redis: redis.Redis, ratelimit_clock: FakeClock
) -> None:
    app = FastAPI()
    limiter = Limiter(redis.asyncio.Redis(port=server.port), clock=ratelimit_clock)
    limiter.init_app(app)
    login = limiter.limit("2/minute", algorithm="fixed", key=lambda r: "me")

    @app.post("/login")
    async def post(request: Request, response: Response, ok: bool,
                   charged: object = Depends(login)) -> dict[str, bool]:  # fmt: skip
        if ok and charged is not None:
            await login.refund(request, response)
        return {"ok": ok}

    ratelimit_clock.advance(1000)  # ahead of the server's clock
    with TestClient(app) as c:
        assert c.post("/login?ok=false").status_code == 200
        r = c.post("/login?ok=true")  # refunded at the fake time
        assert r.headers["X-RateLimit-Remaining"] == "1"
        assert c.post("/login?ok=false").status_code == 200
        assert c.post("/login?ok=false").status_code == 429
    # The window opened at the clock's time, 1000 s ahead of the server's.
    (key,) = sync_redis.keys("rl:*")
    info = RateLimiter(sync_redis).info(key.decode() if isinstance(key, bytes) else key)
    assert info is not None and info["window_start_us"] == ratelimit_clock.now_ms() * 1000


def test_sync_client(sync_redis: redis.Redis) -> None:
    clock = FakeClock(start=datetime(2026, 12, 1, tzinfo=UTC))
    rl = RateLimiter(sync_redis, clock=clock)
    assert [rl.fixed("k", 2, "1m").allowed for _ in range(3)] == [True, True, False]
    assert rl.fixed("k", 2, "1m").retry_after_ms == 60_000
    clock.advance(30)
    assert rl.refund("k") == 1  # in the same window, at the clock's time
    assert rl.fixed("k", 2, "1m").allowed
    d = rl.fixed("k", 2, "1m")
    assert not d.allowed and d.retry_after_ms == 30_000
    clock.advance(30)
    assert rl.fixed("k", 2, "1m").remaining == 1
    # An explicit AT wins over the clock.
    assert rl.fixed("k", 2, "1m", at=clock.now_ms() + 120_000).remaining == 1
    # Leases: acquired at the clock's time.
    lease = rl.acquire("lease", 1, "10s")
    assert lease.allowed and not rl.acquire("lease", 1, "10s").allowed
    rl.use_clock(None)
    assert rl.clock is None


def test_async_client(server: Server, sync_redis: redis.Redis) -> None:
    async def main() -> None:
        clock = FakeClock()
        rl = AsyncRateLimiter(redis.asyncio.Redis(port=server.port))
        clock.attach(rl)
        for _ in range(5):
            assert (await rl.decide("a", Fixed(5, "1h"))).allowed
        assert (await rl.peek("a", Fixed(5, "1h"))).retry_after_ms == 3_600_000
        clock.advance(3600)
        assert (await rl.decide("a", Fixed(5, "1h"))).remaining == 4
        clock.detach()
        assert rl.clock is None
        await rl.redis.aclose()

    asyncio.run(main())


def test_the_clock() -> None:
    clock = FakeClock(start=1_796_222_760)
    assert clock.now_ms() == 1_796_222_760_000 and clock() == clock.time() == 1_796_222_760
    assert clock.advance(1.5, ms=1).now_ms() == 1_796_222_761_501
    assert clock.utc() == datetime(2026, 12, 2, 14, 46, 1, 501000, tzinfo=UTC)
    with pytest.raises(ValueError, match="forwards"):
        clock.advance(-1)
    with pytest.raises(ValueError, match="forwards"):
        clock.set(0)
    with pytest.raises(ValueError, match="naive"):
        clock.set(datetime(2030, 1, 1))
    assert with_at(["RL.FIXED", "k", 1, "1s"], clock) == ["RL.FIXED", "k", 1, "1s", "AT",
                                                          clock.now_ms()]  # fmt: skip
    assert with_at([b"rl.refund", "k", 1], clock)[-2:] == ["AT", clock.now_ms()]
    for lease in (["RL.RELEASE", "k", "id"], ["RL.RENEW", "k", "id", "1s"]):
        assert with_at(lease, clock) == [*lease, "AT", clock.now_ms()]
    for untimed in (["RL.INFO", "k"], ["RL.POLICY", "GET", "p"]):
        assert with_at(untimed, clock) == untimed


def test_waiting_on_the_clock_waits_for_it_to_move() -> None:
    """FakeClock.wait (a lease's heartbeat): done once the test has moved
    the clock far enough, and never moves it itself."""

    async def body() -> None:
        clock = FakeClock(start=1_796_222_760)
        waiter = asyncio.ensure_future(clock.wait(0.3))
        for _ in range(5):
            await asyncio.sleep(0)
        assert not waiter.done() and clock.now_ms() == 1_796_222_760_000
        clock.advance(0.2)
        await asyncio.sleep(0)
        assert not waiter.done()
        clock.set(1_796_222_760.3)
        await asyncio.wait_for(waiter, 5)
        assert clock.now_ms() == 1_796_222_760_300
        await clock.wait(0)  # nothing to wait for
        cancelled = asyncio.ensure_future(clock.wait(1))
        await asyncio.sleep(0)
        cancelled.cancel()
        clock.advance(2)  # wakes nobody, raises nothing
        await asyncio.sleep(0)
        assert cancelled.cancelled()

    asyncio.run(body())


def test_a_waiting_route_moves_the_fake_clock_instead_of_sleeping(
    server: Server, sync_redis: redis.Redis, ratelimit_clock: FakeClock
) -> None:
    app = FastAPI()
    limiter = Limiter(redis.asyncio.Redis(port=server.port))
    limiter.init_app(app)
    ratelimit_clock.attach(limiter)

    @app.get("/q", dependencies=[Depends(limiter.limit("1/minute", algorithm="fixed", wait=90))])
    async def q() -> dict[str, bool]:
        return {"ok": True}

    with TestClient(app) as c:
        assert c.get("/q").status_code == 200
        before = ratelimit_clock.now_ms()
        # Denied for a minute of fake time, within the 90 s bound: the
        # request naps on the fake clock and is served, in no real time.
        r = c.get("/q")
        assert r.status_code == 200, (r.headers, limiter.waits, ratelimit_clock.now_ms() - before)
        assert 59_000 <= ratelimit_clock.now_ms() - before <= 61_000
    assert limiter.waits == {"served": 1}
    ratelimit_clock.detach()
    assert limiter.waiting.sleep is asyncio.sleep

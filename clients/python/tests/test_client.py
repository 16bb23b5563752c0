"""RateLimiter and AsyncRateLimiter against a real redis-server with the
module, under RESP2 and RESP3, with and without decode_responses."""

from __future__ import annotations

import asyncio
import time
from datetime import timedelta

import pytest
import redis
import redis.asyncio

from redis_ratelimit import (
    AsyncRateLimiter,
    Decision,
    Fixed,
    Gcra,
    Leaky,
    Log,
    Policy,
    RateLimiter,
    RateLimitError,
    RateLimitExceeded,
    Sliding,
    Token,
    duration_arg,
)

from .conftest import Server

HOUR_MS = 3_600_000


def now_ms() -> int:
    return int(time.time() * 1000)


# ---------------------------------------------------------------- pure parts


@pytest.mark.parametrize(
    ("value", "arg"),
    [
        (1, "1s"),
        (60, "1m"),
        (0.5, "500ms"),
        (1.5, "1500ms"),
        (0.000250, "250us"),
        (86400, "1d"),
        (timedelta(minutes=90), "90m"),
        (timedelta(hours=2), "2h"),
        (timedelta(milliseconds=1), "1ms"),
        ("500ms", "500ms"),
        (" 1m ", "1m"),
        ("1mo", "1mo"),  # calendar units pass through to the module
        ("30", "30"),
    ],
)
def test_durations_become_module_arguments(value: int | float | timedelta | str, arg: str) -> None:
    assert duration_arg(value) == arg


@pytest.mark.parametrize("bad", [0, -1, 0.0, -0.5, 1e-9, float("inf"), timedelta(0), "", "1 m",
                                 "m1", "-1s"])  # fmt: skip
def test_bad_durations_are_refused(bad: int | float | timedelta | str) -> None:
    with pytest.raises(ValueError):
        duration_arg(bad)


def test_durations_of_other_types_are_refused() -> None:
    with pytest.raises(TypeError):
        duration_arg(True)
    with pytest.raises(TypeError):
        duration_arg(None)  # type: ignore[arg-type]


def test_decision_reads_seconds_and_timedeltas() -> None:
    d = Decision.from_reply([0, 10, 0, 1500, 60000])
    assert not d
    assert d.retry_after == 1.5 and d.retry_after_timedelta == timedelta(seconds=1.5)
    assert d.reset_after == 60.0 and d.reset_after_timedelta == timedelta(minutes=1)
    never = Decision.from_reply([0, 10, 10, -1, 0])
    assert never.retry_after is None and never.retry_after_timedelta is None
    with pytest.raises(AttributeError):
        d.allowed = True  # type: ignore[misc]


def test_arguments_are_checked_before_calling() -> None:
    limiter = RateLimiter(redis.Redis(port=1))  # never reached
    with pytest.raises(ValueError, match="limit"):
        limiter.fixed("k", 0, 1)
    with pytest.raises(TypeError, match="cost"):
        limiter.fixed("k", 1, 1, cost=1.5)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match=r"RL\.ALL"):
        limiter.all({})


# ---------------------------------------------------------------- sync client


def test_every_algorithm(client: redis.Redis) -> None:
    rl = RateLimiter(client)
    assert rl.fixed("f", 2, "1h") == Decision(True, 2, 1, 0, HOUR_MS)
    assert rl.fixed("f", 2, 3600).remaining == 0
    d = rl.fixed("f", 2, timedelta(hours=1))
    assert not d.allowed and 0 < d.retry_after_ms <= HOUR_MS
    assert rl.sliding("s", 5, 60).limit == 5
    assert rl.log("l", 3, 1.5, cost=3).remaining == 0
    assert rl.token("t", 10, 5, "1s") == Decision(True, 10, 9, 0, 200)
    assert rl.leaky("q", 5, 1, "1s", cost=2).retry_after_ms == 0
    leaky = rl.leaky("q", 5, 1, "1s")
    assert leaky.allowed and 0 < leaky.retry_after_ms <= 2000  # the wait before its turn
    g = rl.gcra("g", 0, 1, "1h")
    assert g.allowed and g.limit == 1
    assert not rl.gcra("g", 0, 1, "1h").allowed


def test_cost_above_the_limit_never_passes(client: redis.Redis) -> None:
    d = RateLimiter(client).token("t", 10, 1, "1s", cost=11)
    assert not d.allowed and d.retry_after_ms == -1 and d.retry_after is None


def test_at_penalty_and_shadow(client: redis.Redis) -> None:
    rl = RateLimiter(client)
    t = now_ms()
    assert rl.fixed("p", 1, 60, at=t, penalty="15m").allowed
    blocked = rl.fixed("p", 1, 60, at=t, penalty=timedelta(minutes=15))
    assert not blocked.allowed and blocked.retry_after_ms == 15 * 60_000
    assert rl.fixed("sh", 1, 60, shadow=True).allowed
    shadowed = rl.fixed("sh", 1, 60, shadow=True)
    assert shadowed.allowed and shadowed.remaining == 0


def test_all_and_its_limits(client: redis.Redis) -> None:
    rl = RateLimiter(client)
    d = rl.all({"{u}:s": Token(10, 10, "1s"), "{u}:d": Fixed(1000, "1d")})
    assert d.allowed and (d.limit, d.remaining, d.reset_after_ms) == (10, 9, 100)
    assert [x.limit for x in d.limits] == [10, 1000]
    assert d.limits[1] == Decision(True, 1000, 999, 0, 86_400_000)
    denied = rl.all([("{u}:s", Token(10, 10, "1s")), ("{u}:d", Fixed(1000, "1d"))], cost=11)
    assert not denied.allowed and denied.limits[0].retry_after_ms == -1
    assert rl.all({"{u}:d": Fixed(1000, "1d")}, cost=0).remaining == 999  # nothing spent


def test_peek_writes_nothing(client: redis.Redis) -> None:
    rl = RateLimiter(client)
    assert rl.peek("t", Token(10, 5, "1s")) == Decision(True, 10, 9, 0, 200)  # as if spent
    assert client.exists("t") == 0
    rl.token("t", 10, 5, "1s", cost=4)
    assert rl.peek("t", Token(10, 5, "1s"), cost=7).allowed is False


def test_info(client: redis.Redis) -> None:
    rl = RateLimiter(client)
    assert rl.info("none") is None
    rl.token("t", 10, 5, "1h")
    info = rl.info("t")
    assert info is not None
    assert info["algorithm"] == "TOKEN"
    assert info["capacity"] == 10 and info["remaining"] == 9
    assert info["period_us"] == 3_600_000_000
    assert info["blocked_until_ms"] == 0


def test_refund(client: redis.Redis) -> None:
    rl = RateLimiter(client)
    assert rl.refund("none") == 0
    rl.fixed("f", 5, "1m", cost=3)
    assert rl.refund("f", 2) == 2
    assert rl.peek("f", Fixed(5, "1m"), cost=0).remaining == 4


def test_acquire_release_renew(client: redis.Redis) -> None:
    rl = RateLimiter(client)
    a = rl.acquire("in", 2, "30s")
    assert a.allowed and a.lease_id is not None and len(a.lease_id) == 32
    b = rl.acquire("in", 2, 30, lease_id="mine")
    assert b.lease_id == "mine" and b.remaining == 0
    c = rl.acquire("in", 2, 30)
    assert not c.allowed and c.lease_id is None and c.retry_after_ms > 0
    assert rl.renew("in", "mine", timedelta(minutes=1)) is True
    assert rl.release("in", "mine") is True
    assert rl.release("in", "mine") is False
    assert rl.renew("in", "mine", 1) is False


def test_lease_context_manager_releases_on_exit_and_on_errors(client: redis.Redis) -> None:
    rl = RateLimiter(client)
    with rl.lease("job", 1, "30s") as lease:
        assert lease.decision.allowed and lease.key == "job"
        with pytest.raises(RateLimitExceeded) as exc, rl.lease("job", 1, "30s"):
            pass
        assert exc.value.decision.retry_after_ms > 0
    assert client.exists("job") == 0  # the last lease released deletes the key
    with pytest.raises(KeyError), rl.lease("job", 1, "30s"):
        raise KeyError("boom")
    assert client.exists("job") == 0


def test_policies(client: redis.Redis) -> None:
    rl = RateLimiter(client)
    rl.policy_set("free", Token(10, 5, "1s"), penalty="90s")
    assert rl.policy_get("free") == ["TOKEN", "10", "5", "1s", "PENALTY", "90s"]
    assert "free" in rl.policy_list()
    assert rl.check("free", "user:1") == Decision(True, 10, 9, 0, 200)
    assert rl.decide("user:1", Policy("free")).remaining == 8
    d = rl.all({"{u}:a": Policy("free"), "{u}:b": Sliding(3, 60)})
    assert d.allowed and len(d.limits) == 2
    assert rl.peek("user:1", Policy("free"), cost=0).remaining == 8
    assert rl.policy_del("free") is True
    assert rl.policy_del("free") is False
    assert rl.policy_get("free") is None
    with pytest.raises(ValueError):
        rl.policy_set("x", Policy("free"))


def test_module_errors_raise_one_type_with_the_message(client: redis.Redis) -> None:
    rl = RateLimiter(client)
    with pytest.raises(RateLimitError) as e:
        rl.check("nope", "k")
    assert "no such policy 'nope'" in e.value.message
    rl.token("t", 10, 5, "1s")
    with pytest.raises(RateLimitError, match="holds a TOKEN limiter"):
        rl.fixed("t", 1, 1)
    with pytest.raises(RateLimitError, match="unknown unit"):
        rl.fixed("u", 1, "5x")
    client.set("plain", "v")
    with pytest.raises(RateLimitError, match="WRONGTYPE"):
        rl.fixed("plain", 1, 1)
    assert isinstance(e.value, redis.ResponseError)  # still a redis-py error


def test_extra_options_pass_through(client: redis.Redis) -> None:
    rl = RateLimiter(client)
    assert rl.fixed("x", 2, 60, extra=["COST", 2]).remaining == 0
    with pytest.raises(RateLimitError):
        rl.fixed("x", 2, 60, extra=["NOSUCHOPTION"])


# ---------------------------------------------------------------- async client


def test_async_client(server: Server, protocol: int) -> None:
    async def main() -> None:
        c = redis.asyncio.Redis(port=server.port, protocol=protocol, socket_timeout=5)
        await c.flushall()
        rl = AsyncRateLimiter(c)
        assert await rl.token("t", 10, 5, "1h") == Decision(True, 10, 9, 0, 720_000)
        assert (await rl.fixed("f", 1, 60)).allowed
        assert not (await rl.fixed("f", 1, 60)).allowed
        assert (await rl.sliding("s", 1, 60)).allowed
        assert (await rl.log("l", 1, 60)).allowed
        assert (await rl.leaky("q", 1, 1, 1)).allowed
        assert (await rl.gcra("g", 1, 1, 1)).limit == 2
        d = await rl.all({"{a}1": Fixed(5, 60), "{a}2": Log(5, 60)})
        assert d.remaining == 4 and len(d.limits) == 2
        assert (await rl.peek("t", Token(10, 5, "1h"), cost=0)).remaining == 9
        info = await rl.info("f")
        assert info is not None and info["algorithm"] == "FIXED"
        assert await rl.refund("s") == 1
        await rl.policy_set("free", Fixed(2, 60))
        assert await rl.policy_get("free") == ["FIXED", "2", "1m"]
        assert "free" in await rl.policy_list()
        assert (await rl.check("free", "u")).remaining == 1
        assert await rl.policy_del("free")
        with pytest.raises(RateLimitError, match="no such policy"):
            await rl.check("free", "u")
        a = await rl.acquire("in", 1, 30)
        assert a.lease_id is not None
        assert await rl.renew("in", a.lease_id, 30)
        assert await rl.release("in", a.lease_id)
        await c.aclose()

    asyncio.run(main())


def test_async_lease_releases_on_exit_errors_and_cancellation(server: Server) -> None:
    async def main() -> None:
        c = redis.asyncio.Redis(port=server.port, socket_timeout=5)
        await c.delete("job")
        rl = AsyncRateLimiter(c)
        async with rl.lease("job", 1, "30s") as lease:
            assert lease.decision.remaining == 0
            with pytest.raises(RateLimitExceeded):
                async with rl.lease("job", 1, "30s"):
                    pass
        assert await c.exists("job") == 0
        with pytest.raises(KeyError):
            async with rl.lease("job", 1, "30s"):
                raise KeyError("boom")
        assert await c.exists("job") == 0

        entered = asyncio.Event()

        async def worker() -> None:
            async with rl.lease("job", 1, "30s"):
                entered.set()
                await asyncio.sleep(60)

        task = asyncio.create_task(worker())
        await entered.wait()
        assert await c.exists("job") == 1
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        assert await c.exists("job") == 0
        await c.aclose()

    asyncio.run(main())


def test_gcra_and_leaky_spec_types() -> None:
    assert Gcra(0, 1, 1).args() == ["GCRA", 0, 1, "1s"]
    assert Leaky(5, 1, 0.5).args() == ["LEAKY", 5, 1, "500ms"]
    with pytest.raises(ValueError):
        Token(0, 1, 1).args()

"""Unit tests of ratelimit.py: rate strings, settings, commands, replies."""

from __future__ import annotations

import asyncio
import re
from datetime import UTC, datetime
from types import SimpleNamespace

import pytest
import redis
import redis.asyncio
from conftest import free_port
from fastapi import HTTPException
from redis.asyncio import BlockingConnectionPool

from ratelimit import (
    CIRCUIT_OPEN,
    ERROR_REPLY,
    POOL_EXHAUSTED,
    UNREACHABLE,
    CircuitBreaker,
    ConcurrencyLimit,
    LimiterUnavailable,
    LogThrottle,
    Policies,
    Policy,
    PolicyDef,
    Rate,
    RateLimit,
    RateLimitConfig,
    calendar_window,
    combine,
    failure_kind,
    parse_duration,
    parse_offset,
    parse_rates,
    redis_client,
)


@pytest.mark.parametrize(
    "text, expected",
    [
        ("5/minute", [Rate(5, 60, "minute")]),
        ("10 per hour", [Rate(10, 3600, "hour")]),
        ("  7 / s ", [Rate(7, 1, "second")]),
        ("100/2 days", [Rate(100, 172800, "2day")]),
        ("3 PER 10 Seconds", [Rate(3, 10, "10second")]),
        ("1/second;100/day", [Rate(1, 1, "second"), Rate(100, 86400, "day")]),
        ("1000/min; 20000 per d", [Rate(1000, 60, "minute"), Rate(20000, 86400, "day")]),
    ],
)
def test_parse_rates(text, expected):
    assert parse_rates(text) == expected


@pytest.mark.parametrize(
    "text, message",
    [
        ("", "empty rate string"),
        ("   ", "empty rate string"),
        ("5", "expected '<count>/<period>'"),
        ("five/minute", "expected '<count>/<period>'"),
        ("5/", "expected '<count>/<period>'"),
        ("-5/minute", "expected '<count>/<period>'"),
        ("5.5/minute", "expected '<count>/<period>'"),
        ("5 perminute", "expected '<count>/<period>'"),
        ("5/fortnight", "unknown period 'fortnight'"),
        ("0/minute", "count must be 1 to 10^15"),
        ("1000000000000001/day", "count must be 1 to 10^15"),
        ("5/0 minutes", "period count must be at least 1"),
        ("1/second;", "bad rate ''"),
        ("1/minute;2/60 seconds", "two limits over the same period"),
    ],
)
def test_parse_rates_errors(text, message):
    with pytest.raises(ValueError, match=message.replace("^", r"\^").replace("(", r"\(")):
        parse_rates(text)


def test_parse_rates_rejects_non_strings():
    with pytest.raises(ValueError):
        parse_rates(None)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    "value, ms",
    [
        ("15m", 900_000),
        ("900s", 900_000),
        ("900", 900_000),
        (900, 900_000),
        ("500ms", 500),
        (" 2H ", 7_200_000),
        ("1d", 86_400_000),
        ("36500d", 36500 * 86_400_000),
    ],
)
def test_parse_duration(value, ms):
    assert parse_duration(value) == ms


@pytest.mark.parametrize(
    "value, message",
    [
        ("", "expected a whole number"),
        ("15 minutes", "expected a whole number"),
        ("1.5s", "expected a whole number"),
        ("-5s", "expected a whole number"),
        ("5w", "expected a whole number"),
        ("0", "from 1 ms to 36500 days"),
        ("0ms", "from 1 ms to 36500 days"),
        ("36501d", "from 1 ms to 36500 days"),
        (True, "bad duration True"),
        (None, "bad duration None"),
    ],
)
def test_parse_duration_errors(value, message):
    with pytest.raises(ValueError, match=message):
        parse_duration(value)


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"algorithm": "bucket"}, "unknown algorithm 'bucket'"),
        ({"algorithm": ("token",)}, "algorithm: 1 given for 2 limits"),
        ({"burst": 0}, "burst must be an integer"),
        ({"cost": -1}, "cost must be a non-negative integer"),
        ({"cost": True}, "cost must be a non-negative integer"),
        ({"penalty": "15 minutes"}, "bad duration '15 minutes'"),
    ],
)
def test_ratelimit_settings_errors(kwargs, message):
    with pytest.raises(ValueError, match=message):
        RateLimit("1/second;100/day", **kwargs)


def fake_request(path="/x", method="GET"):
    app = SimpleNamespace(state=SimpleNamespace(ratelimit=RateLimitConfig(redis=None)))
    return SimpleNamespace(
        app=app, method=method, scope={"route": SimpleNamespace(path=path)}, url=None
    )


def test_single_limit_command():
    lim = RateLimit("5/minute", algorithm="fixed")
    assert lim.command(fake_request("/login", "POST"), "ip:10.0.0.1", 1) == [
        "RL.FIXED", "rl:{ip:10.0.0.1}:POST:/login:minute", 5, "60s", "COST", 1,
    ]  # fmt: skip


def test_several_limits_are_one_rl_all_with_a_common_hash_tag():
    lim = RateLimit(
        "1000/minute;20000/day", algorithm=("token", "fixed"), burst=(1500, None), scope="q"
    )
    assert lim.command(fake_request(), "key:ab", 3) == [
        "RL.ALL", 2, "rl:{key:ab}:q:minute", "rl:{key:ab}:q:day",
        "TOKEN", 1500, 1000, "60s", "FIXED", 20000, "86400s", "COST", 3,
    ]  # fmt: skip


def test_penalty_on_spending_calls_only():
    lim = RateLimit("5/minute", algorithm="fixed", scope="login", penalty="15m")
    assert lim.command(fake_request(), "ip:10.0.0.1", 1) == [
        "RL.FIXED", "rl:{ip:10.0.0.1}:login:minute", 5, "60s", "COST", 1, "PENALTY", "900000ms",
    ]  # fmt: skip
    # A peek (/limits) must never start or extend a penalty box.
    assert "PENALTY" not in lim.command(fake_request(), "ip:10.0.0.1", 0)
    several = RateLimit("1/second;100/day", scope="s", penalty=30)
    assert several.command(fake_request(), "u", 2)[-4:] == ["COST", 2, "PENALTY", "30000ms"]


def test_refund_gives_back_to_every_limit_and_never_creates_a_key(redis_server, db):
    lim = RateLimit("2/minute;5/hour", algorithm="fixed", key=lambda r: "u", scope="s")

    async def run() -> None:
        client = redis.asyncio.Redis(port=redis_server.port, socket_timeout=5)
        request = fake_request()
        request.app.state.ratelimit = RateLimitConfig(redis=client)
        request.state = SimpleNamespace()
        try:
            # Never charged: nothing to give back, and no key is made.
            d = await lim.refund(request)
            assert d is not None and d.allowed and [q.remaining for q in d.quotas] == [2, 5]
            assert db.dbsize() == 0
            for _ in range(2):
                assert (await lim.hit(request)).allowed
            d = await lim.refund(request)
            assert [q.remaining for q in d.quotas] == [1, 4]
            assert request.state.ratelimit_headers["X-RateLimit-Remaining"] == "1"
            # At most what was spent comes back.
            d = await lim.refund(request, cost=5)
            assert [q.remaining for q in d.quotas] == [2, 5]
        finally:
            await client.aclose()

    asyncio.run(run())
    with pytest.raises(ValueError, match="refund cost must be a positive integer"):
        asyncio.run(lim.refund(fake_request(), cost=0))


def test_refund_without_redis_is_logged_not_raised(caplog):
    lim = RateLimit("5/minute", key=lambda r: "u", scope="s")
    request = fake_request()
    request.app.state.ratelimit = RateLimitConfig(
        redis=redis_client(f"redis://127.0.0.1:{free_port()}"), fail_open=False
    )
    request.state = SimpleNamespace()

    async def run() -> None:
        try:
            assert await lim.refund(request) is None
        finally:
            await request.app.state.ratelimit.redis.aclose()

    with caplog.at_level("WARNING", logger="ratelimit"):
        asyncio.run(run())
    assert "rate limiter refund lost" in caplog.text
    assert not hasattr(request.state, "ratelimit_headers")


def test_concurrency_limit_command_and_headers():
    inflight = ConcurrencyLimit(2, ttl="30s", key=lambda r: "u", scope="orders")
    assert inflight.command(fake_request(), "user:alice", 1, "abc") == [
        "RL.ACQUIRE", "rl:{user:alice}:orders:inflight", 2, "30000ms", "ID", "abc", "COST", 1,
    ]  # fmt: skip
    assert inflight.command(fake_request(), "user:alice", 0)[-2:] == ["COST", 0]
    d = inflight.decision([0, 2, 0, 2500, 9000, None])
    assert d.headers() == {
        "RateLimit-Policy": '"inflight";q=2;qu="concurrent-requests"',
        "RateLimit": '"inflight";r=0;t=9',
        "X-RateLimit-Limit": "2",
        "X-RateLimit-Remaining": "0",
        "X-RateLimit-Reset": "9",
        "Retry-After": "3",
    }


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"limit": 0}, "limit must be an integer from 1"),
        ({"limit": True}, "limit must be an integer from 1"),
        ({"limit": 2, "ttl": "soon"}, "bad duration 'soon'"),
        ({"limit": 2, "name": 'a"b'}, "name must be 1 to 32"),
    ],
)
def test_concurrency_limit_settings_errors(kwargs, message):
    with pytest.raises(ValueError, match=message):
        ConcurrencyLimit(**kwargs)


def test_combine_shows_the_refusing_limit_else_the_tightest_window():
    inflight = ConcurrencyLimit(2, scope="o")
    rate = RateLimit("10/minute", scope="o")
    slot_free = inflight.decision([1, 2, 1, 0, 9000, "id"])
    slot_taken = inflight.decision([0, 2, 0, 4000, 9000, None])
    spent = rate.decision([1, 10, 7, 0, 60000])
    refused = rate.decision([0, 10, 0, 6000, 60000])
    # Allowed: the X-RateLimit-* numbers are the rate limit's, although the
    # concurrency limit has fewer left; both policies are listed.
    both = combine([slot_free, spent])
    assert both.allowed and (both.limit, both.remaining) == (10, 7)
    assert both.headers()["RateLimit-Policy"] == (
        '"inflight";q=2;qu="concurrent-requests", "minute";q=10;w=60'
    )
    assert both.headers()["RateLimit"] == '"inflight";r=1;t=9, "minute";r=7;t=60'
    # Refused: the numbers of the limit that refused, the longest wait.
    d = combine([slot_taken, spent])
    assert not d.allowed and (d.limit, d.remaining, d.headers()["Retry-After"]) == (2, 0, "4")
    d = combine([slot_taken, refused])
    assert (d.limit, d.headers()["Retry-After"]) == (10, "6")
    never = rate.decision([0, 10, 10, -1, 0])
    assert combine([slot_taken, never]).retry_after_s is None
    # Only a concurrency limit: its numbers.
    assert combine([slot_free]).limit == 2
    with pytest.raises(ValueError):
        combine([])


def lease_request(client: redis.asyncio.Redis) -> SimpleNamespace:
    request = fake_request("/orders", "POST")
    request.app.state.ratelimit = RateLimitConfig(redis=client)
    request.state = SimpleNamespace()
    return request


def test_lease_is_released_however_the_block_ends(redis_server, db):
    inflight = ConcurrencyLimit(2, ttl="10s", key=lambda r: "user:u", scope="o")
    key = "rl:{user:u}:o:inflight"

    def held() -> int:
        return 2 - int(db.execute_command("RL.ACQUIRE", key, 2, "10s", "COST", "0")[2])

    async def run() -> None:
        client = redis.asyncio.Redis(port=redis_server.port, socket_timeout=5)
        try:
            async with inflight.lease(lease_request(client)) as first:
                assert first is not None and first.key == key
                assert first.decision.allowed and first.decision.remaining == 1
                assert held() == 1
                async with inflight.lease(lease_request(client)):
                    assert held() == 2
                    # A third is refused before its block runs.
                    third = lease_request(client)
                    with pytest.raises(HTTPException) as refused_:
                        async with inflight.lease(third):
                            raise AssertionError("entered a full limit")
                    assert refused_.value.status_code == 429
                    headers = refused_.value.headers or {}
                    assert 9 <= int(headers["Retry-After"]) <= 10
                    assert headers["X-RateLimit-Remaining"] == "0"
                    assert third.state.ratelimit_headers == headers
                assert held() == 1
            assert held() == 0 and db.exists(key) == 0  # the key goes with its last lease
            # Raised out of the block.
            with pytest.raises(RuntimeError):
                async with inflight.lease(lease_request(client)):
                    assert held() == 1
                    raise RuntimeError("the work failed")
            assert held() == 0
            # Cancelled inside the block (a client gone, a timeout).
            entered = asyncio.Event()

            async def work() -> None:
                async with inflight.lease(lease_request(client)):
                    entered.set()
                    await asyncio.sleep(60)

            task = asyncio.create_task(work())
            await entered.wait()
            assert held() == 1
            task.cancel()
            with pytest.raises(asyncio.CancelledError):
                await task
            for _ in range(100):  # the release runs in its own task
                if held() == 0:
                    break
                await asyncio.sleep(0.01)
            assert held() == 0
        finally:
            await client.aclose()

    asyncio.run(run())


def test_lease_heartbeat_renews_past_the_ttl(redis_server, db, caplog):
    inflight = ConcurrencyLimit(1, ttl="300ms", key=lambda r: "user:h", scope="o")
    key = "rl:{user:h}:o:inflight"

    async def run() -> None:
        client = redis.asyncio.Redis(port=redis_server.port, socket_timeout=5)
        try:
            async with inflight.lease(lease_request(client)):
                await asyncio.sleep(1)  # more than 3 ttls: renewed every 100 ms
                assert db.execute_command("RL.ACQUIRE", key, 1, "1s", "COST", "0")[2] == 0
            assert db.exists(key) == 0
        finally:
            await client.aclose()

    asyncio.run(run())
    # Without the heartbeat the lease expires while the block runs; the
    # release says so in the log.
    no_heartbeat = ConcurrencyLimit(1, ttl="100ms", key=lambda r: "user:h", scope="o",
                                    heartbeat=False)  # fmt: skip

    async def expire() -> None:
        client = redis.asyncio.Redis(port=redis_server.port, socket_timeout=5)
        try:
            async with no_heartbeat.lease(lease_request(client)):
                await asyncio.sleep(0.3)
                assert db.exists(key) == 0
        finally:
            await client.aclose()

    with caplog.at_level("WARNING", logger="ratelimit"):
        asyncio.run(expire())
    assert "had expired before its request ended" in caplog.text


def test_braces_in_identities_and_scopes_cannot_move_the_hash_tag():
    lim = RateLimit("5/minute;9/hour")
    args = lim.command(fake_request("/quotes/{symbol}"), "user:{x}%", 1)
    assert args[2:4] == [
        "rl:{user:%7Bx%7D%25}:GET:/quotes/%7Bsymbol%7D:minute",
        "rl:{user:%7Bx%7D%25}:GET:/quotes/%7Bsymbol%7D:hour",
    ]


def test_gcra_burst_follows_redis_cell():
    lim = RateLimit("30/minute", algorithm="gcra", burst=16, scope="s")
    assert lim.command(fake_request(), "u", 1)[2:5] == [15, 30, "60s"]


def test_decision_from_rl_all_reply_and_headers():
    lim = RateLimit("10/second;100/day", algorithm=("token", "fixed"), scope="s")
    reply = [0, 10, 0, 1500, 2000, [0, 10, 0, 1500, 2000], [1, 100, 40, 0, 86399001]]
    d = lim.decision(reply)
    assert not d.allowed and d.retry_after_s == 2
    assert [q.remaining for q in d.quotas] == [0, 40]
    assert d.headers() == {
        "RateLimit-Policy": '"second";q=10;w=1, "day";q=100;w=86400',
        "RateLimit": '"second";r=0;t=2, "day";r=40;t=86400',
        "X-RateLimit-Limit": "10",
        "X-RateLimit-Remaining": "0",
        "X-RateLimit-Reset": "2",
        "Retry-After": "2",
    }


def test_resp3_and_resp2_replies_read_the_same(redis_server):
    # redis-py 8 speaks RESP3 by default: the module answers the same arrays.
    lim = RateLimit("5/minute;100/day", scope="s", algorithm=("token", "fixed"))
    args = lim.command(fake_request(), "user", 1)
    r3 = redis.Redis(port=redis_server.port, protocol=3, socket_timeout=5)
    r2 = redis.Redis(port=redis_server.port, protocol=2, socket_timeout=5)
    peek = [*args[:-1], 0]
    assert r3.execute_command(*peek) == r2.execute_command(*peek)
    d = lim.decision(r3.execute_command(*args))
    assert d.allowed and d.remaining == 4 and [q.limit for q in d.quotas] == [5, 100]


def test_cost_above_the_limit_has_no_retry_after():
    d = RateLimit("5/minute", scope="s").decision([0, 5, 5, -1, 0])
    assert d.retry_after_s is None and "Retry-After" not in d.headers()


# ---------------------------------------------------------------- failures, breaker, logs


class Clock:
    """A hand-moved clock for the breaker and the log throttle."""

    def __init__(self, now: float = 0.0):
        self.now = now

    def __call__(self) -> float:
        return self.now


def refused() -> Exception:
    return redis.exceptions.ConnectionError("Error 111 connecting to 127.0.0.1:1. Connection refused.")


async def fail(error: Exception):
    raise error


async def answer(value="OK"):
    return value


async def outcome(breaker: CircuitBreaker, fn) -> str:
    """'ok', or the kind of LimiterUnavailable raised."""
    try:
        await breaker.call(fn)
        return "ok"
    except LimiterUnavailable as e:
        return e.kind


def test_breaker_opens_after_consecutive_failures_then_does_not_ask():
    async def run():
        clock = Clock()
        b = CircuitBreaker(3, 5.0, clock=clock)
        kinds = [await outcome(b, lambda: fail(refused())) for _ in range(3)]
        assert kinds == [UNREACHABLE] * 3 and b.state == "open"
        calls = []

        async def counted():
            calls.append(1)
            return "OK"

        assert await outcome(b, counted) == CIRCUIT_OPEN
        clock.now = 4.9
        assert await outcome(b, counted) == CIRCUIT_OPEN
        assert calls == []  # Redis not asked while open

    asyncio.run(run())


def test_breaker_counts_only_consecutive_failures():
    async def run():
        b = CircuitBreaker(3, 5.0, clock=Clock())
        for _ in range(4):
            assert await outcome(b, lambda: fail(refused())) == UNREACHABLE
            assert await outcome(b, lambda: fail(redis.exceptions.TimeoutError("t"))) == UNREACHABLE
            assert await outcome(b, answer) == "ok"
        assert b.state == "closed"

    asyncio.run(run())


def test_breaker_half_open_lets_one_trial_through():
    async def run():
        clock = Clock()
        b = CircuitBreaker(1, 5.0, clock=clock)
        await outcome(b, lambda: fail(refused()))
        clock.now = 5.0
        assert b.state == "half-open"
        release = asyncio.Event()

        async def slow_answer():
            await release.wait()
            return "OK"

        trial = asyncio.create_task(outcome(b, slow_answer))
        await asyncio.sleep(0)  # the trial is in flight
        assert b.state == "open"
        assert await outcome(b, answer) == CIRCUIT_OPEN  # not a second trial
        release.set()
        assert await trial == "ok"
        assert b.state == "closed"
        assert await outcome(b, answer) == "ok"

    asyncio.run(run())


def test_breaker_failed_trial_opens_for_another_cooldown():
    async def run():
        clock = Clock()
        b = CircuitBreaker(2, 5.0, clock=clock)
        await outcome(b, lambda: fail(refused()))
        await outcome(b, lambda: fail(refused()))
        clock.now = 6.0
        assert await outcome(b, lambda: fail(refused())) == UNREACHABLE  # the trial
        assert b.state == "open"
        clock.now = 10.9
        assert await outcome(b, answer) == CIRCUIT_OPEN
        clock.now = 11.0
        assert await outcome(b, answer) == "ok" and b.state == "closed"

    asyncio.run(run())


def test_breaker_cuts_calls_in_flight_when_it_opens():
    async def run():
        b = CircuitBreaker(1, 5.0, clock=Clock())
        never = asyncio.Event()

        async def stalled():  # waiting for a connection or a reply
            await never.wait()

        waiting = [asyncio.create_task(outcome(b, stalled)) for _ in range(3)]
        await asyncio.sleep(0)
        assert await outcome(b, lambda: fail(refused())) == UNREACHABLE
        # (The bound only turns a breaker that does not cut into a failure
        # instead of a hang.)
        assert await asyncio.wait_for(asyncio.gather(*waiting), 30) == [CIRCUIT_OPEN] * 3

    asyncio.run(run())


def test_error_replies_and_pool_waits_do_not_open_the_breaker():
    async def run():
        b = CircuitBreaker(1, 5.0, clock=Clock())
        unknown = redis.exceptions.ResponseError("unknown command 'RL.SLIDING'")
        assert await outcome(b, lambda: fail(unknown)) == ERROR_REPLY
        busy = redis.exceptions.MaxConnectionsError("Too many connections")
        assert await outcome(b, lambda: fail(busy)) == POOL_EXHAUSTED
        assert b.state == "closed"
        with pytest.raises(ValueError):  # not a Redis failure: passes through
            await b.call(lambda: fail(ValueError("bug")))
        assert b.state == "closed"

    asyncio.run(run())


def test_failure_kinds_of_real_redis_py_errors(redis_server):
    """redis-py's waiting pool says it ran out of connections only through
    the exception's message and cause: check that it still does."""

    async def run():
        pool = BlockingConnectionPool(port=redis_server.port, max_connections=1, timeout=0.05)
        client = redis.asyncio.Redis.from_pool(pool)
        try:
            held = await pool.get_connection()
            with pytest.raises(redis.exceptions.ConnectionError) as busy:
                await client.ping()
            assert failure_kind(busy.value) == POOL_EXHAUSTED
            await pool.release(held)
            assert await client.ping()
        finally:
            await client.aclose()
        port = free_port()  # nothing listens there
        down = redis_client(f"redis://127.0.0.1:{port}")
        try:
            with pytest.raises(redis.exceptions.ConnectionError) as refused_:
                await down.ping()
            assert failure_kind(refused_.value) == UNREACHABLE
        finally:
            await down.aclose()

    asyncio.run(run())


def test_breaker_settings():
    with pytest.raises(ValueError, match="failures must be at least 1"):
        CircuitBreaker(0)
    with pytest.raises(ValueError, match="cooldown must be positive"):
        CircuitBreaker(5, 0)


def test_log_throttle_first_warning_always_then_one_per_interval(caplog):
    clock = Clock(0.0)  # a machine up for less than the interval
    logs = LogThrottle(10.0, clock=clock)
    with caplog.at_level("WARNING", logger="ratelimit"):
        assert logs.warning("a", "down: %s", "x")
        clock.now = 9.9
        assert not logs.warning("a", "down: %s", "y")
        assert not logs.warning("a", "down: %s", "z")
        assert logs.warning("b", "other kind")  # each kind on its own
        clock.now = 10.0
        assert logs.warning("a", "down: %s", "w")
    assert [r.getMessage() for r in caplog.records] == [
        "down: x",
        "other kind",
        "down: w (and 2 more in the last 10 s)",
    ]


def test_fail_mode_logs_are_throttled_in_both_modes(caplog):
    error = LimiterUnavailable("Timeout reading from 127.0.0.1:1")
    for fail_open in (True, False):
        cfg = RateLimitConfig(redis=None, fail_open=fail_open)
        caplog.clear()
        with caplog.at_level("WARNING", logger="ratelimit"):
            for _ in range(100):
                if fail_open:
                    cfg.unavailable(error)
                else:
                    with pytest.raises(HTTPException) as refused_:
                        cfg.unavailable(error)
                    assert refused_.value.status_code == 503
        assert len(caplog.records) == 1, caplog.records
        assert caplog.records[0].levelname == "WARNING"


@pytest.mark.parametrize(
    "name, value, message",
    [
        ("RL_REDIS_POOL_SIZE", "0", "RL_REDIS_POOL_SIZE='0': must be at least 1"),
        ("RL_REDIS_TIMEOUT", "soon", "RL_REDIS_TIMEOUT='soon': not a number"),
        ("RL_BREAKER_COOLDOWN", "nan", "RL_BREAKER_COOLDOWN='nan': must be at least"),
        ("RL_BREAKER_FAILURES", "1.5", "RL_BREAKER_FAILURES='1.5': not a number"),
        ("RL_LOGIN_PENALTY", "15 min", "RL_LOGIN_PENALTY='15 min': bad duration"),
        ("RL_ORDER_LEASE_TTL", "1.5s", "RL_ORDER_LEASE_TTL='1.5s': bad duration"),
        ("RL_ORDER_INFLIGHT", "0", "RL_ORDER_INFLIGHT='0': must be at least 1"),
        ("ORDER_LATENCY", "-1", "ORDER_LATENCY='-1': must be at least 0"),
        ("RL_POLICY_SYNC", "always", "RL_POLICY_SYNC must be one of missing, overwrite, off"),
        ("RL_POLICY_REFRESH", "-1", "RL_POLICY_REFRESH='-1': must be at least 0"),
        ("RL_POLICY_PREFIX", "my app:", "policy name 'my app:free' is not valid"),
        ("RL_ORDER_BURST", "0", "RL_ORDER_BURST='0': must be at least 1"),
    ],
)
def test_bad_settings_stop_the_app(monkeypatch, name, value, message):
    import app

    monkeypatch.setenv(name, value)
    with pytest.raises(ValueError, match=re.escape(message)):
        app.create_app()


# ---------------------------------------------------------------- policies


@pytest.mark.parametrize(
    "policy, args",
    [
        (Policy("free", "100/minute"), ["SLIDING", 100, "60s"]),
        (Policy("paid", "1000/minute", algorithm="token"), ["TOKEN", 1000, 1000, "60s"]),
        (Policy("o", "1/second", algorithm="token", burst=10), ["TOKEN", 10, 1, "1s"]),
        (Policy("g", "30/minute", algorithm="gcra", burst=16), ["GCRA", 15, 30, "60s"]),
        (
            Policy("login", "5/minute", algorithm="fixed", penalty="15m"),
            ["FIXED", 5, "60s", "PENALTY", "900000ms"],
        ),
    ],
)
def test_policy_set_arguments(policy, args):
    assert policy.args() == args


def test_policy_definitions_compare_by_meaning_not_spelling():
    # What RL.POLICY GET answers ("durations in their largest exact unit").
    login = Policy("login", "5/minute", algorithm="fixed", penalty="15m")
    assert PolicyDef.parse([b"FIXED", 5, b"1m", b"PENALTY", b"15m"]) == login.definition
    assert PolicyDef.parse(["FIXED", "5", "1m"]) != login.definition
    d = PolicyDef.parse([b"TOKEN", 10, 1, b"1h", b"SHADOW"])
    assert (d.capacity, d.quota, d.window_s(), d.shadow) == (10, 1, 3600, True)
    assert PolicyDef.parse(["GCRA", 15, 30, "1m"]).capacity == 16
    assert PolicyDef.parse(["SLIDING", 3, "500ms"]).window_s() == 1
    with pytest.raises(ValueError, match="unreadable"):
        PolicyDef.parse(["BUCKET", 1, "1s"])


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"name": "a b", "rate": "1/s"}, "policy name must be"),
        ({"name": "x" * 65, "rate": "1/s"}, "policy name must be"),
        ({"name": "p", "rate": "1/s;2/m"}, "one rate per policy"),
        ({"name": "p", "rate": "1/s", "algorithm": "bucket"}, "unknown algorithm"),
        ({"name": "p", "rate": "1/s", "burst": 0}, "burst must be"),
        ({"name": "p", "rate": "1/s", "penalty": "soon"}, "bad duration"),
    ],
)
def test_policy_settings_errors(kwargs, message):
    with pytest.raises(ValueError, match=message):
        Policy(**kwargs)


def test_policies_settings_errors():
    p = Policy("p", "1/s")
    with pytest.raises(ValueError, match="defined twice"):
        Policies([p, p])
    with pytest.raises(ValueError, match="sync must be one of"):
        Policies([p], sync="always")
    with pytest.raises(ValueError, match="not valid in the server"):
        Policies([p], prefix="a b")
    with pytest.raises(ValueError, match="a single policy's penalty"):
        RateLimit(p, penalty="1m")
    with pytest.raises(ValueError, match="rates or policies"):
        RateLimit([p, Rate(1, 1, "second")])


def policy_request(*policies: Policy, prefix: str = ""):
    request = fake_request()
    request.app.state.ratelimit.policies = Policies(policies, prefix=prefix)
    return request


def test_policy_commands_use_the_server_names():
    free = Policy("free", "100/minute")
    login = Policy("login", "5/minute", algorithm="fixed", penalty="15m")
    paid, daily = Policy("paid", "10/second", algorithm="token"), Policy("day", "100/day")
    request = policy_request(free, login, paid, daily, prefix="quotes:")
    # One policy: RL.CHECK, with the policy's own penalty (never an option).
    lim = RateLimit(login, key=lambda r: "ip:1", scope="auth")
    assert lim.command(request, "ip:1", 1) == [
        "RL.CHECK", "quotes:login", "rl:{ip:1}:auth:login", "COST", 1,
    ]  # fmt: skip
    assert lim.command(request, "ip:1", 0)[-2:] == ["COST", 0]
    # Several: one RL.ALL; the RateLimit's penalty is the call's.
    both = RateLimit([paid, daily], scope="q", penalty="1m")
    assert both.command(request, "k", 2) == [
        "RL.ALL", 2, "rl:{k}:q:paid", "rl:{k}:q:day", "POLICY", "quotes:paid",
        "POLICY", "quotes:day", "COST", 2, "PENALTY", "60000ms",
    ]  # fmt: skip
    # Headers: labels are the names without the prefix; q and w from the
    # definitions given (those the server holds), else the app's.
    reply = [1, 10, 9, 0, 100, [1, 10, 9, 0, 100], [1, 100, 99, 0, 86400000]]
    assert both.decision(reply).headers()["RateLimit-Policy"] == (
        '"paid";q=10;w=1, "day";q=100;w=86400'
    )
    held = [PolicyDef.parse(["TOKEN", 10, 10, "1s"]), PolicyDef.parse(["FIXED", 100, "2d"])]
    assert both.decision(reply, held).headers()["RateLimit-Policy"] == (
        '"paid";q=10;w=1, "day";q=100;w=172800'
    )
    with pytest.raises(RuntimeError, match="policies="):
        RateLimit(free).command(fake_request(), "ip:1", 1)


# ---------------------------------------------------------------- calendar months


def utc(*args: int) -> datetime:
    return datetime(*args, tzinfo=UTC)


@pytest.mark.parametrize(
    "months, offset, now, start, end",
    [
        (1, "+00:00", utc(2024, 2, 10), "2024-02-01T00:00:00+00:00", "2024-03-01T00:00:00+00:00"),
        # Already February at +05:30, still January at -08:00.
        (1, "+05:30", utc(2024, 1, 31, 20), "2024-02-01T00:00:00+05:30", "2024-03-01T00:00:00+05:30"),
        (1, "-08:00", utc(2024, 2, 1, 3), "2024-01-01T00:00:00-08:00", "2024-02-01T00:00:00-08:00"),
        (1, "+00:00", utc(2024, 12, 31, 23, 59), "2024-12-01T00:00:00+00:00", "2025-01-01T00:00:00+00:00"),
        # 3 months are the quarters, 12 the years (from January 1970).
        (3, "+00:00", utc(2024, 5, 15), "2024-04-01T00:00:00+00:00", "2024-07-01T00:00:00+00:00"),
        (12, "+00:00", utc(2024, 5, 15), "2024-01-01T00:00:00+00:00", "2025-01-01T00:00:00+00:00"),
    ],
)
def test_calendar_window(months, offset, now, start, end):
    got = calendar_window(months, parse_offset(offset), now)
    assert [t.isoformat() for t in got] == [start, end]


def test_a_monthly_policy():
    p = Policy("paid-monthly", "100000/month", algorithm="fixed", offset="+05:30")
    assert p.args() == ["FIXED", 100000, "1mo", "ALIGN", "OFFSET", "+05:30"]
    assert Policy("q", "5 per 3 months", algorithm="fixed").args() == ["FIXED", 5, "3mo", "ALIGN"]
    d = p.definition
    assert (d.months, d.align, d.offset_minutes, d.capacity, d.quota) == (1, True, 330, 100000, 100000)
    # w is the length of the month holding now: 29 days in February 2024.
    assert d.window_s(utc(2024, 2, 10)) == 29 * 86400
    assert d.window_s(utc(2023, 2, 10)) == 28 * 86400
    assert d.rate("paid-monthly", utc(2024, 1, 5)) == Rate(100000, 31 * 86400, "paid-monthly")
    # UTC needs no OFFSET; the same definition however written.
    assert Policy("m", "7/month", algorithm="fixed", offset="Z").args() == ["FIXED", 7, "1mo", "ALIGN"]
    assert PolicyDef.parse(["FIXED", 7, "1mo", "ALIGN", "OFFSET", "+00:00"]) == PolicyDef.parse(
        ["FIXED", 7, "1mo", "ALIGN"]
    )
    assert Policy("a", "100/day", algorithm="fixed", align=True).args() == [
        "FIXED", 100, "86400s", "ALIGN",
    ]  # fmt: skip
    with pytest.raises(ValueError, match="needs algorithm 'fixed'"):
        Policy("m", "7/month", algorithm="sliding")
    with pytest.raises(ValueError, match="bad offset"):
        Policy("m", "7/month", algorithm="fixed", offset="+5:30")

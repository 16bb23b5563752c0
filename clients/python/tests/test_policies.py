"""Policies defined by the app in the server (redis_ratelimit.policies), the
aligned and monthly fixed windows, and their use by the FastAPI Limiter."""

from __future__ import annotations

import asyncio
import logging
import re
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager, suppress
from datetime import UTC, datetime
from typing import Any

import pytest
import redis
import redis.asyncio
from fastapi import Depends, FastAPI
from fastapi.testclient import TestClient

import redis_ratelimit.fastapi
from redis_ratelimit import (
    AsyncRateLimiter,
    CircuitBreaker,
    Fixed,
    Policies,
    PolicyDef,
    PolicySpec,
    RateLimiter,
    Token,
    calendar_window,
    parse_offset,
    rate_limit,
)
from redis_ratelimit._durations import UNITS_US
from redis_ratelimit.fastapi import (
    ConcurrencyLimit,
    Limiter,
    LimiterUnavailable,
    RateLimit,
    RateLimitMiddleware,
    by_ip,
)
from redis_ratelimit.fastapi.rules import ALGORITHMS
from redis_ratelimit.policies import ALGORITHMS as POLICY_ALGORITHMS

from .conftest import Server, emptied

PREFIX = "tpol:"


@pytest.fixture
def db(server: Server) -> Iterator[redis.Redis]:
    yield from emptied(server)


def get(db: redis.Redis, name: str) -> list[str] | None:
    got = db.execute_command("RL.POLICY", "GET", PREFIX + name)
    return None if got is None else [str(v) for v in got]


def utc(year: int, month: int, day: int, hour: int = 0, minute: int = 0) -> datetime:
    return datetime(year, month, day, hour, minute, tzinfo=UTC)


# ---------------------------------------------------------------- limits from rate strings


@pytest.mark.parametrize(
    "spec, args",
    [
        (PolicySpec("free", "100/minute"), ["SLIDING", 100, "1m"]),
        (PolicySpec("paid", "1000/minute", algorithm="token"), ["TOKEN", 1000, 1000, "1m"]),
        (PolicySpec("o", "1/second", algorithm="token", burst=10), ["TOKEN", 10, 1, "1s"]),
        (PolicySpec("g", "30/minute", algorithm="gcra", burst=16), ["GCRA", 15, 30, "1m"]),
        (
            PolicySpec("login", "5/minute", algorithm="fixed", penalty="15m"),
            ["FIXED", 5, "1m", "PENALTY", "15m"],
        ),
        (PolicySpec("s", "5/minute", shadow=True), ["SLIDING", 5, "1m", "SHADOW"]),
    ],
)
def test_policy_set_arguments(spec: PolicySpec, args: list[Any]) -> None:
    assert spec.args() == args


def test_monthly_and_aligned_limits() -> None:
    assert rate_limit("100000/month", "fixed", offset="+05:30").args() == [
        "FIXED", 100000, "1mo", "ALIGN", "OFFSET", "+05:30",
    ]  # fmt: skip
    assert rate_limit("5 per 3 months", "fixed").args() == ["FIXED", 5, "3mo", "ALIGN"]
    # UTC needs no OFFSET.
    assert rate_limit("7/month", "fixed", offset="Z").args() == ["FIXED", 7, "1mo", "ALIGN"]
    assert rate_limit("100/day", "fixed", align=True).args() == ["FIXED", 100, "1d", "ALIGN"]
    assert Fixed(3, "1d", align=True, offset="-05:00").args() == [
        "FIXED", 3, "1d", "ALIGN", "OFFSET", "-05:00",
    ]  # fmt: skip
    assert Fixed(3, "1d").args() == ["FIXED", 3, "1d"]  # unchanged without align
    with pytest.raises(ValueError, match="offset is for aligned windows"):
        Fixed(3, "1d", offset="+01:00").args()
    with pytest.raises(ValueError, match="needs algorithm 'fixed'"):
        rate_limit("7/month", "sliding")
    with pytest.raises(ValueError, match="align and offset are for algorithm 'fixed'"):
        rate_limit("7/day", "token", align=True)
    with pytest.raises(ValueError, match="bad offset"):
        rate_limit("7/month", "fixed", offset="+5:30")


# ---------------------------------------------------------------- one table each


@pytest.mark.parametrize(("unit", "us"), UNITS_US)
def test_one_table_of_units_for_policies_and_the_decorator(
    db: redis.Redis, server: Server, unit: str, us: int
) -> None:
    # The module's unit table and the client's agree: the server takes a
    # window in each unit and writes it back in one the client reads.
    db.execute_command("RL.POLICY", "SET", PREFIX + "u", "SLIDING", 5, f"7{unit}")
    got = get(db, "u")
    assert got is not None
    assert PolicyDef.parse(got).window_us == 7 * us
    # The same table reads a policy's definition, a decorator's wait and a
    # concurrency limit's lease TTL.
    assert PolicyDef.parse(["SLIDING", "5", f"7{unit}"]).window_us == 7 * us
    limiter = Limiter(redis.asyncio.Redis(port=server.port))
    assert RateLimit(limiter, "5/minute", wait=f"7{unit}").wait == 7 * us / 1_000_000
    assert ConcurrencyLimit(limiter, 1, ttl=f"7{unit}").ttl_seconds == 7 * us / 1_000_000


def test_one_table_of_algorithms_for_policies_and_the_decorator(server: Server) -> None:
    assert ALGORITHMS is POLICY_ALGORITHMS is vars(redis_ratelimit.fastapi)["ALGORITHMS"]
    limiter = Limiter(redis.asyncio.Redis(port=server.port))
    for name in ALGORITHMS:
        policy = rate_limit("5/minute", name.upper(), burst=3)
        rule = RateLimit(limiter, "5/minute", algorithm=name.upper(), burst=3)
        assert rule._static is not None
        ((_, _, limit),) = rule._static.parts
        # One limit from one rate: only the window's spelling differs.
        assert type(limit) is type(policy), name
        assert limit.args()[:-1] == policy.args()[:-1], name
        assert (limit.args()[-1], policy.args()[-1]) == ("60s", "1m"), name
        # and read back from RL.POLICY SET's arguments with its parameters
        read = PolicyDef.parse(policy.args())
        assert (read.algorithm, read.window_us) == (name.upper(), 60_000_000)
    unknown = r"unknown algorithm 'cell' \(use fixed, sliding, log, token, leaky, gcra\)"
    with pytest.raises(ValueError, match=unknown):
        rate_limit("5/minute", "cell")
    with pytest.raises(ValueError, match=unknown):
        RateLimit(limiter, "5/minute", algorithm="cell")


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"name": "a b", "rate": "1/s"}, "policy name must be"),
        ({"name": "x" * 65, "rate": "1/s"}, "policy name must be"),
        ({"name": "p", "rate": "1/s;2/m"}, "one rate"),
        ({"name": "p", "rate": "1/s", "algorithm": "bucket"}, "unknown algorithm"),
        ({"name": "p", "rate": "1/s", "algorithm": "token", "burst": 0}, "burst must be"),
        ({"name": "p", "rate": "1/s", "penalty": "soon"}, "bad penalty"),
    ],
)
def test_policy_spec_errors(kwargs: dict[str, Any], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        PolicySpec(**kwargs)


def test_policies_settings_errors() -> None:
    p = PolicySpec("p", "1/s")
    with pytest.raises(ValueError, match="defined twice"):
        Policies([p, p])
    with pytest.raises(ValueError, match="sync must be one of"):
        Policies([p], sync="always")
    with pytest.raises(ValueError, match="not valid in the server"):
        Policies([p], prefix="a b")
    with pytest.raises(ValueError, match="refresh must be"):
        Policies([p], refresh=-1)


def test_definitions_compare_by_meaning_not_spelling() -> None:
    login = PolicySpec("login", "5/minute", algorithm="fixed", penalty="15m")
    assert PolicyDef.parse([b"FIXED", 5, b"60s", b"PENALTY", b"900s"]) == login.definition
    assert PolicyDef.parse(["FIXED", "5", "1m"]) != login.definition
    d = PolicyDef.parse([b"TOKEN", 10, 1, b"1h", b"SHADOW"])
    assert (d.capacity, d.window_s(), d.shadow) == (10, 3600, True)
    assert PolicyDef.parse(["GCRA", 15, 30, "1m"]).capacity == 16
    assert PolicyDef.parse(["SLIDING", 3, "500ms"]).window_s() == 1
    assert PolicyDef.parse(["FIXED", 7, "1mo", "ALIGN", "OFFSET", "+00:00"]) == PolicyDef.parse(
        ["FIXED", 7, "1mo", "ALIGN"]
    )
    assert PolicyDef.parse(["SLIDING", 3, "1m"]).describe() == "SLIDING 3 60000000us"
    with pytest.raises(ValueError, match="unreadable"):
        PolicyDef.parse(["BUCKET", 1, "1s"])


@pytest.mark.parametrize(
    "months, offset, now, start, end",
    [
        (1, "+00:00", utc(2024, 2, 10), "2024-02-01T00:00:00+00:00", "2024-03-01T00:00:00+00:00"),
        # Already February at +05:30, still January at -08:00.
        (1, "+05:30", utc(2024, 1, 31, 20), "2024-02-01T00:00:00+05:30",
         "2024-03-01T00:00:00+05:30"),
        (1, "-08:00", utc(2024, 2, 1, 3), "2024-01-01T00:00:00-08:00",
         "2024-02-01T00:00:00-08:00"),
        (1, "Z", utc(2024, 12, 31, 23, 59), "2024-12-01T00:00:00+00:00",
         "2025-01-01T00:00:00+00:00"),
        # 3 months are the quarters, 12 the years (from January 1970).
        (3, "+00:00", utc(2024, 5, 15), "2024-04-01T00:00:00+00:00", "2024-07-01T00:00:00+00:00"),
        (12, "+00:00", utc(2024, 5, 15), "2024-01-01T00:00:00+00:00", "2025-01-01T00:00:00+00:00"),
    ],
)  # fmt: skip
def test_calendar_window(months: int, offset: str, now: datetime, start: str, end: str) -> None:
    got = calendar_window(months, parse_offset(offset), now)
    assert [t.isoformat() for t in got] == [start, end]


def test_a_monthly_definition_has_the_months_length_as_window() -> None:
    d = PolicySpec("m", "100000/month", algorithm="fixed", offset="+05:30").definition
    assert (d.months, d.align, d.offset_minutes, d.capacity) == (1, True, 330, 100000)
    assert d.window_s(utc(2024, 2, 10)) == 29 * 86400
    assert d.window_s(utc(2023, 2, 10)) == 28 * 86400
    assert d.window_s(utc(2024, 1, 5)) == 31 * 86400


def test_aligned_limits_with_the_clients(server: Server, db: redis.Redis) -> None:
    # The module resets an aligned month on the next 1st, for every key.
    sync = RateLimiter(redis.Redis(port=server.port))
    now = datetime.now(UTC)
    end = calendar_window(1, 0, now)[1]
    d = sync.decide("acct:1", Fixed(2, "1mo", align=True))
    assert d.allowed and d.remaining == 1
    assert abs(now.timestamp() + d.reset_after - end.timestamp()) <= 2
    d = sync.all({"{a}:m": Token(5, 1, "1s"), "{a}:mo": rate_limit("1/month", "fixed")})
    assert d.allowed and d.limits[1].limit == 1
    assert not sync.all({"{a}:m": Token(5, 1, "1s"), "{a}:mo": rate_limit("1/month", "fixed")})


# ---------------------------------------------------------------- sync modes


def specs() -> list[PolicySpec]:
    return [
        PolicySpec("free", "100/minute"),
        PolicySpec("login", "5/minute", algorithm="fixed", penalty="15m"),
        PolicySpec("monthly", "3/month", algorithm="fixed", offset="-08:00"),
    ]


def test_sync_missing_defines_what_the_server_lacks_and_keeps_the_rest(
    server: Server, db: redis.Redis, caplog: pytest.LogCaptureFixture
) -> None:
    db.execute_command("RL.POLICY", "SET", PREFIX + "free", "SLIDING", 3, "1m")
    db.execute_command("RL.POLICY", "SET", PREFIX + "login", "FIXED", 5, "60s", "PENALTY", "900s")
    policies = Policies(specs(), prefix=PREFIX)

    async def run() -> dict[str, str]:
        r = redis.asyncio.Redis(port=server.port)
        try:
            return await policies.sync(AsyncRateLimiter(r))
        finally:
            await r.aclose()

    with caplog.at_level(logging.WARNING, "redis_ratelimit"):
        done = asyncio.run(run())
    assert done == {"free": "kept", "login": "same", "monthly": "defined"}
    assert get(db, "free") == ["SLIDING", "3", "1m"]
    assert get(db, "monthly") == ["FIXED", "3", "1mo", "ALIGN", "OFFSET", "-08:00"]
    assert "policy tpol:free in Redis (SLIDING 3 60000000us) differs" in caplog.text
    # What applies is the server's: current() says so.
    assert policies.current("free").capacity == 3
    assert policies.current("monthly").months == 1


def test_the_sync_client_defines_restores_and_checks_by_name(
    server: Server, db: redis.Redis
) -> None:
    """Policies with RateLimiter: the same logic as with the async client
    (one set of steps, two drivers), its calls made at once."""
    db.execute_command("RL.POLICY", "SET", PREFIX + "free", "SLIDING", 3, "1m")
    policies = Policies(specs(), prefix=PREFIX)
    rl = RateLimiter(db)
    assert policies.sync(rl) == {"free": "kept", "login": "defined", "monthly": "defined"}
    assert get(db, "monthly") == ["FIXED", "3", "1mo", "ALIGN", "OFFSET", "-08:00"]
    assert policies.current("free").capacity == 3
    assert rl.check(policies.server_name("free"), "u1").limit == 3
    for name in ("login", "monthly"):  # a Redis restarted without them
        db.execute_command("RL.POLICY", "DEL", PREFIX + name)
    assert policies.restore(rl) is True
    assert get(db, "login") == ["FIXED", "5", "1m", "PENALTY", "15m"]
    assert get(db, "free") == ["SLIDING", "3", "1m"]  # held: not restored over
    assert Policies(specs(), prefix=PREFIX, sync="off").restore(rl) is False
    assert Policies(specs(), prefix=PREFIX, sync="overwrite").sync(rl)["free"] == "replaced"
    assert get(db, "free") == ["SLIDING", "100", "1m"]


def test_sync_overwrite_and_off(
    server: Server, db: redis.Redis, caplog: pytest.LogCaptureFixture
) -> None:
    db.execute_command("RL.POLICY", "SET", PREFIX + "free", "SLIDING", 3, "1m")

    async def run(mode: str) -> dict[str, str]:
        r = redis.asyncio.Redis(port=server.port)
        try:
            return await Policies(specs(), prefix=PREFIX, sync=mode).sync(AsyncRateLimiter(r))
        finally:
            await r.aclose()

    with caplog.at_level(logging.WARNING, "redis_ratelimit"):
        assert asyncio.run(run("off")) == {"free": "kept", "login": "missing", "monthly": "missing"}
    assert get(db, "login") is None and get(db, "free") == ["SLIDING", "3", "1m"]
    assert "policy tpol:login is not defined in Redis (sync=off)" in caplog.text
    done = asyncio.run(run("overwrite"))
    assert done == {"free": "replaced", "login": "defined", "monthly": "defined"}
    assert get(db, "free") == ["SLIDING", "100", "1m"]
    assert asyncio.run(run("overwrite")) == {"free": "same", "login": "same", "monthly": "same"}


# ---------------------------------------------------------------- with the FastAPI Limiter


def policy_app(server: Server, **kw: Any) -> tuple[FastAPI, Limiter]:
    policies = Policies(
        [
            PolicySpec("free", "100/minute"),
            PolicySpec("daily", "50/day", algorithm="fixed"),
            PolicySpec("monthly", "300/month", algorithm="fixed"),
            PolicySpec("login", "2/minute", algorithm="fixed", penalty="15m"),
        ],
        prefix=PREFIX,
        sync=kw.pop("sync", "missing"),
        refresh=kw.pop("refresh", 0.0),
    )
    limiter = Limiter(
        redis.asyncio.Redis(port=server.port, socket_timeout=5), policies=policies, **kw
    )

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        with suppress(LimiterUnavailable):  # else the first call finding them missing
            await limiter.sync_policies()
        yield

    app = FastAPI(lifespan=lifespan)
    limiter.init_app(app)
    app.add_middleware(RateLimitMiddleware, limiter=limiter)

    free = limiter.limit("policy:free", key=by_ip, scope="q")
    paid = limiter.limit("policy:free;policy:daily;policy:monthly", key=by_ip, scope="p")
    login = limiter.limit("policy:login", key=by_ip, scope="login")

    @app.get("/q", dependencies=[Depends(free)])
    async def q() -> str:
        return "ok"

    @app.get("/p", dependencies=[Depends(paid)])
    async def p() -> str:
        return "ok"

    @app.get("/login", dependencies=[Depends(login)])
    async def log_in() -> str:
        return "ok"

    return app, limiter


def month_s() -> int:
    start, end = calendar_window(1)
    return int((end - start).total_seconds())


def test_policies_defined_at_start_up_and_used_by_name(server: Server, db: redis.Redis) -> None:
    app, _ = policy_app(server)
    with TestClient(app) as c:
        assert get(db, "monthly") == ["FIXED", "300", "1mo", "ALIGN"]
        r = c.get("/q")
        assert r.headers["RateLimit-Policy"] == '"free";q=100;w=60'
        # Several policies: one RL.ALL; w of the month is this month's length.
        r = c.get("/p")
        assert r.headers["RateLimit-Policy"] == (
            f'"free";q=100;w=60, "daily";q=50;w=86400, "monthly";q=300;w={month_s()}'
        )
        assert re.fullmatch(r'"free";r=99;t=\d+, "daily";r=49;t=\d+, "monthly";r=299;t=\d+',
                            r.headers["RateLimit"])  # fmt: skip
        # Keys use the short names; the server's names carry the prefix.
        assert db.keys("rl:*:p:monthly") and not db.keys("*tpol*")


def test_an_operators_change_applies_and_shows_at_once(server: Server, db: redis.Redis) -> None:
    app, _ = policy_app(server)
    with TestClient(app) as c:
        assert c.get("/q").status_code == 200
        db.execute_command("RL.POLICY", "SET", PREFIX + "free", "SLIDING", 2, "1m")
        r = c.get("/q")
        assert r.status_code == 200 and r.headers["RateLimit-Policy"] == '"free";q=2;w=60'
        r = c.get("/q")
        assert r.status_code == 429 and r.headers["RateLimit-Policy"] == '"free";q=2;w=60'
        # The same limit, another window: shows at once (read with the call).
        db.execute_command("RL.POLICY", "SET", PREFIX + "free", "SLIDING", 2, "2h")
        r = c.get("/q")
        assert r.status_code == 429 and r.headers["RateLimit-Policy"] == '"free";q=2;w=7200'
        assert int(r.headers["Retry-After"]) > 60
        # No deny cache for policies: raising it lets the caller through now.
        db.execute_command("RL.POLICY", "SET", PREFIX + "free", "SLIDING", 100, "1m")
        assert c.get("/q").status_code == 200


def test_with_a_refresh_interval_a_new_limit_still_shows_at_once(
    server: Server, db: redis.Redis
) -> None:
    app, _ = policy_app(server, refresh=3600)
    with TestClient(app) as c:
        assert c.get("/q").headers["RateLimit-Policy"] == '"free";q=100;w=60'
        db.execute_command("RL.POLICY", "SET", PREFIX + "free", "SLIDING", 7, "1m")
        r = c.get("/q")
        assert r.headers["RateLimit-Policy"] == '"free";q=7;w=60'
        assert r.headers["X-RateLimit-Remaining"] == "5"


def test_a_policys_penalty_is_not_capped_by_its_window(server: Server, db: redis.Redis) -> None:
    app, _ = policy_app(server)
    with TestClient(app) as c:
        assert [c.get("/login").status_code for _ in range(3)] == [200, 200, 429]
        r = c.get("/login")
        assert r.status_code == 429 and 890 <= int(r.headers["Retry-After"]) <= 900
        assert r.headers["RateLimit-Policy"] == '"login";q=2;w=60'


def test_a_missing_policy_is_defined_again_and_the_call_retried(
    server: Server, db: redis.Redis, caplog: pytest.LogCaptureFixture
) -> None:
    app, _ = policy_app(server)
    with TestClient(app) as c, caplog.at_level(logging.WARNING, "redis_ratelimit"):
        assert c.get("/login").status_code == 200
        for name in ("login", "free"):
            assert db.execute_command("RL.POLICY", "DEL", PREFIX + name) == 1
        r = c.get("/login")
        assert r.status_code == 200 and r.headers["X-RateLimit-Remaining"] == "0"
        assert c.get("/login").status_code == 429  # still limited, the count kept
        assert get(db, "login") == ["FIXED", "2", "1m", "PENALTY", "15m"]
        assert get(db, "free") == ["SLIDING", "100", "1m"]
    assert caplog.text.count("policies missing in Redis, defined again") == 1


@pytest.mark.parametrize("fail_open", [True, False])
def test_with_sync_off_a_missing_policy_takes_the_fail_mode(
    server: Server, db: redis.Redis, caplog: pytest.LogCaptureFixture, fail_open: bool
) -> None:
    app, _ = policy_app(server, sync="off", fail_open=fail_open)
    with TestClient(app) as c, caplog.at_level(logging.WARNING, "redis_ratelimit"):
        r = c.get("/q")
        assert r.status_code == (200 if fail_open else 503)
        assert "RateLimit" not in r.headers
        db.execute_command("RL.POLICY", "SET", PREFIX + "free", "FIXED", 5, "1m")
        r = c.get("/q")
        assert r.status_code == 200 and r.headers["RateLimit-Policy"] == '"free";q=5;w=60'
    assert get(db, "login") is None
    assert "no such policy" in caplog.text


def test_log_interval_spaces_the_warnings_of_a_kind(
    server: Server, caplog: pytest.LogCaptureFixture
) -> None:
    limiter = Limiter(redis.asyncio.Redis(port=server.port), log_interval=3600)
    with caplog.at_level(logging.WARNING, "redis_ratelimit"):
        for _ in range(3):
            limiter.warn("a", "first kind")
            limiter.warn("b", "second kind")
    assert [r.getMessage() for r in caplog.records] == ["first kind", "second kind"]
    caplog.clear()
    limiter = Limiter(redis.asyncio.Redis(port=server.port), log_interval=0)
    with caplog.at_level(logging.WARNING, "redis_ratelimit"):
        limiter.warn("a", "first kind")
        limiter.warn("a", "first kind")
    assert len(caplog.records) == 2


def test_a_decision_and_its_policy_reads_are_one_failure_for_the_breaker(db: redis.Redis) -> None:
    # Nothing listens: each request is one failure, however many commands
    # it sends (the decision and three RL.POLICY GET).
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    server = Server.__new__(Server)
    server.port = port
    app, limiter = policy_app(server)
    with TestClient(app) as c:  # the sync at start-up fails, and is left to later calls
        breaker = limiter.breaker = CircuitBreaker(3, 60.0)  # this test's requests only
        for expected in ("closed", "closed", "open"):
            assert c.get("/p").status_code == 200  # failing open
            assert breaker.state == expected

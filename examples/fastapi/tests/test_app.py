"""The app under a real uvicorn, against a real redis-server with the module."""

from __future__ import annotations

import asyncio
import contextlib
import math
import re
import signal
import time
from collections import Counter
from concurrent.futures import ThreadPoolExecutor

import httpx
import pytest
from redis_ratelimit import calendar_window, parse_offset

ALICE = {"Authorization": "Bearer demo-key-alice"}
BOB = {"Authorization": "Bearer demo-key-bob"}
DENIED = {"detail": "Rate limit exceeded"}


def order(quantity: int, symbol: str = "ACME") -> dict:
    return {"symbol": symbol, "side": "buy", "quantity": quantity}


def month_end(offset: str = "+00:00") -> float:
    """When the calendar month at that UTC offset ends (Unix seconds)."""
    return calendar_window(1, parse_offset(offset))[1].timestamp()


def month_s(offset: str = "+00:00") -> int:
    """RateLimit-Policy's w of a monthly quota: this month's length."""
    start, end = calendar_window(1, parse_offset(offset))
    return int((end - start).total_seconds())


def assert_limit_headers(r: httpx.Response, limit: int, remaining: int) -> None:
    assert r.headers["X-RateLimit-Limit"] == str(limit)
    assert r.headers["X-RateLimit-Remaining"] == str(remaining)
    assert int(r.headers["X-RateLimit-Reset"]) >= 0


def test_anonymous_tier_100_per_minute_per_ip(client):
    for i in range(100):
        # X-Forwarded-For is not trusted by default: a new one each time
        # must not buy a new quota.
        r = client.get("/quotes/ACME", headers={"X-Forwarded-For": f"10.0.0.{i}"})
        assert r.status_code == 200, (i, r.text)
        assert_limit_headers(r, 100, 99 - i)
        assert r.headers["RateLimit-Policy"] == '"free";q=100;w=60'
        assert re.fullmatch(rf'"free";r={99 - i};t=\d+', r.headers["RateLimit"])
        assert "Retry-After" not in r.headers
    r = client.get("/quotes/ACME")
    assert r.status_code == 429
    assert r.json() == DENIED
    assert r.headers["RateLimit-Policy"] == '"free";q=100;w=60'
    assert re.fullmatch(r'"free";r=0;t=\d+', r.headers["RateLimit"])
    assert_limit_headers(r, 100, 0)
    assert 1 <= int(r.headers["Retry-After"]) <= 120
    # Another client address has its own quota.
    with httpx.Client(
        base_url=str(client.base_url),
        transport=httpx.HTTPTransport(local_address="127.0.0.2"),
    ) as other:
        assert other.get("/quotes/ACME").headers["X-RateLimit-Remaining"] == "99"


def test_paid_tier_more_than_anonymous_with_daily_cap(client, db):
    # Test config: 1000/minute token bucket AND 150/day, one RL.ALL call.
    for i in range(150):
        r = client.get("/quotes/ACME", headers=ALICE)
        assert r.status_code == 200, (i, r.text)
    assert r.headers["RateLimit-Policy"] == (
        f'"paid";q=1000;w=60, "paid-daily";q=150;w=86400, "paid-monthly";q=300000;w={month_s()}'
    )
    assert re.fullmatch(
        r'"paid";r=\d+;t=\d+, "paid-daily";r=0;t=\d+, "paid-monthly";r=299850;t=\d+',
        r.headers["RateLimit"],
    )
    assert_limit_headers(r, 150, 0)  # the tightest limit
    r = client.get("/quotes/ACME", headers=ALICE)
    assert r.status_code == 429 and r.json() == DENIED
    assert 80000 <= int(r.headers["Retry-After"]) <= 86400
    # The keys of one caller share a hash tag (one slot in a cluster), and
    # the API key itself never appears in Redis.
    keys = sorted(k.decode() for k in db.keys("rl:*"))
    tags = {re.search(r"\{[^}]*\}", k)[0] for k in keys if k.endswith((":paid", ":paid-daily"))}
    assert len(tags) == 1 and "demo-key" not in " ".join(keys)
    # Bob's key and the anonymous tier are untouched.
    assert client.get("/quotes/ACME", headers=BOB).status_code == 200
    r = client.get("/quotes/ACME")
    assert r.status_code == 200 and r.headers["X-RateLimit-Remaining"] == "99"


def test_invalid_api_key_is_401_and_spends_the_ip_quota(client):
    r = client.get("/quotes/ACME", headers={"Authorization": "Bearer guess"})
    assert r.status_code == 401
    r = client.get("/quotes/ACME")
    assert r.headers["X-RateLimit-Remaining"] == "98"


WRONG = {"username": "alice", "password": "guess"}
RIGHT = {"username": "alice", "password": "wonderland"}
LOGIN_KEY = "rl:{ip:127.0.0.1}:auth:login"


def rl_info(db, key: str) -> dict[str, str]:
    info = db.execute_command("RL.INFO", key)  # a map: db speaks RESP3
    return {k.decode(): v.decode() if isinstance(v, bytes) else str(v) for k, v in info.items()}


def test_login_counts_only_failed_attempts(client, db):
    # Each attempt is charged first; a success is refunded at once.
    for _ in range(10):
        r = client.post("/login", json=RIGHT)
        assert r.status_code == 200 and r.json() == {"api_key": "demo-key-alice"}
        assert r.headers["RateLimit-Policy"] == '"login";q=5;w=60'
        assert_limit_headers(r, 5, 5)
        assert re.fullmatch(r'"login";r=5;t=\d+', r.headers["RateLimit"])
        assert "Retry-After" not in r.headers
    # Failures stay counted (headers also on the 401), successes between
    # them take nothing away.
    for i in range(4):
        r = client.post("/login", json=WRONG)
        assert r.status_code == 401, r.text
        assert_limit_headers(r, 5, 4 - i)
        r = client.post("/login", json=RIGHT)
        assert r.status_code == 200
        assert_limit_headers(r, 5, 4 - i)
    assert client.get("/limits").json()["limits"]["login"][0]["remaining"] == 1
    r = client.post("/login", json={"username": "nobody", "password": "x"})
    assert r.status_code == 401
    assert_limit_headers(r, 5, 0)


def test_five_failures_put_the_ip_in_a_15_minute_penalty_box(client, db):
    for i in range(5):
        r = client.post("/login", json=WRONG)
        assert r.status_code == 401, r.text
        assert r.headers["RateLimit-Policy"] == '"login";q=5;w=60'
        assert_limit_headers(r, 5, 4 - i)
        assert "Retry-After" not in r.headers
    # The next attempt is refused, and refused with the right password too:
    # it starts the box (PENALTY 15m), not just the rest of the minute.
    start = time.time()
    r = client.post("/login", json=RIGHT)
    assert r.status_code == 429 and r.json() == DENIED
    assert 890 <= int(r.headers["Retry-After"]) <= 900
    assert r.headers["RateLimit-Policy"] == '"login";q=5;w=60'
    assert re.fullmatch(r'"login";r=0;t=(89\d|900)', r.headers["RateLimit"])
    assert_limit_headers(r, 5, 0)
    assert 890 <= int(r.headers["X-RateLimit-Reset"]) <= 900
    blocked_until = int(rl_info(db, LOGIN_KEY)["blocked_until_ms"])
    assert abs(blocked_until / 1000 - (start + 900)) < 10
    # Attempts inside the box are refused without extending it.
    for _ in range(3):
        r = client.post("/login", json=RIGHT)
        assert r.status_code == 429 and 890 <= int(r.headers["Retry-After"]) <= 900
    assert int(rl_info(db, LOGIN_KEY)["blocked_until_ms"]) == blocked_until
    # /limits shows the box (a peek, which neither starts nor extends it).
    login = client.get("/limits").json()["limits"]["login"][0]
    assert login["remaining"] == 0 and 890_000 <= login["reset_after_ms"] <= 900_000
    assert int(rl_info(db, LOGIN_KEY)["blocked_until_ms"]) == blocked_until
    # Per IP: another address logs in.
    with httpx.Client(
        base_url=str(client.base_url),
        transport=httpx.HTTPTransport(local_address="127.0.0.3"),
    ) as other:
        r = other.post("/login", json=RIGHT)
        assert r.status_code == 200 and r.json() == {"api_key": "demo-key-alice"}
        assert_limit_headers(r, 5, 5)


def test_penalty_box_outlasts_the_window_then_ends(in_process_app, ratelimit_clock):
    # 2 failures per 2 s, a 5 s box: shorter, same rules. The app runs in
    # this process on the package's test clock (its pytest fixture), sent
    # as AT on every decision: the box's 5 s pass without sleeping.
    with in_process_app(RL_LOGIN_RATE="2/2 seconds", RL_LOGIN_PENALTY="5s") as (app, c):
        ratelimit_clock.attach(app.state.redis_ratelimit)
        assert [c.post("/login", json=WRONG).status_code for _ in range(2)] == [401, 401]
        r = c.post("/login", json=RIGHT)
        assert r.status_code == 429 and r.headers["Retry-After"] == "5"
        # The 2 s window is over, the box is not: 2.5 s of it are left.
        ratelimit_clock.advance(2.5)
        r = c.post("/login", json=RIGHT)
        assert r.status_code == 429 and r.headers["Retry-After"] == "3"
        assert r.headers["RateLimit-Policy"] == '"login";q=2;w=2'
        # A millisecond before the box ends, still refused; then allowed.
        ratelimit_clock.advance(2.5, ms=-1)
        assert c.post("/login", json=RIGHT).status_code == 429
        ratelimit_clock.advance(ms=1)
        r = c.post("/login", json=RIGHT)
        assert r.status_code == 200 and r.json() == {"api_key": "demo-key-alice"}
        assert_limit_headers(r, 2, 2)


def test_login_without_an_api_key_is_403_and_refunded(redis_server, db, start_app):
    # The password was right: not a failed attempt, even though the answer
    # is an error (the headers reach it through RateLimitHeaders).
    a = start_app(redis_server.url, API_KEYS="demo-key-alice:alice")
    with a.client() as c:
        for _ in range(6):
            r = c.post("/login", json={"username": "bob", "password": "builder"})
            assert r.status_code == 403, r.text
            assert_limit_headers(r, 5, 5)


def test_orders_cost_depends_on_size(client):
    assert client.post("/orders", json=order(1)).status_code == 401
    # A burst of 10 units, refilling 1/hour here (conftest: 1/second by
    # default); 1 unit per started 100 shares.
    r = client.post("/orders", json=order(1000), headers=ALICE)
    assert r.status_code == 201 and r.json()["cost"] == 10
    assert_limit_headers(r, 10, 0)
    # Both limits are listed; X-RateLimit-* are the rate limit's (README).
    assert r.headers["RateLimit-Policy"] == (
        '"inflight";q=2;qu="concurrent-requests", "orders";q=10;w=3600'
    )
    assert re.fullmatch(r'"inflight";r=1;t=\d+, "orders";r=0;t=\d+', r.headers["RateLimit"])
    r = client.post("/orders", json=order(1), headers=ALICE)
    assert r.status_code == 429 and r.json() == DENIED
    # The wait for one unit (3600 s less the time since the burst was
    # spent), not for the whole burst.
    assert 3500 <= int(r.headers["Retry-After"]) <= 3600
    # Per user: Bob is unaffected. An invalid order spends nothing.
    r = client.post("/orders", json=order(250), headers=BOB)
    assert r.status_code == 201 and r.json()["cost"] == 3
    assert_limit_headers(r, 10, 7)
    assert client.post("/orders", json=order(0), headers=BOB).status_code == 422
    assert client.post("/orders", content=b"{", headers=BOB).status_code == 422
    orders = client.get("/limits", headers=BOB).json()["limits"]["orders"]
    assert orders[0]["remaining"] == 7


INFLIGHT_ALICE = "rl:{user:alice}:orders:inflight"
INFLIGHT_POLICY = '"inflight";q=2;qu="concurrent-requests"'


def in_flight(db, key: str = INFLIGHT_ALICE) -> int:
    """Slots of a limit of 2 held now (a peek: RL.ACQUIRE ... COST 0)."""
    return 2 - int(db.execute_command("RL.ACQUIRE", key, 2, "10s", "COST", 0)[2])


def wait_in_flight(db, n: int, key: str = INFLIGHT_ALICE, timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while in_flight(db, key) != n:
        assert time.monotonic() < deadline, f"never {n} in flight"
        time.sleep(0.02)


async def place(c: httpx.AsyncClient, headers: dict, qty: int = 1, symbol: str = "ACME"):
    return await c.post("/orders", json=order(qty, symbol), headers=headers)


def test_at_most_2_orders_in_flight_per_user(redis_server, db, start_app):
    # Each order takes 1.5 s at the (simulated) exchange.
    a = start_app(redis_server.url, ORDER_LATENCY="1.5", RL_ORDER_RATE="1/hour")

    async def run() -> None:
        async with httpx.AsyncClient(base_url=a.base_url, timeout=30) as c:
            first = [asyncio.create_task(place(c, ALICE)) for _ in range(2)]
            await asyncio.to_thread(wait_in_flight, db, 2)
            # The third is refused at once, with Retry-After (when a slot is
            # sure to be free: the earliest lease expiry, ttl 10 s) and the
            # concurrency limit's headers; it spends none of the rate limit.
            r = await place(c, ALICE)
            assert r.status_code == 429 and r.json() == DENIED
            assert 7 <= int(r.headers["Retry-After"]) <= 10
            assert r.headers["RateLimit-Policy"] == INFLIGHT_POLICY
            assert re.fullmatch(r'"inflight";r=0;t=\d+', r.headers["RateLimit"])
            assert_limit_headers(r, 2, 0)
            # Per user: Bob places his while Alice's two are in flight.
            bob = asyncio.create_task(place(c, BOB))
            done = await asyncio.gather(*first, bob)
            assert [r.status_code for r in done] == [201, 201, 201], [r.text for r in done]
            for r in done:
                assert r.headers["RateLimit-Policy"] == (
                    '"inflight";q=2;qu="concurrent-requests", "orders";q=10;w=3600'
                )
                assert r.headers["X-RateLimit-Limit"] == "10"  # the rate limit's
            assert in_flight(db) == 0 and db.exists(INFLIGHT_ALICE) == 0
            # The freed slots are taken again.
            again = await asyncio.gather(place(c, ALICE), place(c, ALICE))
            assert [r.status_code for r in again] == [201, 201]
            limits = (await c.get("/limits", headers=ALICE)).json()["limits"]
            assert limits["orders"][0]["remaining"] == 6  # 4 orders of 1 unit
            assert limits["orders_in_flight"][0]["remaining"] == 2

    asyncio.run(run())
    assert "expired" not in a.log_text()


def test_an_order_refused_by_its_rate_limit_frees_its_slot_at_once(client, db):
    r = client.post("/orders", json=order(1000), headers=ALICE)
    assert r.status_code == 201
    for _ in range(3):
        r = client.post("/orders", json=order(1), headers=ALICE)
        assert r.status_code == 429 and 3500 <= int(r.headers["Retry-After"]) <= 3600
        # Both limits are listed; the numbers are those of the one refusing.
        assert r.headers["RateLimit-Policy"] == (
            '"inflight";q=2;qu="concurrent-requests", "orders";q=10;w=3600'
        )
        assert_limit_headers(r, 10, 0)
    assert in_flight(db) == 0


def test_an_order_whose_handler_raises_releases_its_lease(redis_server, db, start_app):
    a = start_app(redis_server.url, ORDER_FAIL_SYMBOLS="BOOM")
    with a.client() as c:
        # More failures than slots: a leaked lease would refuse the third.
        # (A connection each: uvicorn closes one after an unhandled error.)
        for _ in range(4):
            with a.client() as once:
                r = once.post("/orders", json=order(1, "BOOM"), headers=ALICE)
            assert r.status_code == 500
            assert in_flight(db) == 0
        assert db.exists(INFLIGHT_ALICE) == 0
        r = c.post("/orders", json=order(1), headers=ALICE)
        assert r.status_code == 201
    log = a.log_text()
    assert "exchange failed on BOOM" in log  # the handler did raise
    assert "lease not released" not in log and "expired" not in log


def test_leases_of_a_crashed_worker_expire_after_their_ttl(redis_server, db, start_app):
    # Two orders hang in a worker that is then killed (SIGKILL: no release,
    # no cleanup). Another worker refuses Alice's orders until the leases'
    # 2 s ttl has run out, then takes them.
    other = start_app(redis_server.url, RL_ORDER_LEASE_TTL="2s")
    crashing = start_app(redis_server.url, ORDER_LATENCY="60", RL_ORDER_LEASE_TTL="2s")

    def hang() -> None:
        # httpx.HTTPError: the worker died under it
        with crashing.client() as c, contextlib.suppress(httpx.HTTPError):
            c.post("/orders", json=order(1), headers=ALICE)

    with ThreadPoolExecutor(2) as pool:
        for _ in range(2):
            pool.submit(hang)
        wait_in_flight(db, 2)
        crashing.proc.kill()
        crashing.proc.wait()
    killed_at = time.monotonic()
    with other.client() as c:
        r = c.post("/orders", json=order(1), headers=ALICE)
        assert r.status_code == 429 and 1 <= int(r.headers["Retry-After"]) <= 2
        assert int(rl_info(db, INFLIGHT_ALICE)["reset_after_ms"]) <= 2000
        wait_in_flight(db, 0, timeout=10)  # by the ttl: nothing released them
        assert time.monotonic() - killed_at < 4
        r = c.post("/orders", json=order(1), headers=ALICE)
        assert r.status_code == 201


def test_a_long_order_keeps_its_slot_past_the_ttl(redis_server, db, start_app):
    # A 2 s ttl, orders of 3.5 s: the lease is renewed (RL.RENEW every ttl/3)
    # while the order runs, so the slot stays taken until it ends.
    a = start_app(redis_server.url, ORDER_LATENCY="3.5", RL_ORDER_LEASE_TTL="2s")

    async def run() -> None:
        async with httpx.AsyncClient(base_url=a.base_url, timeout=30) as c:
            first = [asyncio.create_task(place(c, ALICE)) for _ in range(2)]
            await asyncio.to_thread(wait_in_flight, db, 2)
            await asyncio.sleep(2.5)  # past the ttl
            r = await place(c, ALICE)
            assert r.status_code == 429 and int(r.headers["Retry-After"]) <= 2
            assert [r.status_code for r in await asyncio.gather(*first)] == [201, 201]
            assert in_flight(db) == 0

    asyncio.run(run())
    assert "expired" not in a.log_text()


def test_limits_peeks_without_spending(client, db):
    for _ in range(5):
        r = client.get("/limits")
        assert r.status_code == 200
        body = r.json()
        assert body["tier"] == "free"
        assert body["limits"]["quotes"][0]["remaining"] == 100
        assert body["limits"]["login"][0]["remaining"] == 5
    assert db.dbsize() == 0  # a peek never creates a key
    client.get("/quotes/ACME")
    for _ in range(3):
        assert client.get("/limits").json()["limits"]["quotes"][0]["remaining"] == 99
    paid = client.get("/limits", headers=ALICE).json()
    assert paid["tier"] == "paid"
    assert [q["policy"] for q in paid["limits"]["quotes"]] == ["paid", "paid-daily", "paid-monthly"]
    assert [q["remaining"] for q in paid["limits"]["quotes"]] == [1000, 150, 300000]
    assert paid["limits"]["quotes"][2]["window_s"] == month_s()
    assert paid["limits"]["orders"][0]["remaining"] == 10
    assert paid["limits"]["orders_in_flight"] == [
        {"policy": "inflight", "algorithm": "lease", "quota": 2, "window_s": None,
         "limit": 2, "remaining": 2, "reset_after_ms": 0},
    ]  # fmt: skip
    assert db.exists(INFLIGHT_ALICE) == 0  # nor a peek at the leases
    assert client.get("/quotes/ACME", headers=ALICE).headers["X-RateLimit-Remaining"] == "149"


def test_exactly_20_of_100_concurrent_requests_pass(redis_server, db, start_app):
    a = start_app(redis_server.url, RL_ANON_RATE="20/minute")

    async def burst() -> list[int]:
        limits = httpx.Limits(max_connections=100)
        async with httpx.AsyncClient(base_url=a.base_url, limits=limits, timeout=30) as c:
            rs = await asyncio.gather(*(c.get("/quotes/ACME") for _ in range(100)))
        return [r.status_code for r in rs]

    codes = asyncio.run(burst())
    assert codes.count(200) == 20 and codes.count(429) == 80, codes


def test_forwarded_for_only_from_trusted_proxy(redis_server, db, start_app):
    a = start_app(redis_server.url, RL_ANON_RATE="2/minute", RL_TRUSTED_PROXIES="1")
    with a.client() as c:
        via = {"X-Forwarded-For": "198.51.100.7"}
        assert [c.get("/quotes/ACME", headers=via).status_code for _ in range(3)] == [200, 200, 429]
        # A client-supplied address left of the proxy's does not help.
        spoof = {"X-Forwarded-For": "203.0.113.1, 198.51.100.7"}
        assert c.get("/quotes/ACME", headers=spoof).status_code == 429
        other = {"X-Forwarded-For": "198.51.100.8"}
        assert c.get("/quotes/ACME", headers=other).status_code == 200


def test_redis_down_fails_open(own_redis, start_app):
    # RL_FAIL_MODE defaults to open. A 1 s Redis timeout: short, for the
    # stalled Redis below, yet 10x the slowest reply seen on a loaded
    # machine. No circuit breaker here (it would open after the 5 failures
    # below): each request asks Redis, as the breaker's own tests do not.
    a = start_app(own_redis.url, RL_REDIS_TIMEOUT="1", RL_BREAKER_FAILURES="1000")
    with a.client() as c:
        r = c.get("/quotes/ACME")
        assert r.status_code == 200 and r.headers["X-RateLimit-Remaining"] == "99"
        own_redis.stop()
        for _ in range(3):
            r = c.get("/quotes/ACME")
            assert r.status_code == 200 and r.json()["symbol"] == "ACME"
            assert "RateLimit" not in r.headers
        assert c.post("/login", json={"username": "bob", "password": "builder"}).status_code == 200
        r = c.get("/limits")
        assert r.status_code == 503 and r.json() == {"detail": "Rate limiter unavailable"}
        own_redis.start()  # same port, empty: limits apply again
        r = c.get("/quotes/ACME")
        assert r.status_code == 200 and r.headers["X-RateLimit-Remaining"] == "99"
        # A Redis that accepts connections but never answers: the socket
        # timeout (1 s here, 2 s by default) bounds the request.
        # Without it the request would hang until the client's own 10 s
        # timeout; the bound leaves a loaded machine seconds of slack.
        own_redis.proc.send_signal(signal.SIGSTOP)
        try:
            start = time.monotonic()
            r = c.get("/quotes/ACME")
            assert time.monotonic() - start < 5
            assert r.status_code == 200 and "RateLimit" not in r.headers
        finally:
            own_redis.proc.send_signal(signal.SIGCONT)
        # The timed-out call had been sent: Redis ran it on resuming, so the
        # request served without an answer still counted.
        own_redis.client.ping()  # Redis has resumed and read what was queued
        r = c.get("/quotes/ACME")
        assert r.status_code == 200 and r.headers["X-RateLimit-Remaining"] == "97"
    log = a.log_text()
    assert "rate limiter unavailable (unreachable), serving without limits" in log
    assert "Traceback" not in log


def test_redis_down_fails_closed(own_redis, start_app):
    a = start_app(own_redis.url, RL_FAIL_MODE="closed")
    with a.client() as c:
        assert c.get("/quotes/ACME").status_code == 200
        own_redis.stop()
        unavailable = {"detail": "Rate limiter unavailable"}
        r = c.get("/quotes/ACME", headers=ALICE)
        assert r.status_code == 503 and r.json() == unavailable
        r = c.post("/login", json={"username": "bob", "password": "builder"})
        assert r.status_code == 503 and r.json() == unavailable
        r = c.post("/orders", json=order(1), headers=BOB)
        assert r.status_code == 503 and r.json() == unavailable
        own_redis.start()
        assert c.get("/quotes/ACME").status_code == 200
    assert "Traceback" not in a.log_text()


async def burst(base_url: str, n: int, path: str = "/quotes/ACME") -> list[httpx.Response]:
    """n requests at once, each on its own connection. Spread over clients
    of 100 connections: one httpx client's pool costs more per request the
    more connections it holds (a third of the time of a 1,000 burst)."""
    limits = httpx.Limits(max_connections=100)
    clients = [
        httpx.AsyncClient(base_url=base_url, limits=limits, timeout=60)
        for _ in range(math.ceil(n / 100))
    ]
    try:
        return await asyncio.gather(*(clients[i // 100].get(path) for i in range(n)))
    finally:
        for c in clients:
            await c.aclose()


def statuses(responses: list[httpx.Response]) -> dict[int, int]:
    return dict(Counter(r.status_code for r in responses))


FAILED_OPEN = "serving without limits"
FAILED_CLOSED = "answering 503"


@pytest.mark.parametrize("fail_mode", ["open", "closed"])
def test_bursts_against_a_healthy_redis_pass_exactly_the_limit(own_redis, start_app, fail_mode):
    # The app's defaults: pool of 20, timeouts. 300 and 1,000 requests at
    # once: more than redis-py's default pool of 100, so exhausting the pool
    # must wait, not fail open (or 503).
    a = start_app(own_redis.url, RL_FAIL_MODE=fail_mode)
    db = own_redis.client
    for n in (300, 1000):
        db.flushall()
        rs = asyncio.run(burst(a.base_url, n))
        assert statuses(rs) == {200: 100, 429: n - 100}, n
        assert all(r.headers["X-RateLimit-Limit"] == "100" for r in rs)
        # The app's pool bounds its connections (and this client is one).
        assert db.info("clients")["connected_clients"] <= 20 + 1
    log = a.log_text()
    for sign in (FAILED_OPEN, FAILED_CLOSED, "circuit", "Traceback"):
        assert sign not in log


def test_breaker_opens_on_a_stalled_redis_and_closes_when_it_resumes(own_redis, start_app):
    # Fail-open. The first 2 requests wait for the 2 s reply timeout, then
    # the circuit opens for 3 s: requests are served at once, without asking
    # Redis; after the cool-down a trial request closes it.
    a = start_app(own_redis.url, RL_BREAKER_FAILURES="2", RL_BREAKER_COOLDOWN="3")
    with a.client() as c:
        r = c.get("/quotes/ACME")
        assert r.status_code == 200 and r.headers["X-RateLimit-Remaining"] == "99"
        own_redis.proc.send_signal(signal.SIGSTOP)
        try:
            for _ in range(2):
                start = time.monotonic()
                r = c.get("/quotes/ACME")
                assert r.status_code == 200 and "RateLimit" not in r.headers
                assert time.monotonic() - start >= 1.5  # waited for the timeout
            # Open: no Redis call, no wait (the 3 s cool-down leaves these
            # requests seconds of slack before a trial could ask Redis).
            for _ in range(5):
                start = time.monotonic()
                r = c.get("/quotes/ACME")
                assert time.monotonic() - start < 1
                assert r.status_code == 200 and "RateLimit" not in r.headers
        finally:
            own_redis.proc.send_signal(signal.SIGCONT)
        own_redis.client.ping()  # Redis has resumed and run what was queued
        # Requests keep being served without limits until the cool-down
        # ends; then the trial asks Redis and the circuit closes.
        deadline = time.monotonic() + 30
        while "RateLimit" not in r.headers and time.monotonic() < deadline:
            time.sleep(0.2)
            r = c.get("/quotes/ACME")
            assert r.status_code == 200
        assert "RateLimit" in r.headers, "the circuit did not close"
        # Only the calls sent before the circuit opened were counted (the
        # first stalled request's at least; a second one may not have got
        # past opening its connection), none of the requests served while
        # it was open: those would have left at most 91.
        assert int(r.headers["X-RateLimit-Remaining"]) in (96, 97)
    log = a.log_text()
    assert "rate limiter circuit open after 2 consecutive failures" in log
    assert "rate limiter circuit closed" in log
    # One warning per kind: the timeouts, then the circuit being open.
    assert log.count(FAILED_OPEN) == 2, log
    assert "Traceback" not in log


def test_breaker_stops_a_burst_waiting_on_a_stalled_redis(own_redis, start_app):
    # Fail-closed, 4 connections, 40 requests at once while Redis is
    # stopped: 4 hold the connections until the 2 s timeout, 36 wait for
    # one. Without the breaker's cut they would then take their turn on the
    # stalled Redis, 4 at a time, 2 s each: 18 s or more (the pool timeout
    # is raised to 20 s for that). Once the circuit opens they all answer.
    a = start_app(
        own_redis.url,
        RL_FAIL_MODE="closed",
        RL_REDIS_POOL_SIZE="4",
        RL_REDIS_POOL_TIMEOUT="20",
        RL_BREAKER_FAILURES="2",
    )
    with a.client() as c:
        assert c.get("/quotes/ACME").status_code == 200
    own_redis.proc.send_signal(signal.SIGSTOP)
    try:
        start = time.monotonic()
        rs = asyncio.run(burst(a.base_url, 40))
        elapsed = time.monotonic() - start
    finally:
        own_redis.proc.send_signal(signal.SIGCONT)
    assert statuses(rs) == {503: 40}
    assert elapsed < 10, elapsed  # 2 to 5 s (loaded machine); 18 s without the cut
    log = a.log_text()
    assert "rate limiter circuit open after 2 consecutive failures" in log
    assert log.count(FAILED_CLOSED) <= 2, log  # one per kind: timeouts, circuit open
    assert "Traceback" not in log


# ---------------------------------------------------------------- tiers as policies


def policy(db, name: str) -> list[str] | None:
    got = db.execute_command("RL.POLICY", "GET", name)
    return None if got is None else [v.decode() if isinstance(v, bytes) else str(v) for v in got]


def test_tiers_are_policies_defined_at_start_up(app, db):
    # The session app's settings (conftest: 150/day, orders 1/hour).
    names = {n.decode() for n in db.execute_command("RL.POLICY", "LIST")}
    assert {"free", "paid", "paid-daily", "paid-monthly", "login", "orders"} <= names
    assert policy(db, "free") == ["SLIDING", "100", "1m"]
    assert policy(db, "paid") == ["TOKEN", "1000", "1000", "1m"]
    assert policy(db, "paid-daily") == ["FIXED", "150", "1d"]
    assert policy(db, "paid-monthly") == ["FIXED", "300000", "1mo", "ALIGN"]
    assert policy(db, "login") == ["FIXED", "5", "1m", "PENALTY", "15m"]
    assert policy(db, "orders") == ["TOKEN", "10", "1", "1h"]
    # FLUSHALL (the db fixture, before each test) keeps them.


def test_an_operator_changes_a_tier_with_one_policy_set(redis_server, db, start_app):
    a = start_app(redis_server.url)
    free, daily = a.policy("free"), a.policy("paid-daily")
    with a.client() as c:
        assert c.get("/quotes/ACME").headers["RateLimit-Policy"] == '"free";q=100;w=60'
        # No restart: the next request is decided, and described, by the
        # new definition (the key keeps its count: 1 spent already).
        db.execute_command("RL.POLICY", "SET", free, "SLIDING", 3, "1m")
        r = c.get("/quotes/ACME")
        assert r.status_code == 200 and r.headers["RateLimit-Policy"] == '"free";q=3;w=60'
        assert_limit_headers(r, 3, 1)
        assert c.get("/quotes/ACME").status_code == 200
        r = c.get("/quotes/ACME")
        assert r.status_code == 429 and r.headers["RateLimit-Policy"] == '"free";q=3;w=60'
        # A change that keeps the limit (the window) shows at once too.
        db.execute_command("RL.POLICY", "SET", free, "SLIDING", 3, "2h")
        r = c.get("/quotes/ACME")
        assert r.status_code == 429 and r.headers["RateLimit-Policy"] == '"free";q=3;w=7200'
        assert int(r.headers["Retry-After"]) > 60  # now counted in 2 h windows
        # Raising it lets the same IP through again.
        db.execute_command("RL.POLICY", "SET", free, "SLIDING", 1000, "1m")
        r = c.get("/quotes/ACME")
        assert r.status_code == 200 and r.headers["RateLimit-Policy"] == '"free";q=1000;w=60'
        # One limit of the paid tier's RL.ALL.
        db.execute_command("RL.POLICY", "SET", daily, "FIXED", 2, "1d")
        codes = [c.get("/quotes/ACME", headers=ALICE).status_code for _ in range(3)]
        assert codes == [200, 200, 429]
        r = c.get("/quotes/ACME", headers=ALICE)
        assert r.headers["RateLimit-Policy"] == (
            f'"paid";q=1000;w=60, "paid-daily";q=2;w=86400, "paid-monthly";q=300000;w={month_s()}'
        )
        assert_limit_headers(r, 2, 0)
        limits = c.get("/limits", headers=ALICE).json()["limits"]["quotes"]
        assert [(q["policy"], q["quota"], q["window_s"]) for q in limits] == [
            ("paid", 1000, 60), ("paid-daily", 2, 86400), ("paid-monthly", 300000, month_s()),
        ]  # fmt: skip


def test_with_a_refresh_interval_a_new_limit_still_shows_at_once(redis_server, db, start_app):
    # RL_POLICY_REFRESH=3600: the definitions are not read with every call,
    # but a reply whose limit is not the known one makes the app read it.
    a = start_app(redis_server.url, RL_POLICY_REFRESH="3600")
    with a.client() as c:
        assert c.get("/quotes/ACME").headers["RateLimit-Policy"] == '"free";q=100;w=60'
        db.execute_command("RL.POLICY", "SET", a.policy("free"), "SLIDING", 7, "1m")
        r = c.get("/quotes/ACME")
        assert r.headers["RateLimit-Policy"] == '"free";q=7;w=60'
        assert_limit_headers(r, 7, 5)


def test_an_operators_definition_survives_an_app_restart(redis_server, db, start_app):
    # RL_POLICY_SYNC=missing (default): the app defines what Redis lacks and
    # keeps what an operator set, saying so; overwrite: the app's wins.
    a = start_app(redis_server.url)
    free = a.policy("free")
    db.execute_command("RL.POLICY", "SET", free, "SLIDING", 3, "1m")
    a.stop()
    b = start_app(redis_server.url, RL_POLICY_PREFIX=a.prefix)
    assert policy(db, free) == ["SLIDING", "3", "1m"]
    with b.client() as c:
        assert c.get("/quotes/ACME").headers["RateLimit-Policy"] == '"free";q=3;w=60'
    assert f"policy {free} in Redis (SLIDING 3 60000000us) differs" in b.log_text()
    b.stop()
    start_app(redis_server.url, RL_POLICY_PREFIX=a.prefix, RL_POLICY_SYNC="overwrite")
    assert policy(db, free) == ["SLIDING", "100", "1m"]


def test_a_missing_policy_is_defined_again_and_the_request_retried(redis_server, db, start_app):
    # A policy deleted (or a Redis restarted without persistence, as in
    # test_redis_down_fails_open): the call that finds it missing defines
    # the app's policies again and is retried once. Still limited.
    a = start_app(redis_server.url, RL_LOGIN_RATE="2/minute")
    login = a.policy("login")
    with a.client() as c:
        assert c.post("/login", json=WRONG).status_code == 401
        for name in (login, a.policy("free")):
            assert db.execute_command("RL.POLICY", "DEL", name) == 1
        r = c.post("/login", json=WRONG)
        assert r.status_code == 401 and r.headers["RateLimit-Policy"] == '"login";q=2;w=60'
        assert_limit_headers(r, 2, 0)  # the count was kept: keys are not policies
        assert c.post("/login", json=RIGHT).status_code == 429
        assert policy(db, login) == ["FIXED", "2", "1m", "PENALTY", "15m"]
        assert policy(db, a.policy("free")) == ["SLIDING", "100", "1m"]
    log = a.log_text()
    assert log.count("policies missing in Redis, defined again") == 1
    assert "Traceback" not in log


@pytest.mark.parametrize("fail_mode", ["open", "closed"])
def test_with_sync_off_a_missing_policy_takes_the_fail_mode(
    redis_server, db, start_app, fail_mode
):
    # RL_POLICY_SYNC=off: the policies belong to someone else; the app never
    # writes them, and a call using one that is missing is not a silent
    # allow of the module but the app's fail mode, logged.
    a = start_app(redis_server.url, RL_POLICY_SYNC="off", RL_FAIL_MODE=fail_mode)
    assert db.execute_command("RL.POLICY", "GET", a.policy("free")) is None
    with a.client() as c:
        r = c.get("/quotes/ACME")
        if fail_mode == "open":
            assert r.status_code == 200 and "RateLimit" not in r.headers
        else:
            assert r.status_code == 503
        db.execute_command("RL.POLICY", "SET", a.policy("free"), "FIXED", 5, "1m")
        r = c.get("/quotes/ACME")
        assert r.status_code == 200 and r.headers["RateLimit-Policy"] == '"free";q=5;w=60'
    assert db.execute_command("RL.POLICY", "GET", a.policy("login")) is None
    log = a.log_text()
    assert f"policy {a.policy('free')} is not defined in Redis (sync=off)" in log
    assert "no such policy" in log and "Traceback" not in log


def test_an_operator_tightens_the_login_policy(redis_server, db, start_app):
    # 2 failures a minute and a 2-minute box instead of 5 and 15 minutes.
    a = start_app(redis_server.url)
    db.execute_command("RL.POLICY", "SET", a.policy("login"), "FIXED", 2, "1m", "PENALTY", "2m")
    with a.client() as c:
        assert [c.post("/login", json=WRONG).status_code for _ in range(2)] == [401, 401]
        r = c.post("/login", json=RIGHT)
        assert r.status_code == 429 and 110 <= int(r.headers["Retry-After"]) <= 120
        assert r.headers["RateLimit-Policy"] == '"login";q=2;w=60'
        assert int(rl_info(db, LOGIN_KEY)["blocked_until_ms"]) > 0


# ---------------------------------------------------------------- the monthly quota


@pytest.mark.parametrize("offset", ["+00:00", "+05:30", "-08:00"])
def test_paid_keys_have_a_monthly_quota_reset_on_the_first(redis_server, db, start_app, offset):
    # 3 a month here; it resets at midnight on the next 1st at the offset,
    # the same instant for every key (ALIGN), told exactly in the headers.
    a = start_app(redis_server.url, RL_PAID_MONTHLY="3/month", RL_PAID_MONTH_OFFSET=offset)
    monthly = ["FIXED", "3", "1mo", "ALIGN"] + (["OFFSET", offset] if offset != "+00:00" else [])
    assert policy(db, a.policy("paid-monthly")) == monthly
    with a.client() as c:
        for i in range(3):
            r = c.get("/quotes/ACME", headers=ALICE)
            assert r.status_code == 200, (i, r.text)
        assert r.headers["RateLimit-Policy"] == (
            '"paid";q=1000;w=60, "paid-daily";q=20000;w=86400, '
            f'"paid-monthly";q=3;w={month_s(offset)}'
        )
        assert_limit_headers(r, 3, 0)  # the tightest
        r = c.get("/quotes/ACME", headers=ALICE)
        now = time.time()
        assert r.status_code == 429 and r.json() == DENIED
        left = month_end(offset) - now
        assert abs(int(r.headers["Retry-After"]) - left) <= 3
        t = int(re.search(r'"paid-monthly";r=0;t=(\d+)', r.headers["RateLimit"])[1])
        assert abs(t - left) <= 3
        assert abs(int(r.headers["X-RateLimit-Reset"]) - left) <= 3
        # The module's own reset, to the millisecond: the next 1st.
        key = next(k.decode() for k in db.keys("rl:*:quotes:paid-monthly"))
        reset_ms = int(rl_info(db, key)["reset_after_ms"])
        assert abs(now + reset_ms / 1000 - month_end(offset)) <= 2
        # Refused by the month, nothing else was spent: the minute's bucket
        # and the day keep what the 3 allowed requests left.
        limits = c.get("/limits", headers=ALICE).json()["limits"]["quotes"]
        assert [q["remaining"] for q in limits] == [997, 19997, 0]
        assert limits[2]["window_s"] == month_s(offset)
        # Per key: Bob has his 3.
        assert c.get("/quotes/ACME", headers=BOB).status_code == 200


def test_an_operator_raises_a_monthly_quota(redis_server, db, start_app):
    a = start_app(redis_server.url, RL_PAID_MONTHLY="1/month")
    with a.client() as c:
        assert c.get("/quotes/ACME", headers=ALICE).status_code == 200
        assert c.get("/quotes/ACME", headers=ALICE).status_code == 429
        db.execute_command(
            "RL.POLICY", "SET", a.policy("paid-monthly"), "FIXED", 2, "1mo", "ALIGN"
        )
        r = c.get("/quotes/ACME", headers=ALICE)
        assert r.status_code == 200
        assert f'"paid-monthly";q=2;w={month_s()}' in r.headers["RateLimit-Policy"]
        assert c.get("/quotes/ACME", headers=ALICE).status_code == 429

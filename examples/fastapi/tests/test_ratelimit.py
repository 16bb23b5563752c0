"""Unit tests of ratelimit.py: rate strings, settings, commands, replies."""

from __future__ import annotations

from types import SimpleNamespace

import pytest
import redis

from ratelimit import Rate, RateLimit, RateLimitConfig, parse_rates


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
    "kwargs, message",
    [
        ({"algorithm": "bucket"}, "unknown algorithm 'bucket'"),
        ({"algorithm": ("token",)}, "algorithm: 1 given for 2 limits"),
        ({"burst": 0}, "burst must be an integer"),
        ({"cost": -1}, "cost must be a non-negative integer"),
        ({"cost": True}, "cost must be a non-negative integer"),
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

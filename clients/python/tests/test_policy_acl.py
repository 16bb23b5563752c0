"""Deciding with a policy and changing one are separate ACL grants: an
application's Redis user runs the RL.* decisions and RL.POLICY GET/LIST, an
operator's also RL.POLICY SET/DEL. Policies(sync="verify") starts with the
application's grant only when the server holds every policy as the app
defines it; the writing modes start with it when nothing needs writing, and
otherwise refuse with PoliciesNotSynced (a RateLimiterMisconfigured) naming
the policies, the grant and the commands. At run time a policy Redis lost
that the app cannot define again answers 503 with an ERROR naming it.

Against the module's server, with ACL users granted by command name (Redis
7.0 has no ACL categories for module commands)."""

from __future__ import annotations

import asyncio
import logging
import uuid
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager, suppress
from typing import Any

import pytest
import redis
import redis.asyncio
from fastapi import Depends, FastAPI
from fastapi.testclient import TestClient

from redis_ratelimit import (
    AsyncRateLimiter,
    Policies,
    PoliciesNotSynced,
    PolicySpec,
    RateLimiter,
    RateLimiterMisconfigured,
)
from redis_ratelimit.fastapi import Limiter, LimiterUnavailable, by_ip

from .conftest import Server, emptied

LOG = "redis_ratelimit"
PREFIX = "tacl:"
# The application's grant, by name (on Redis 7.4+/Valkey 8+: ~rl:* +@ratelimit
# +command|info): every RL.* command but RL.POLICY SET and DEL.
APPLICATION = ("~rl:*", "+rl.fixed", "+rl.sliding", "+rl.log", "+rl.token", "+rl.leaky",
               "+rl.gcra", "+rl.all", "+rl.peek", "+rl.info", "+rl.refund", "+rl.check",
               "+rl.acquire", "+rl.release", "+rl.renew", "+rl.policy|get",
               "+rl.policy|list", "+command|info")  # fmt: skip
OPERATOR = (*APPLICATION, "+rl.policy|set", "+rl.policy|del")


def specs() -> list[PolicySpec]:
    return [
        PolicySpec("free", "100/minute"),
        PolicySpec("login", "2/minute", algorithm="fixed", penalty="15m"),
    ]


# What the app's definitions are as commands (the operator's fix).
SET_FREE = "RL.POLICY SET tacl:free SLIDING 100 1m"
SET_LOGIN = "RL.POLICY SET tacl:login FIXED 2 1m PENALTY 15m"


@pytest.fixture
def admin(server: Server) -> Iterator[redis.Redis]:
    yield from emptied(server)


def _user(admin: redis.Redis, grant: tuple[str, ...]) -> Iterator[str]:
    name = f"rl-{uuid.uuid4().hex[:8]}"
    admin.execute_command("ACL", "SETUSER", name, "reset", "on", ">pw", *grant)
    try:
        yield name
    finally:
        admin.execute_command("ACL", "DELUSER", name)


@pytest.fixture
def app_user(admin: redis.Redis) -> Iterator[str]:
    yield from _user(admin, APPLICATION)


@pytest.fixture
def operator(admin: redis.Redis) -> Iterator[str]:
    yield from _user(admin, OPERATOR)


def define_all(server: Server, user: str) -> None:
    """What an operator runs: the app's definitions, as that user."""

    async def run() -> dict[str, str]:
        r = redis.asyncio.Redis(port=server.port, username=user, password="pw")
        try:
            return await Policies(specs(), prefix=PREFIX, sync="overwrite").sync(
                AsyncRateLimiter(r)
            )
        finally:
            await r.aclose()

    assert set(asyncio.run(run()).values()) <= {"defined", "same"}


def sync_as(server: Server, user: str, mode: str) -> dict[str, str]:
    """Policies.sync() as `user`, with the async client and with the sync
    one (RateLimiter): the same result, or the same error (the app's user
    may not write: neither changes what the other finds)."""

    async def run() -> dict[str, str]:
        r = redis.asyncio.Redis(port=server.port, username=user, password="pw")
        try:
            return await Policies(specs(), prefix=PREFIX, sync=mode).sync(AsyncRateLimiter(r))
        finally:
            await r.aclose()

    def blocking() -> dict[str, str]:
        with redis.Redis(port=server.port, username=user, password="pw") as r:
            return Policies(specs(), prefix=PREFIX, sync=mode).sync(RateLimiter(r))

    outcomes: list[dict[str, str] | BaseException] = []
    for way in (blocking, lambda: asyncio.run(run())):
        try:
            outcomes.append(way())
        except PoliciesNotSynced as e:
            outcomes.append(e)
    sync_one, async_one = outcomes
    if isinstance(async_one, BaseException):
        assert isinstance(sync_one, PoliciesNotSynced) and str(sync_one) == str(async_one)
        raise async_one
    assert sync_one == async_one
    return async_one


def _errors(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [r.getMessage() for r in caplog.records if r.levelno >= logging.ERROR]


def test_the_grants_separate_deciding_from_defining(
    server: Server, admin: redis.Redis, app_user: str, operator: str
) -> None:
    define_all(server, operator)  # the operator's grant may define them
    with redis.Redis(port=server.port, username=app_user, password="pw") as app:
        assert app.execute_command("RL.CHECK", PREFIX + "free", "rl:u1")[0] == 1
        assert sorted(app.execute_command("RL.POLICY", "LIST")) == [b"tacl:free", b"tacl:login"]
        assert app.execute_command("RL.POLICY", "GET", PREFIX + "free") is not None
        for write in (("SET", PREFIX + "free", "SLIDING", 1, "1m"), ("DEL", PREFIX + "free")):
            with pytest.raises(redis.exceptions.NoPermissionError):
                app.execute_command("RL.POLICY", *write)


# ---------------------------------------------------------------- directly: policies.sync()


def test_verify_starts_when_every_policy_is_as_the_app_defines_it(
    server: Server, admin: redis.Redis, app_user: str, operator: str
) -> None:
    define_all(server, operator)
    assert sync_as(server, app_user, "verify") == {"free": "same", "login": "same"}


def test_verify_names_a_missing_policy_and_how_to_define_it(
    server: Server, admin: redis.Redis, app_user: str, operator: str
) -> None:
    define_all(server, operator)
    admin.execute_command("RL.POLICY", "DEL", PREFIX + "login")
    with pytest.raises(PoliciesNotSynced) as e:
        sync_as(server, app_user, "verify")
    err = e.value
    assert isinstance(err, RateLimiterMisconfigured) and err.reason == "policies-not-synced"
    assert err.missing == ("tacl:login",) and err.different == {} and err.refused is None
    assert err.commands == (SET_LOGIN,)
    text = str(err)
    assert text.startswith(f"policies not as the app defines them on localhost:{server.port}: "
                           "tacl:login missing: sync='verify' never writes them")  # fmt: skip
    assert "+rl.policy|set" in text and f"`{SET_LOGIN}`" in text and "every master" in text
    assert admin.execute_command("RL.POLICY", "GET", PREFIX + "login") is None  # not written


def test_verify_names_a_policy_that_differs(
    server: Server, admin: redis.Redis, app_user: str, operator: str
) -> None:
    define_all(server, operator)
    admin.execute_command("RL.POLICY", "SET", PREFIX + "free", "SLIDING", 3, "1m")
    with pytest.raises(PoliciesNotSynced) as e:
        sync_as(server, app_user, "verify")
    err = e.value
    assert err.missing == () and err.commands == (SET_FREE,)
    assert err.different == {"tacl:free": ("SLIDING 3 60000000us", "SLIDING 100 60000000us")}
    assert "tacl:free differs (Redis: SLIDING 3 60000000us; the app: SLIDING 100" in str(err)
    assert "or give the app the server's definitions" in str(err)
    assert admin.execute_command("RL.POLICY", "GET", PREFIX + "free") == ["SLIDING", "3", "1m"]


@pytest.mark.parametrize("mode", ["missing", "overwrite"])
def test_a_writing_mode_without_the_grant_starts_when_nothing_needs_writing(
    server: Server, admin: redis.Redis, app_user: str, operator: str, mode: str
) -> None:
    define_all(server, operator)
    assert sync_as(server, app_user, mode) == {"free": "same", "login": "same"}


@pytest.mark.parametrize("mode", ["missing", "overwrite"])
def test_a_writing_mode_without_the_grant_names_what_it_could_not_define(
    server: Server, admin: redis.Redis, app_user: str, operator: str, mode: str
) -> None:
    define_all(server, operator)
    admin.execute_command("RL.POLICY", "DEL", PREFIX + "free")
    with pytest.raises(PoliciesNotSynced) as e:
        sync_as(server, app_user, mode)
    err = e.value
    assert not isinstance(err, LimiterUnavailable)  # an `except` for Redis down misses it
    assert err.missing == ("tacl:free",) and err.commands == (SET_FREE,)
    assert err.refused is not None and err.refused.startswith("NOPERM")
    text = str(err)
    assert "tacl:free missing: NOPERM" in text and "rl.policy|set" in text
    assert "grant it +rl.policy|set" in text and "use sync='verify'" in text
    assert f"`{SET_FREE}`" in text


def test_overwrite_without_the_grant_refuses_a_difference_missing_keeps_it(
    server: Server, admin: redis.Redis, app_user: str, operator: str
) -> None:
    define_all(server, operator)
    admin.execute_command("RL.POLICY", "SET", PREFIX + "free", "SLIDING", 3, "1m")
    # "missing" keeps an operator's definition: nothing to write.
    assert sync_as(server, app_user, "missing") == {"free": "kept", "login": "same"}
    with pytest.raises(PoliciesNotSynced) as e:
        sync_as(server, app_user, "overwrite")
    assert list(e.value.different) == ["tacl:free"] and e.value.refused is not None


@pytest.mark.parametrize("mode", ["missing", "verify"])
def test_restore_without_the_grant_raises(
    server: Server, admin: redis.Redis, app_user: str, operator: str, mode: str
) -> None:
    define_all(server, operator)

    async def run() -> None:
        r = redis.asyncio.Redis(port=server.port, username=app_user, password="pw")
        try:
            policies = Policies(specs(), prefix=PREFIX, sync=mode)
            client = AsyncRateLimiter(r)
            await policies.sync(client)
            admin.execute_command("RL.POLICY", "DEL", PREFIX + "login")
            with pytest.raises(PoliciesNotSynced) as e:
                await policies.restore(client)
            assert e.value.missing == ("tacl:login",)
            assert (e.value.refused is None) == (mode == "verify")
            # An operator defined it meanwhile: read again, nothing to write.
            admin.execute_command("RL.POLICY", "SET", PREFIX + "login", "FIXED", 2, "1m",
                                  "PENALTY", "15m")  # fmt: skip
            assert await policies.restore(client) is True
        finally:
            await r.aclose()

    asyncio.run(run())


@pytest.mark.parametrize("mode", ["missing", "verify"])
def test_restore_without_the_grant_raises_sync_client(
    server: Server, admin: redis.Redis, app_user: str, operator: str, mode: str
) -> None:
    define_all(server, operator)
    with redis.Redis(port=server.port, username=app_user, password="pw") as r:
        policies = Policies(specs(), prefix=PREFIX, sync=mode)
        client = RateLimiter(r)
        assert policies.sync(client) == {"free": "same", "login": "same"}
        admin.execute_command("RL.POLICY", "DEL", PREFIX + "login")
        with pytest.raises(PoliciesNotSynced) as e:
            policies.restore(client)
        assert e.value.missing == ("tacl:login",)
        assert (e.value.refused is None) == (mode == "verify")
        admin.execute_command("RL.POLICY", "SET", PREFIX + "login", "FIXED", 2, "1m",
                              "PENALTY", "15m")  # fmt: skip
        assert policies.restore(client) is True


# ---------------------------------------------------------------- the FastAPI app


def policy_app(
    server: Server, user: str, mode: str, **kw: Any
) -> tuple[FastAPI, Limiter, list[bool]]:
    policies = Policies(specs(), prefix=PREFIX, sync=mode)
    client = redis.asyncio.Redis(port=server.port, username=user, password="pw",
                                 socket_timeout=5)  # fmt: skip
    limiter = Limiter(client, policies=policies, **kw)
    started: list[bool] = []

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        with suppress(LimiterUnavailable):  # what an app does for Redis down
            await limiter.sync_policies()
        started.append(True)
        yield

    app = FastAPI(lifespan=lifespan)
    limiter.init_app(app)
    free = limiter.limit("policy:free", key=by_ip, scope="q")

    @app.get("/q", dependencies=[Depends(free)])
    async def q() -> str:
        return "ok"

    return app, limiter, started


PIPELINING = pytest.mark.parametrize("pipelining", [True, False], ids=["pipelined", "pool"])


@PIPELINING
@pytest.mark.parametrize("mode", ["verify", "missing", "overwrite"])
def test_the_app_starts_with_the_application_grant_when_all_are_defined(
    server: Server, admin: redis.Redis, app_user: str, operator: str, mode: str,
    pipelining: bool, caplog: pytest.LogCaptureFixture,
) -> None:  # fmt: skip
    define_all(server, operator)
    app, limiter, started = policy_app(server, app_user, mode, pipelining=pipelining)
    with caplog.at_level(logging.WARNING, LOG), TestClient(app) as c:
        r = c.get("/q")
        assert r.status_code == 200 and r.headers["RateLimit-Policy"] == '"free";q=100;w=60'
    assert started == [True] and _errors(caplog) == []
    limiter.close()


@PIPELINING
@pytest.mark.parametrize(
    "mode, change",
    [
        ("verify", "missing"),
        ("verify", "differs"),
        ("missing", "missing"),
        ("overwrite", "missing"),
        ("overwrite", "differs"),
    ],
)
def test_the_app_refuses_to_start_naming_the_policy(
    server: Server, admin: redis.Redis, app_user: str, operator: str, mode: str, change: str,
    pipelining: bool, caplog: pytest.LogCaptureFixture,
) -> None:  # fmt: skip
    define_all(server, operator)
    if change == "missing":
        admin.execute_command("RL.POLICY", "DEL", PREFIX + "free")
    else:
        admin.execute_command("RL.POLICY", "SET", PREFIX + "free", "SLIDING", 3, "1m")
    app, limiter, started = policy_app(server, app_user, mode, pipelining=pipelining)
    with (
        caplog.at_level(logging.WARNING, LOG),
        pytest.raises(PoliciesNotSynced) as e,
        TestClient(app),
    ):
        pass
    assert started == []
    text = str(e.value)
    assert (f"tacl:free {change}" in text) and f"`{SET_FREE}`" in text
    assert f"on localhost:{server.port}" in text
    assert ("use sync='verify'" in text) == (mode != "verify")
    (error,) = _errors(caplog)
    assert error.startswith("rate limiter misconfigured (policies-not-synced), refusing to start")
    assert limiter.failures == {"misconfigured": 1}
    limiter.close()


@PIPELINING
@pytest.mark.parametrize("fail_open", [True, False], ids=["open", "closed"])
@pytest.mark.parametrize("mode", ["verify", "missing", "overwrite"])
def test_a_policy_lost_at_run_time_answers_503_naming_it(
    server: Server, admin: redis.Redis, app_user: str, operator: str, mode: str,
    fail_open: bool, pipelining: bool, caplog: pytest.LogCaptureFixture,
) -> None:  # fmt: skip
    define_all(server, operator)
    app, limiter, _ = policy_app(server, app_user, mode, fail_open=fail_open,
                                 pipelining=pipelining)  # fmt: skip
    with caplog.at_level(logging.WARNING, LOG), TestClient(app) as c:
        assert c.get("/q").status_code == 200
        admin.execute_command("RL.POLICY", "DEL", PREFIX + "free")  # a Redis restarted empty
        admin.config_resetstat()
        for _ in range(3):  # each once: no loop, never failed open
            r = c.get("/q")
            assert r.status_code == 503 and "RateLimit" not in r.headers
        stats = {k.lower(): v for k, v in admin.info("commandstats").items()}.get(
            "cmdstat_rl.policy|set", {}
        )
        refused = int(stats.get("rejected_calls", 0))
        assert refused == (0 if mode == "verify" else 3) and not stats.get("calls")
        assert admin.execute_command("RL.POLICY", "GET", PREFIX + "free") is None
        define_all(server, operator)  # the fix: an operator defines it
        assert c.get("/q").status_code == 200
    (error,) = _errors(caplog)  # one per log_interval
    assert error.startswith("rate limiter misconfigured (policies-not-synced), answering 503")
    assert "tacl:free missing" in error and f"`{SET_FREE}`" in error
    assert ("NOPERM" in error) == (mode != "verify")
    assert "defined again" not in caplog.text
    assert limiter.failures == {"misconfigured": 3}
    limiter.close()


def test_serve_misconfigured_serves_a_lost_policys_calls(
    server: Server, admin: redis.Redis, app_user: str, operator: str,
    caplog: pytest.LogCaptureFixture,
) -> None:  # fmt: skip
    define_all(server, operator)
    app, limiter, _ = policy_app(server, app_user, "verify", serve_misconfigured=True)
    with caplog.at_level(logging.WARNING, LOG), TestClient(app) as c:
        admin.execute_command("RL.POLICY", "DEL", PREFIX + "free")
        r = c.get("/q")
        assert r.status_code == 200 and "RateLimit" not in r.headers
    (error,) = _errors(caplog)
    assert "serving without limits (serve_misconfigured=True)" in error and "tacl:free" in error
    limiter.close()

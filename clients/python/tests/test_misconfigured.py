"""A Redis that answers but cannot rate-limit (the module not loaded, an ACL
user without the RL.* commands, a key of another type) is a configuration
error, not an outage: the start-up check refuses to start, and at run time
every check answers 503 (the clients raise), logged at ERROR, whatever the
fail mode. Against real servers: one without the module, the module's own
server with an ACL user and a key holding a string, and a cluster whose
module is on one master of three."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import uuid
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from typing import Any

import pytest
import redis
import redis.asyncio
from fastapi import Depends, FastAPI
from fastapi.testclient import TestClient
from redis.asyncio.cluster import RedisCluster as AsyncRedisCluster
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff
from redis.cluster import RedisCluster
from redis.exceptions import AuthenticationError, ResponseError

from redis_ratelimit import (
    AsyncRateLimiter,
    ModuleNotLoaded,
    Policies,
    PolicySpec,
    RateLimiter,
    RateLimiterMisconfigured,
    RateLimitError,
)
from redis_ratelimit._breaker import failure_kind
from redis_ratelimit._core import misconfiguration
from redis_ratelimit.fastapi import Limiter, LimiterUnavailable, RateLimitMiddleware

from .conftest import Server, free_port

LOG = "redis_ratelimit"


def _app(limiter: Limiter, *, init: bool = True, **kw: Any) -> FastAPI:
    app = FastAPI(**kw)
    if init:
        limiter.init_app(app)

    @app.get("/q")
    @limiter.limited("100/minute")
    async def q() -> str:
        return "ok"

    return app


def _errors(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [r.getMessage() for r in caplog.records if r.levelno >= logging.ERROR]


def _outage_warnings(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [r.getMessage() for r in caplog.records if "unavailable" in r.getMessage()]


def _names_the_fix(text: str, where: str) -> None:
    assert "ratelimit module is not loaded" in text
    assert where in text
    assert "loadmodule /path/to/libratelimit.so" in text and "MODULE LOAD" in text


# ---------------------------------------------------------------- no module: the clients


def test_the_sync_client_checks_and_raises(plain_server: Server, server: Server) -> None:
    where = f"localhost:{plain_server.port}"
    rl = RateLimiter(redis.Redis(port=plain_server.port))
    with pytest.raises(ModuleNotLoaded) as e:
        rl.check_module()
    assert e.value.servers == (where,)
    _names_the_fix(str(e.value), where)
    with pytest.raises(ModuleNotLoaded) as e:
        rl.sliding("user:1", 10, "1m")
    assert isinstance(e.value, RateLimitError)  # what callers caught before
    assert e.value.key == "user:1" and e.value.reason == "module-not-loaded"
    assert e.value.message.startswith("ERR unknown command 'RL.SLIDING'")
    _names_the_fix(str(e.value), where)
    with pytest.raises(ModuleNotLoaded):
        rl.policy_list()
    assert RateLimiter(redis.Redis(port=server.port)).check_module() == [f"localhost:{server.port}"]


def test_the_async_client_checks_and_raises(plain_server: Server, server: Server) -> None:
    async def main() -> None:
        rl = AsyncRateLimiter(redis.asyncio.Redis(port=plain_server.port))
        with pytest.raises(ModuleNotLoaded) as e:
            await rl.check_module()
        _names_the_fix(str(e.value), f"localhost:{plain_server.port}")
        with pytest.raises(ModuleNotLoaded) as e:
            await rl.all({"{u}:a": PolicySpec("a", "1/minute").limit()})
        assert e.value.key == "{u}:a"
        with pytest.raises(ModuleNotLoaded):
            await Policies([PolicySpec("free", "100/minute")]).sync(rl)
        await rl.redis.aclose()
        good = AsyncRateLimiter(redis.asyncio.Redis(port=server.port))
        assert await good.check_module() == [f"localhost:{server.port}"]
        await good.redis.aclose()

    asyncio.run(main())


# ---------------------------------------------------------------- no module: FastAPI


@pytest.mark.parametrize("pipelining", [True, False], ids=["pipelined", "pool"])
def test_init_app_refuses_to_start(
    plain_server: Server, caplog: pytest.LogCaptureFixture, pipelining: bool
) -> None:
    started: list[bool] = []

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        started.append(True)
        yield

    limiter = Limiter(redis.asyncio.Redis(port=plain_server.port), pipelining=pipelining)
    app = _app(limiter, lifespan=lifespan)
    with (
        caplog.at_level(logging.WARNING, LOG),
        pytest.raises(ModuleNotLoaded) as e,
        TestClient(app),
    ):
        pass
    _names_the_fix(str(e.value), f"localhost:{plain_server.port}")
    assert started == []  # the app's own startup never ran
    (error,) = _errors(caplog)
    assert "refusing to start" in error
    limiter.close()


@pytest.mark.parametrize("pipelining", [True, False], ids=["pipelined", "pool"])
@pytest.mark.parametrize("fail_open", [True, False], ids=["open", "closed"])
def test_without_init_app_the_first_check_fails_loudly(
    plain_server: Server, caplog: pytest.LogCaptureFixture, fail_open: bool, pipelining: bool
) -> None:
    limiter = Limiter(redis.asyncio.Redis(port=plain_server.port), fail_open=fail_open,
                      pipelining=pipelining)  # fmt: skip
    app = _app(limiter, init=False)
    with caplog.at_level(logging.WARNING, LOG), TestClient(app) as c:
        for _ in range(7):
            r = c.get("/q")
            assert r.status_code == 503, r.text
            assert "RateLimit" not in r.headers
    (error,) = _errors(caplog)  # one ERROR per kind per log_interval, no outage warning
    assert error.startswith("rate limiter misconfigured (module-not-loaded), answering 503")
    _names_the_fix(error, f"localhost:{plain_server.port}")
    assert "'rl:{ip:testclient}:GET:/q:minute'" in error  # the key
    assert _outage_warnings(caplog) == []
    assert limiter.failures == {"misconfigured": 7}
    assert limiter.breaker is not None and limiter.breaker.state == "closed"  # Redis answers
    limiter.close()


def test_the_error_log_says_how_many_it_left_out(
    plain_server: Server, caplog: pytest.LogCaptureFixture
) -> None:
    limiter = Limiter(redis.asyncio.Redis(port=plain_server.port), log_interval=3600)
    app = _app(limiter, init=False)
    with caplog.at_level(logging.WARNING, LOG), TestClient(app) as c:
        assert [c.get("/q").status_code for _ in range(3)] == [503] * 3
        limiter.log_interval = 0
        assert c.get("/q").status_code == 503
    errors = _errors(caplog)
    assert len(errors) == 2 and errors[1].endswith("(2 more since the last report)")
    limiter.close()


def test_serve_misconfigured_is_an_explicit_opt_out(
    plain_server: Server, caplog: pytest.LogCaptureFixture
) -> None:
    limiter = Limiter(redis.asyncio.Redis(port=plain_server.port), serve_misconfigured=True)
    app = _app(limiter)
    with pytest.raises(ModuleNotLoaded), TestClient(app):
        pass  # the start-up check still refuses (init_app(check_server=False) to skip it)
    app = FastAPI()
    limiter.init_app(app, check_server=False)

    @app.get("/q", dependencies=[Depends(limiter.limit("1/minute"))])
    async def q() -> str:
        return "ok"

    caplog.clear()
    with caplog.at_level(logging.WARNING, LOG), TestClient(app) as c:
        assert [c.get("/q").status_code for _ in range(3)] == [200] * 3
    (error,) = _errors(caplog)
    assert "serving without limits (serve_misconfigured=True)" in error
    assert limiter.failures == {"misconfigured": 4}  # the start-up check's, then 3 checks
    limiter.close()


def test_the_middleware_and_a_concurrency_limit_answer_503(plain_server: Server) -> None:
    limiter = Limiter(redis.asyncio.Redis(port=plain_server.port))
    app = FastAPI()
    app.add_middleware(RateLimitMiddleware, limiter=limiter, limits="100/minute",
                       exempt=["/free"])  # fmt: skip

    @app.get("/free", dependencies=[Depends(limiter.concurrency(2))])
    async def free() -> str:
        return "ok"

    @app.get("/q")
    async def q() -> str:
        return "ok"

    with TestClient(app) as c:
        assert c.get("/q").status_code == 503
        assert c.get("/free").status_code == 503  # RL.ACQUIRE: the same
    assert limiter.failures == {"misconfigured": 2}
    limiter.close()


@pytest.mark.parametrize("fail_open", [True, False], ids=["open", "closed"])
def test_unreachable_at_start_up_keeps_the_fail_mode_and_is_checked_once_it_answers(
    tmp_path_factory: pytest.TempPathFactory, caplog: pytest.LogCaptureFixture, fail_open: bool
) -> None:
    port = free_port()  # nothing listens there yet
    limiter = Limiter(redis.asyncio.Redis(port=port), fail_open=fail_open, timeout=2,
                      breaker=False)  # fmt: skip
    app = _app(limiter)
    late: Server | None = None
    try:
        with caplog.at_level(logging.WARNING, LOG), TestClient(app) as c:  # starts
            assert "start-up check: Redis unavailable (unreachable" in caplog.text
            assert c.get("/q").status_code == (200 if fail_open else 503)
            assert limiter.failures == {"unreachable": 1}
            assert _errors(caplog) == []
            late = Server(tmp_path_factory.mktemp("late"), module=False, port=port)
            r = c.get("/q")  # its first answer: no module
            assert r.status_code == 503
            assert limiter.failures == {"unreachable": 1, "misconfigured": 1}
        (error,) = _errors(caplog)
        _names_the_fix(error, f"localhost:{port}")
    finally:
        limiter.close()
        if late is not None:
            late.stop()


def test_policies_sync_at_start_up_raises_not_unavailable(plain_server: Server) -> None:
    policies = Policies([PolicySpec("free", "100/minute")])
    limiter = Limiter(redis.asyncio.Redis(port=plain_server.port), policies=policies)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        with contextlib.suppress(LimiterUnavailable):  # what an app does for Redis down
            await limiter.sync_policies()
        yield

    app = FastAPI(lifespan=lifespan)
    limiter.init_app(app, check_server=False)
    with pytest.raises(ModuleNotLoaded) as e, TestClient(app):
        pass
    _names_the_fix(str(e.value), f"localhost:{plain_server.port}")
    limiter.close()


# ---------------------------------------------------------------- the module, but not for us


@pytest.fixture
def acl_user(server: Server) -> Iterator[str]:
    """A user who may do everything but run the RL.* decision commands;
    its password is "pw"."""
    name = f"rl-{uuid.uuid4().hex[:8]}"
    with redis.Redis(port=server.port) as admin:
        admin.execute_command("ACL", "SETUSER", name, "reset", "on", ">pw", "~*", "&*", "+@all",
                              "-rl.sliding", "-rl.fixed", "-rl.all", "-rl.acquire")  # fmt: skip
        yield name
        admin.execute_command("ACL", "DELUSER", name)


@pytest.mark.parametrize("pipelining", [True, False], ids=["pipelined", "pool"])
@pytest.mark.parametrize("fail_open", [True, False], ids=["open", "closed"])
def test_noperm_answers_503_in_each_fail_mode(
    server: Server, acl_user: str, caplog: pytest.LogCaptureFixture, fail_open: bool,
    pipelining: bool,
) -> None:  # fmt: skip
    client = redis.asyncio.Redis(port=server.port, username=acl_user, password="pw")
    limiter = Limiter(client, fail_open=fail_open, pipelining=pipelining)
    app = _app(limiter)
    with caplog.at_level(logging.WARNING, LOG), TestClient(app) as c:  # the module is there
        assert [c.get("/q").status_code for _ in range(2)] == [503, 503]
    (error,) = _errors(caplog)
    assert error.startswith("rate limiter misconfigured (no-permission), answering 503")
    assert "NOPERM" in error and "ACL SETUSER" in error and f"localhost:{server.port}" in error
    assert _outage_warnings(caplog) == []
    assert limiter.failures == {"misconfigured": 2}
    limiter.close()


def test_noperm_raises_from_the_sync_client(server: Server, acl_user: str) -> None:
    rl = RateLimiter(redis.Redis(port=server.port, username=acl_user, password="pw"))
    assert rl.check_module() == [f"localhost:{server.port}"]  # COMMAND INFO is allowed
    with pytest.raises(RateLimiterMisconfigured) as e:
        rl.fixed("user:1", 1, "1m")
    assert e.value.reason == "no-permission" and not isinstance(e.value, ModuleNotLoaded)
    assert e.value.message.startswith("NOPERM")


# ---------------------------------------------------------------- credentials refused


@pytest.mark.parametrize("pipelining", [True, False], ids=["pipelined", "pool"])
def test_a_wrong_password_refuses_to_start(
    server: Server, acl_user: str, caplog: pytest.LogCaptureFixture, pipelining: bool
) -> None:
    """WRONGPASS is the server answering (redis-py raises it as a
    ConnectionError): the app does not start, as without the module."""
    client = redis.asyncio.Redis(port=server.port, username=acl_user, password="not-pw")
    limiter = Limiter(client, pipelining=pipelining)
    with (
        caplog.at_level(logging.WARNING, LOG),
        pytest.raises(RateLimiterMisconfigured) as e,
        TestClient(_app(limiter)),
    ):
        pass
    assert e.value.reason == "not-authenticated"
    assert f"credentials are refused on localhost:{server.port}" in str(e.value)
    assert "username and password" in e.value.fix
    (error,) = _errors(caplog)
    assert "refusing to start" in error and "not-authenticated" in error
    assert _outage_warnings(caplog) == []
    limiter.close()


@pytest.mark.parametrize("pipelining", [True, False], ids=["pipelined", "pool-no-retry"])
@pytest.mark.parametrize("fail_open", [True, False], ids=["open", "closed"])
def test_a_wrong_password_answers_503_in_each_fail_mode(
    server: Server, acl_user: str, caplog: pytest.LogCaptureFixture, fail_open: bool,
    pipelining: bool,
) -> None:  # fmt: skip
    """Never failed open, and not an outage for the breaker. Through
    redis-py's pool with its default Retry the refusal comes after the
    retries, past the limiter's timeout (the README says so and how to
    avoid it: the client without retries, as here; the start-up check
    above catches it either way)."""
    client = redis.asyncio.Redis(port=server.port, username=acl_user, password="not-pw",
                                 retry=Retry(NoBackoff(), 0))  # fmt: skip
    limiter = Limiter(client, fail_open=fail_open, pipelining=pipelining)
    with caplog.at_level(logging.WARNING, LOG), TestClient(_app(limiter, init=False)) as c:
        assert [c.get("/q").status_code for _ in range(3)] == [503, 503, 503]
    (error,) = _errors(caplog)
    assert error.startswith("rate limiter misconfigured (not-authenticated), answering 503")
    assert _outage_warnings(caplog) == []
    assert limiter.failures == {"misconfigured": 3}
    assert limiter.breaker is not None and limiter.breaker.state == "closed"
    limiter.close()


def test_a_wrong_password_raises_from_the_clients(server: Server, acl_user: str) -> None:
    rl = RateLimiter(redis.Redis(port=server.port, username=acl_user, password="not-pw"))
    with pytest.raises(RateLimiterMisconfigured) as e:
        rl.fixed("user:1", 1, "1m")
    assert e.value.reason == "not-authenticated" and e.value.key == "user:1"

    async def main() -> None:
        client = redis.asyncio.Redis(port=server.port, username=acl_user, password="not-pw")
        with pytest.raises(RateLimiterMisconfigured) as e:
            await AsyncRateLimiter(client).fixed("user:1", 1, "1m")
        assert e.value.reason == "not-authenticated"
        await client.aclose()

    asyncio.run(main())


@pytest.mark.parametrize(
    "error",
    [
        AuthenticationError("Authentication required."),  # redis-py's NOAUTH
        ResponseError("NOAUTH Authentication required."),  # the pipelined connection's
        ResponseError("WRONGPASS invalid username-password pair or user is disabled."),
        ResponseError(
            "ERR AUTH <password> called without any password configured for the default user."
        ),
    ],
)
def test_refused_credentials_are_a_misconfiguration(error: Exception) -> None:
    assert misconfiguration(error) == "not-authenticated"
    assert failure_kind(error) == "misconfigured"


def test_a_user_without_command_info_starts_unchecked(
    server: Server, caplog: pytest.LogCaptureFixture
) -> None:
    name = f"rl-{uuid.uuid4().hex[:8]}"
    with redis.Redis(port=server.port) as admin:
        admin.execute_command("ACL", "SETUSER", name, "reset", "on", ">pw", "~*", "&*",
                              "+@all", "-command")  # fmt: skip
        try:
            client = redis.asyncio.Redis(port=server.port, username=name, password="pw")
            limiter = Limiter(client)
            app = _app(limiter)
            with caplog.at_level(logging.WARNING, LOG), TestClient(app) as c:
                assert "start-up check skipped" in caplog.text
                assert "+command|info" in caplog.text
                assert c.get("/q").status_code == 200  # its RL.* calls are allowed
            limiter.close()
        finally:
            admin.execute_command("ACL", "DELUSER", name)


@pytest.mark.parametrize("pipelining", [True, False], ids=["pipelined", "pool"])
@pytest.mark.parametrize("fail_open", [True, False], ids=["open", "closed"])
def test_a_key_of_another_type_answers_503_in_each_fail_mode(
    server: Server, sync_redis: redis.Redis, caplog: pytest.LogCaptureFixture, fail_open: bool,
    pipelining: bool,
) -> None:  # fmt: skip
    limiter = Limiter(redis.asyncio.Redis(port=server.port), fail_open=fail_open,
                      pipelining=pipelining, key=lambda request: "u1", deny_cache=0)  # fmt: skip
    app = FastAPI()
    limiter.init_app(app)

    @app.get("/q", dependencies=[Depends(limiter.limit("100/minute", scope="s"))])
    async def q() -> str:
        return "ok"

    sync_redis.set("rl:{u1}:s:minute", "a plain string")
    sync_redis.set("rl:{u1}:t:minute", "a plain string")
    with caplog.at_level(logging.WARNING, LOG), TestClient(app) as c:
        assert c.get("/q").status_code == 503
        sync_redis.delete("rl:{u1}:s:minute")
        sync_redis.execute_command("RL.TOKEN", "rl:{u1}:s:minute", 10, 1, "1m")  # another algorithm
        assert c.get("/q").status_code == 503
        sync_redis.delete("rl:{u1}:s:minute")
        assert c.get("/q").status_code == 200  # the key deleted: limited again
    (error,) = _errors(caplog)
    assert error.startswith("rate limiter misconfigured (wrong-type), answering 503")
    assert "'rl:{u1}:s:minute'" in error and "WRONGTYPE" in error and "DEL the key" in error
    assert limiter.failures == {"misconfigured": 2}
    limiter.close()


def test_a_key_of_another_type_raises_from_the_clients(
    server: Server, sync_redis: redis.Redis
) -> None:
    sync_redis.set("s", "x")
    with pytest.raises(RateLimiterMisconfigured) as e:
        RateLimiter(sync_redis).sliding("s", 1, "1m")
    assert e.value.reason == "wrong-type" and e.value.key == "s"
    sync_redis.execute_command("RL.TOKEN", "t", 10, 1, "1m")

    async def main() -> None:
        rl = AsyncRateLimiter(redis.asyncio.Redis(port=server.port))
        with pytest.raises(RateLimiterMisconfigured) as e:
            await rl.fixed("t", 1, "1m")
        assert e.value.reason == "wrong-type" and "holds a TOKEN limiter" in e.value.message
        await rl.redis.aclose()

    asyncio.run(main())


# ---------------------------------------------------------------- a cluster, one master with it


def _missing(servers: list[Server]) -> tuple[str, ...]:
    return tuple(f"127.0.0.1:{s.port}" for s in servers[1:])


def _key_on(rc: Any, port: int) -> str:
    return next(k for k in (f"k{i}" for i in range(1000))
                if rc.get_node_from_key(k).port == port)  # fmt: skip


def test_the_clients_check_every_master(partial_cluster: list[Server]) -> None:
    port = partial_cluster[0].port
    rc = RedisCluster(host="127.0.0.1", port=port)
    rl = RateLimiter(rc)
    with pytest.raises(ModuleNotLoaded) as e:
        rl.check_module()
    assert sorted(e.value.servers) == sorted(_missing(partial_cluster))
    with pytest.raises(ModuleNotLoaded) as e:
        rl.sliding(_key_on(rc, partial_cluster[2].port), 1, "1m")
    assert e.value.key is not None
    rc.close()

    async def main() -> None:
        arc = AsyncRedisCluster(host="127.0.0.1", port=port)
        with pytest.raises(ModuleNotLoaded) as e:
            await AsyncRateLimiter(arc).check_module()
        assert sorted(e.value.servers) == sorted(_missing(partial_cluster))
        await arc.aclose()

    asyncio.run(main())


def test_a_cluster_app_refuses_to_start_then_fails_loudly(
    partial_cluster: list[Server], caplog: pytest.LogCaptureFixture
) -> None:
    port = partial_cluster[0].port

    def limiter() -> Limiter:  # one per event loop: a test client's ends with it
        return Limiter(AsyncRedisCluster(host="127.0.0.1", port=port), timeout=5,
                       key=lambda request: request.headers["x-user"])  # fmt: skip

    with pytest.raises(ModuleNotLoaded) as e, TestClient(_app(limiter())):
        pass
    assert sorted(e.value.servers) == sorted(_missing(partial_cluster))
    rc = RedisCluster(host="127.0.0.1", port=port)
    home = {s.port: next(u for u in (f"u{i}" for i in range(1000)) if rc.get_node_from_key(
        f"rl:{{{u}}}:GET:/q:minute").port == s.port) for s in partial_cluster}  # fmt: skip
    rc.close()
    caplog.clear()
    # Keys of the masters without the module: 503. (redis-py may send even
    # the first master's to another node when its command table came from
    # one without the module: not asserted.)
    with caplog.at_level(logging.WARNING, LOG), TestClient(_app(limiter(), init=False)) as c:
        for s in partial_cluster[1:]:
            assert c.get("/q", headers={"x-user": home[s.port]}).status_code == 503
    (error,) = _errors(caplog)
    _names_the_fix(error, "on the Redis server")

"""Fixtures: a real redis-server with the module and a real uvicorn serving
the app, each on a free loopback port (never 6379), always stopped."""

from __future__ import annotations

import contextlib
import os
import pathlib
import sys

import httpx
import pytest
import redis
from fastapi.testclient import TestClient

EXAMPLE = pathlib.Path(__file__).resolve().parent.parent
ROOT = EXAMPLE.parent.parent

sys.path.insert(0, str(EXAMPLE))  # tests import app
# tests/pyserver.py: the redis-server helper of every Python suite here.
sys.path.insert(0, str(ROOT / "tests"))

import pyserver  # noqa: E402

# The apps run with the app's own defaults for the Redis pool and timeouts
# (RL_REDIS_*): those must never trip on a healthy Redis, bursts and a loaded
# machine included, and the tests check it. (The former 0.25 s timeout did:
# 47 of 100 concurrent requests passed a 20/minute limit after "Timeout
# connecting to server".) Tests of the timeouts and the breaker set their own.


class App(pyserver.App):
    """The example app under uvicorn (pyserver.App), configured by
    environment variables, as these tests use it."""

    def __init__(self, workdir: pathlib.Path, redis_url: str, **env: str):
        super().__init__(workdir, redis_url, folder=EXAMPLE, **env)
        self.prefix = env.get("RL_POLICY_PREFIX", "")

    def client(self, **kw) -> httpx.Client:
        return httpx.Client(base_url=self.base_url, timeout=10, **kw)

    def policy(self, name: str) -> str:
        """The name in Redis of one of this app's policies."""
        return self.prefix + name

    def log_text(self) -> str:
        return self.log.read_text()


@pytest.fixture(scope="session")
def redis_server(tmp_path_factory):
    server = pyserver.Server(tmp_path_factory.mktemp("redis"))
    yield server
    server.stop()


@pytest.fixture(scope="session")
def app(redis_server, tmp_path_factory):
    """The app with its default limits, except a small daily cap for the paid
    tier so that the tests can reach it, and orders refilling 1/hour instead
    of 1/second (still a burst of 10), so that no check depends on the next
    request coming within a second: at 1/second a unit came back after 1 s."""
    a = App(
        tmp_path_factory.mktemp("app"),
        redis_server.url,
        RL_PAID_DAILY="150/day",
        RL_ORDER_RATE="1/hour",
    )
    yield a
    a.stop()


@pytest.fixture
def db(redis_server):
    """The shared Redis' client (pyserver.Server.client), emptied before
    each test."""
    redis_server.client.flushall()
    return redis_server.client


@pytest.fixture
def client(app, db):
    with app.client() as c:
        yield c


@pytest.fixture
def start_app(tmp_path, request):
    """start_app(redis_url, **env) -> App; every app started is stopped.

    Policies are server state that FLUSHALL keeps: each test's apps define
    theirs under a prefix of their own (RL_POLICY_PREFIX, unless the test
    gives one), so that their settings neither meet the session app's
    policies nor outlive the test (they are deleted afterwards)."""
    started: list[tuple[App, str]] = []
    default_prefix = _test_prefix(request)

    def start(redis_url: str, **env: str) -> App:
        env.setdefault("RL_POLICY_PREFIX", default_prefix)
        started.append((App(tmp_path, redis_url, **env), redis_url))
        return started[-1][0]

    yield start
    for a, _ in started:
        a.stop()
    for url in {u for _, u in started}:
        _drop_policies(url, default_prefix)


def _test_prefix(request) -> str:
    """A policy prefix of this test's own (see start_app)."""
    return f"t{abs(hash(request.node.nodeid)) % 10**8}:"


def _drop_policies(url: str, prefix: str) -> None:
    """Deletes the policies named with `prefix` (what a test's apps defined)."""
    try:
        with redis.Redis.from_url(url, socket_timeout=5) as c:
            for name in c.execute_command("RL.POLICY", "LIST"):
                if name.decode().startswith(prefix):
                    c.execute_command("RL.POLICY", "DEL", name)
    except redis.RedisError:
        pass  # a server the test stopped


@pytest.fixture
def in_process_app(redis_server, db, monkeypatch, request):
    """in_process_app(**env) -> a context of (app, TestClient): the app made
    by create_app() in this process (so that a test can reach its limiter,
    e.g. to attach the package's test clock), on the shared Redis,
    configured by the settings given and defaults otherwise; its startup
    and shutdown run on entering and leaving. Its policies are named under
    a prefix of the test's own and deleted afterwards, as start_app's."""
    import app as example

    prefix = _test_prefix(request)

    @contextlib.contextmanager
    def start(**env: str):
        for name in [k for k in os.environ if k.startswith(("RL_", "OPS_"))]:
            monkeypatch.delenv(name)
        for name, value in {"REDIS_URL": redis_server.url, "RL_POLICY_PREFIX": prefix,
                            **env}.items():  # fmt: skip
            monkeypatch.setenv(name, value)
        try:
            with TestClient(example.create_app()) as client:
                yield client.app, client
        finally:
            _drop_policies(redis_server.url, prefix)

    return start


@pytest.fixture
def own_redis(tmp_path):
    """A redis-server for this test alone (tests that stop it)."""
    server = pyserver.Server(tmp_path)
    yield server
    server.stop()

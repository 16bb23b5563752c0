"""The app's settings (environment variables) and its OpenAPI document,
without a server: create_app() checks every setting before it runs."""

from __future__ import annotations

import re

import pytest
from fastapi.testclient import TestClient


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
        ("RL_PAID_MONTH_OFFSET", "+5:30", "RL_PAID_MONTH_OFFSET='+5:30': bad offset"),
        ("RL_ANON_RATE", "100/fortnight", "policy 'free': bad rate '100/fortnight'"),
        ("RL_PAID_MONTHLY", "3/month;1/day", "policy 'paid-monthly'"),
    ],
)
def test_bad_settings_stop_the_app(monkeypatch, name, value, message):
    import app

    monkeypatch.setenv(name, value)
    with pytest.raises(ValueError, match=re.escape(message)):
        app.create_app()


def test_docs_have_a_bearer_scheme_and_the_limits_responses(monkeypatch):
    # /docs (Swagger UI) reads this document: the HTTP Bearer scheme puts an
    # Authorize button there, and every route sends the key it is given.
    import app

    monkeypatch.setenv("REDIS_URL", "redis://127.0.0.1:1")  # never asked here
    schema = TestClient(app.create_app()).get("/openapi.json").json()
    schemes = schema["components"]["securitySchemes"]
    assert schemes == {
        "HTTPBearer": {
            "type": "http",
            "scheme": "bearer",
            "description": "An API key, e.g. demo-key-alice",
        }
    }
    operations = {
        (path, method): op for path, ops in schema["paths"].items() for method, op in ops.items()
    }
    assert set(operations) == {
        ("/quotes/{symbol}", "get"), ("/login", "post"), ("/orders", "post"),
        ("/limits", "get"),
    }  # fmt: skip
    for op in operations.values():
        assert op["security"] == [{"HTTPBearer": []}]
    # The limited routes document the 429 with Retry-After and the
    # rate-limit headers; /limits its 503.
    for key in [("/quotes/{symbol}", "get"), ("/login", "post"), ("/orders", "post")]:
        too_many = operations[key]["responses"]["429"]
        assert set(too_many["headers"]) >= {
            "Retry-After", "RateLimit-Policy", "RateLimit",
            "X-RateLimit-Limit", "X-RateLimit-Remaining", "X-RateLimit-Reset",
        }  # fmt: skip
    assert "503" in operations[("/limits", "get")]["responses"]


def test_failing_closed_documents_the_503(monkeypatch):
    import app

    monkeypatch.setenv("REDIS_URL", "redis://127.0.0.1:1")
    monkeypatch.setenv("RL_FAIL_MODE", "closed")
    schema = TestClient(app.create_app()).get("/openapi.json").json()
    for path, method in [("/quotes/{symbol}", "get"), ("/login", "post"), ("/orders", "post")]:
        assert "503" in schema["paths"][path][method]["responses"]

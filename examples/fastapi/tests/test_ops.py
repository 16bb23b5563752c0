"""The operators' pages (OPS_TOKEN): the live page and /ops/metrics, under an
attack on a real uvicorn and redis-server. The attack, through a trusted
proxy (RL_TRUSTED_PROXIES=1): one address stuffing credentials at /login,
one guessing API keys at /quotes, while alice and a few anonymous readers
use the API as they should."""

from __future__ import annotations

import base64
import re
import shutil
import struct
import subprocess
import threading
from pathlib import Path

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

ROOT = Path(__file__).resolve().parents[3]

TOKEN = "ops-demo-secret"
OPS = {"Authorization": f"Bearer {TOKEN}"}
STUFFER = "203.0.113.66"
GUESSER = "198.51.100.23"
CHROMIUM = shutil.which("chromium")
OUT = ROOT / "tmp" / "dashboard"


def attack(c: httpx.Client, rounds: int, start: int = 0) -> None:
    """`rounds` of the attack and of the normal traffic (bounded); the
    anonymous readers are 250 addresses taking turns, each well within
    its limit."""
    for i in range(start, start + rounds):
        c.post("/login", json={"username": "alice", "password": f"guess-{i}"},
               headers={"X-Forwarded-For": STUFFER})  # fmt: skip
        c.get("/quotes/ACME", headers={"X-Forwarded-For": GUESSER,
                                       "Authorization": f"Bearer guessed-{i}"})  # fmt: skip
        c.get("/quotes/ACME", headers={"X-Forwarded-For": "192.0.2.10",
                                       "Authorization": "Bearer demo-key-alice"})  # fmt: skip
        c.get("/quotes/INTC", headers={"X-Forwarded-For": f"192.0.2.{i % 250}"})


def metrics(c: httpx.Client) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    r = c.get("/ops/metrics/", headers=OPS)
    assert r.status_code == 200, r.text
    return {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for family in text_string_to_metric_families(r.text)
        for s in family.samples
    }


def test_without_ops_token_there_are_no_operator_pages(app, client):
    for path in ("/ops/ratelimit/", "/ops/ratelimit/data.json", "/ops/metrics/"):
        assert client.get(path, headers=OPS).status_code == 404, path


def test_operators_see_who_is_denied(redis_server, db, start_app):
    a = start_app(redis_server.url, OPS_TOKEN=TOKEN, RL_TRUSTED_PROXIES="1",
                  RL_ANON_RATE="30/minute")  # fmt: skip
    with a.client() as c:
        for path in ("/ops/ratelimit/", "/ops/ratelimit/data.json", "/ops/metrics/"):
            r = c.get(path)
            assert r.status_code == 401 and "WWW-Authenticate" in r.headers, path
            assert c.get(path, headers={"Authorization": "Bearer nope"}).status_code == 401
            assert c.get(path, headers={"Authorization": "Bearer demo-key-alice"}).status_code \
                == 401  # an API key is not an operator's  # fmt: skip
        attack(c, 40)
        data = c.get("/ops/ratelimit/data.json", headers=OPS).json()
        basic = "Basic " + base64.b64encode(f"ops:{TOKEN}".encode()).decode()
        assert c.get("/ops/ratelimit/", headers={"Authorization": basic}).status_code == 200
        m = metrics(c)
    assert data["errors"] == [] and data["limiter"]["breaker"] == "closed"
    # The two attackers lead RL.TOP: the stuffer in the login penalty box
    # (35 of its 40 attempts denied), the guesser past the anonymous limit.
    keys = [(e["key"], e["policy"], e["denials"]) for e in data["top"]["keys"]]
    assert STUFFER in keys[0][0] and keys[0][1] == a.policy("login") and keys[0][2] == 35, keys
    assert GUESSER in keys[1][0] and keys[1][1] == a.policy("free") and keys[1][2] == 10, keys
    assert not any("192.0.2." in k for k, _, _ in keys), keys  # the well-behaved: never denied
    # The policies' counters, from INFO ratelimit (every master).
    login = data["info"]["policies"][a.policy("login")]
    assert (login["allowed"], login["denied"]) == (5, 35)
    # /ops/metrics: the decisions per rule as the app saw them.
    def outcome(rule: str, what: str) -> float:
        return m[("redis_ratelimit_decisions_total", (("outcome", what), ("rule", rule)))]

    assert outcome("auth", "allowed") == 5
    assert outcome("auth", "denied") + outcome("auth", "denied_cache") == 35
    assert outcome("quotes", "denied") + outcome("quotes", "denied_cache") == 10
    assert m[("redis_ratelimit_breaker_state", (("state", "closed"),))] == 1
    assert m[("redis_ratelimit_redis_call_duration_seconds_count", ())] > 0


def test_the_page_under_attack_in_headless_chromium(redis_server, db, start_app):
    """The live page as an operator opens it (the token as the password),
    while the attack goes on; a screenshot in tmp/dashboard/attack.png."""
    if CHROMIUM is None:  # test.sh installs it
        pytest.skip("chromium not installed")
    a = start_app(redis_server.url, OPS_TOKEN=TOKEN, RL_TRUSTED_PROXIES="1",
                  RL_ANON_RATE="30/minute")  # fmt: skip
    stop = threading.Event()

    def load() -> None:  # bounded: stops when asked, or after 3,000 rounds
        with a.client() as c:
            for i in range(3000):
                if stop.is_set():
                    return
                attack(c, 1, i)

    loader = threading.Thread(target=load, daemon=True)
    loader.start()
    OUT.mkdir(parents=True, exist_ok=True)
    url = a.base_url.replace("://", f"://ops:{TOKEN}@") + "/ops/ratelimit/?interval=400"
    shot = OUT / "attack.png"
    shot.unlink(missing_ok=True)

    def chromium(*args: str) -> str:
        return subprocess.run(
            [CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu", "--hide-scrollbars",
             "--no-first-run", "--disable-extensions", "--mute-audio",
             f"--user-data-dir={OUT / 'profile-example'}", "--virtual-time-budget=8000", *args,
             url],
            capture_output=True, text=True, timeout=120, check=True,
        ).stdout  # fmt: skip

    try:
        dom = chromium("--dump-dom")
        chromium("--window-size=1400,1500", f"--screenshot={shot}")
    finally:
        stop.set()
        loader.join(10)
    samples = re.search(r'data-samples="(\d+)"', dom)
    assert samples and int(samples.group(1)) >= 5, dom[-2000:]
    top = dom[dom.index('id="top"') : dom.index('id="shadow"')]
    assert STUFFER in top and GUESSER in top and "192.0.2." not in top
    assert a.policy("login") in dom[dom.index('id="policies"') : dom.index('id="top"')]
    png = Path(shot).read_bytes()
    assert png[:8] == b"\x89PNG\r\n\x1a\n" and struct.unpack(">II", png[16:24]) == (1400, 1500)

"""The dashboard's page in a headless Chromium (Debian's chromium, which
check.sh installs), against an app served by uvicorn under generated load:
an attacker hammering one API key, a few well-behaved clients, a
scraper on a policy tier kept in Redis, a SHADOW limit being trialled.
The server is the test's own, so that the page shows this traffic only.
The page's DOM is checked once drawn, and a screenshot is written to
tmp/dashboard/dashboard.png.

Chromium runs with a virtual-time budget: its timers (the page polls every
`interval` ms) run as fast as the page's fetches answer, so that a few
seconds of wall time hold a dozen samples; the rates stay right since the
page computes them from the samples' own timestamps."""

from __future__ import annotations

import re
import shutil
import struct
import subprocess
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
import redis.asyncio
import uvicorn
from fastapi import Depends, FastAPI, Request
from prometheus_client import CollectorRegistry

from redis_ratelimit import Policies, PolicySpec
from redis_ratelimit.fastapi import Limiter, token_check

from .conftest import Server, free_port

ROOT = Path(__file__).resolve().parents[3]
OUT = ROOT / "tmp" / "dashboard"
CHROMIUM = shutil.which("chromium")
TOKEN = "ops-s3cret"


@pytest.fixture
def served(tmp_path: Path) -> Iterator[str]:
    """The app under load: its base URL, while load runs."""
    server = Server(tmp_path)
    registry = CollectorRegistry()
    app = FastAPI()

    def client(request: Request) -> str | None:  # readable names, for the page
        return request.headers.get("x-client")

    tiers = Policies([PolicySpec("scrapers", "5/second", algorithm="sliding")])
    limiter = Limiter(redis.asyncio.Redis(port=server.port), key=client, metrics=registry,
                      policies=tiers)  # fmt: skip
    limiter.init_app(app)
    api = limiter.limit("10/second", algorithm="token", scope="browser-api")
    trial = limiter.limit("20/minute", algorithm="token", scope="browser-trial", shadow=True)
    feed = limiter.limit("policy:scrapers", scope="browser-feed")

    @app.get("/api", dependencies=[Depends(api), Depends(trial)])
    async def endpoint() -> str:
        return "ok"

    @app.get("/feed", dependencies=[Depends(feed)])
    async def feed_endpoint() -> str:
        return "ok"

    from redis_ratelimit.fastapi.dashboard import dashboard

    # Behind a shared secret: the browser is given it in the URL, and sends
    # it with the page's own fetches of data.json (the same realm).
    operators = token_check(TOKEN)
    app.mount("/ratelimit", dashboard(limiter, authorize=operators))
    assert limiter.metrics is not None
    app.mount("/metrics", limiter.metrics.app(authorize=operators))
    port = free_port()
    uv = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning",
                                       lifespan="on"))  # fmt: skip
    serving = threading.Thread(target=uv.run, daemon=True)
    serving.start()
    deadline = time.monotonic() + 30
    while not uv.started:
        assert time.monotonic() < deadline and serving.is_alive(), "uvicorn did not start"
        time.sleep(0.05)
    base = f"http://127.0.0.1:{port}"
    assert httpx.get(f"{base}/ratelimit/data.json").status_code == 401
    stop = threading.Event()

    def load() -> None:  # bounded: stops when asked, or after 20,000 requests
        with httpx.Client(base_url=base, timeout=5) as c:
            for i in range(20_000):
                if stop.is_set():
                    return
                who = "attacker-7f3a" if i % 3 else f"client-{i % 5}"
                c.get("/api", headers={"X-Client": who})
                if i % 7 == 0:
                    c.get("/api", headers={"X-Client": "scraper-02"})
                if i % 2 == 0:
                    c.get("/feed", headers={"X-Client": f"scraper-{i % 4:02}"})

    loader = threading.Thread(target=load, daemon=True)
    loader.start()
    time.sleep(0.5)  # some traffic before the first sample
    try:
        yield base
    finally:
        stop.set()
        loader.join(10)
        uv.should_exit = True
        serving.join(10)
        server.stop()


def chromium(*args: str) -> subprocess.CompletedProcess[str]:
    assert CHROMIUM is not None
    return subprocess.run(
        [CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu", "--hide-scrollbars",
         "--no-first-run", "--disable-extensions", "--mute-audio",
         f"--user-data-dir={OUT / 'profile'}", *args],
        capture_output=True, text=True, timeout=120, check=True,
    )  # fmt: skip


@pytest.mark.skipif(CHROMIUM is None, reason="chromium not installed (check.sh installs it)")
def test_page_in_headless_chromium(served: str) -> None:
    OUT.mkdir(parents=True, exist_ok=True)
    url = f"{served}/ratelimit/?interval=400".replace("://", f"://operator:{TOKEN}@")
    budget = "--virtual-time-budget=8000"  # about 20 samples
    dom = chromium(budget, "--dump-dom", url).stdout
    samples = int(re.search(r'data-samples="(\d+)"', dom).group(1))  # type: ignore[union-attr]
    assert samples >= 5, dom[-2000:]
    # Charts drawn: a line per series for each algorithm and policy that
    # has calls, bars for the identities denied, nothing failed.
    assert dom.count("<polyline") >= 6
    assert "attacker-7f3a" in dom and "breaker: closed" in dom
    policies = dom[dom.index('id="policies"') : dom.index('id="top"')]
    assert "scrapers /s" in policies and "<polyline" in policies  # the tier, by its name
    assert re.search(r'id="errors"[^>]*></span>', dom), "the page shows an error"
    top = dom[dom.index('id="top"') : dom.index('id="shadow"')]
    assert top.count("<rect") >= 1 and "attacker-7f3a" in top
    shadow = dom[dom.index('id="shadow"') :]
    assert "browser-trial" in shadow  # the SHADOW token bucket, hammered too
    shot = OUT / "dashboard.png"
    shot.unlink(missing_ok=True)
    chromium(budget, "--window-size=1400,1000", f"--screenshot={shot}", url)
    png = shot.read_bytes()
    assert png[:8] == b"\x89PNG\r\n\x1a\n"
    assert struct.unpack(">II", png[16:24]) == (1400, 1000)
    assert len(png) > 30_000  # charts, not a blank page

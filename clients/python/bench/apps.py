"""The apps the benchmark serves (one per uvicorn process), chosen by
environment variables set by bench.py:

BENCH_VARIANT    unlimited | noop-dep | ours | ours-deco | ours-mw | ours-redispy | slowapi |
                 fastapi-limiter (ours: the dependency; ours-deco: the decorator,
                 @limiter.limited; ours-mw: the middleware; ours-redispy:
                 the dependency through redis-py's pool, Limiter(pipelining=False);
                 noop-dep: a dependency doing nothing, FastAPI's own cost, for micro.py;
                 yield-0, ping: the unlimited endpoint waiting once, see waiting())
BENCH_REDIS_URL  redis://127.0.0.1:<port>
BENCH_LIMIT      the limit per minute of GET /limited (one identity: the
                 load generator's address)
BENCH_PARSER     python (default) | hiredis: redis-py's reply parser
BENCH_GC_FREEZE  1: gc.freeze() after building any variant's app
BENCH_NO_FREEZE  1: ours without init_app's gc.freeze() after startup
BENCH_GC_THRESHOLD  N: gc.set_threshold(N) (the young generation) for any variant
BENCH_GC_STATS   1: print the full collections' pauses at exit (all: every one)

Every variant serves the same endpoint body; only the limiting differs.
"""

from __future__ import annotations

import os
import sys
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

if os.environ.get("BENCH_PARSER", "python") != "hiredis":
    sys.modules["hiredis"] = None  # type: ignore[assignment]  # redis-py's pure Python parser

from fastapi import Depends, FastAPI, Request, Response

VARIANT = os.environ.get("BENCH_VARIANT", "unlimited")
URL = os.environ.get("BENCH_REDIS_URL", "redis://127.0.0.1:6380")
LIMIT = int(os.environ.get("BENCH_LIMIT", "100"))
BODY = {"ok": True}


def unlimited() -> FastAPI:
    app = FastAPI()

    @app.get("/limited")
    async def limited() -> dict[str, bool]:
        return BODY

    return app


def waiting(redis_call: bool) -> FastAPI:
    """The unlimited endpoint, waiting once per request as a limited one
    does: for a future resolved by the event loop's next iteration
    (yield-0: what suspending and resuming a request costs), or for a PING
    on the limiter's pipelined connection (ping: that plus Redis's round
    trip, without the limiter's own work)."""
    import asyncio

    from redis_ratelimit._fast import FastConnection, encode

    app = FastAPI()
    conn = FastConnection(host="127.0.0.1", port=int(URL.rsplit(":", 1)[1]))
    ping = encode(["PING"])

    async def wait() -> None:
        if redis_call:
            await conn.send(ping)
        else:
            loop = asyncio.get_running_loop()
            fut = loop.create_future()
            loop.call_soon(fut.set_result, None)
            await fut

    @app.get("/limited")
    async def limited() -> dict[str, bool]:
        await wait()
        return BODY

    return app


def noop_dependency() -> FastAPI:
    """FastAPI's own cost of a dependency shaped like the limiter's
    (request and response, async), which does nothing (bench/micro.py)."""

    async def noop(request: Request, response: Response) -> None:
        return None

    app = FastAPI()

    @app.get("/limited", dependencies=[Depends(noop)])
    async def limited() -> dict[str, bool]:
        return BODY

    return app


def ours(middleware: bool, pipelining: bool = True, decorator: bool = False) -> FastAPI:
    from redis_ratelimit import async_redis
    from redis_ratelimit.fastapi import Limiter, RateLimitMiddleware

    limiter = Limiter(async_redis(URL), pipelining=pipelining)
    rule = f"{LIMIT}/minute"
    app = FastAPI()
    # init_app freezes the heap after startup (BENCH_NO_FREEZE=1: it does not)
    limiter.init_app(app, freeze_gc=not os.environ.get("BENCH_NO_FREEZE"))
    if middleware:
        app.add_middleware(RateLimitMiddleware, limiter=limiter, limits=rule, algorithm="fixed",
                           exempt=["/ping"])  # fmt: skip
        deps: list[Any] = []
    else:
        deps = [Depends(limiter.limit(rule, algorithm="fixed"))]

    if decorator:

        @app.get("/limited")
        @limiter.limited(rule, algorithm="fixed")
        async def decorated() -> dict[str, bool]:
            return BODY

        return app

    @app.get("/limited", dependencies=deps)
    async def limited() -> dict[str, bool]:
        return BODY

    return app


def slowapi() -> FastAPI:
    from slowapi import Limiter, _rate_limit_exceeded_handler
    from slowapi.errors import RateLimitExceeded
    from slowapi.util import get_remote_address

    limiter = Limiter(key_func=get_remote_address, storage_uri=URL, strategy="fixed-window")
    app = FastAPI()
    app.state.limiter = limiter
    app.add_exception_handler(RateLimitExceeded, _rate_limit_exceeded_handler)  # type: ignore[arg-type]

    @app.get("/limited")
    @limiter.limit(f"{LIMIT}/minute")
    async def limited(request: Request) -> dict[str, bool]:
        return BODY

    return app


def fastapi_limiter() -> FastAPI:
    from fastapi_limiter.depends import RateLimiter
    from pyrate_limiter import Duration, Limiter, Rate
    from pyrate_limiter.buckets.redis_bucket import RedisBucket
    from redis.asyncio import Redis

    dep = RateLimiter(limiter=None)  # type: ignore[arg-type]  # the limiter needs the loop: lifespan

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        redis = Redis.from_url(URL)
        bucket = await RedisBucket.init([Rate(LIMIT, Duration.MINUTE)], redis, "bench")
        dep.limiter = Limiter(bucket)
        yield
        await redis.aclose()

    app = FastAPI(lifespan=lifespan)

    @app.get("/limited", dependencies=[Depends(dep)])
    async def limited() -> dict[str, bool]:
        return BODY

    return app


def build() -> FastAPI:
    if VARIANT == "unlimited":
        app = unlimited()
    elif VARIANT in ("ours", "ours-mw"):
        app = ours(VARIANT == "ours-mw")
    elif VARIANT == "ours-deco":
        app = ours(False, decorator=True)
    elif VARIANT == "noop-dep":
        app = noop_dependency()
    elif VARIANT in ("yield-0", "ping"):
        app = waiting(VARIANT == "ping")
    elif VARIANT == "ours-redispy":
        app = ours(False, pipelining=False)
    elif VARIANT == "slowapi":
        app = slowapi()
    elif VARIANT == "fastapi-limiter":
        app = fastapi_limiter()
    else:
        raise SystemExit(f"unknown BENCH_VARIANT {VARIANT!r}")

    @app.get("/ping")
    async def ping() -> str:
        return "pong"

    return app


app = build()

if os.environ.get("BENCH_GC_FREEZE"):  # startup's objects out of the collector's way
    import gc

    gc.freeze()

if os.environ.get("BENCH_GC_THRESHOLD"):  # the young generation's size, for any variant
    import gc

    gc.set_threshold(int(os.environ["BENCH_GC_THRESHOLD"]), *gc.get_threshold()[1:])

if os.environ.get("BENCH_GC_STATS"):  # how long the garbage collector pauses
    import atexit
    import gc
    import time

    pauses: list[float] = []
    started = [0.0]

    def _gc(phase: str, info: dict[str, Any]) -> None:
        if phase == "start":
            started[0] = time.perf_counter()
        elif info["generation"] == 2 or os.environ.get("BENCH_GC_STATS") == "all":
            pauses.append((time.perf_counter() - started[0]) * 1000)

    gc.callbacks.append(_gc)

    @atexit.register
    def _report() -> None:
        pauses.sort()
        print(f"gc pauses: {len(pauses)}, max {max(pauses, default=0):.1f} ms, "
              f"total {sum(pauses):.0f} ms", file=sys.stderr)  # fmt: skip

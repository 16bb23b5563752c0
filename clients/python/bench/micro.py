"""In-process cost of a request: the ASGI app called directly (no HTTP
server, no sockets but Redis), batches of concurrent requests, wall time per
request. For finding where the time goes between two builds of the package,
without the noise of a load generator:

    BENCH_VARIANT=ours BENCH_REDIS_URL=redis://127.0.0.1:PORT \\
        python bench/micro.py [requests] [concurrency] [--profile] [--limiter-only]

--limiter-only: RateLimit.hit() alone, without FastAPI (the CPU of a check).
"""

from __future__ import annotations

import asyncio
import gc
import os
import sys
import time
from typing import Any

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
os.environ.setdefault("BENCH_LIMIT", str(10**12))

import apps

SCOPE: dict[str, Any] = {
    "type": "http", "asgi": {"version": "3.0"}, "http_version": "1.1", "method": "GET",
    "scheme": "http", "path": "/limited", "raw_path": b"/limited", "query_string": b"",
    "root_path": "", "headers": [(b"host", b"bench")], "client": ("127.0.0.1", 5000),
    "server": ("127.0.0.1", 8000),
}  # fmt: skip


async def one(app: Any) -> int:
    status = 0

    async def receive() -> dict[str, Any]:
        return {"type": "http.request", "body": b"", "more_body": False}

    async def send(message: dict[str, Any]) -> None:
        nonlocal status
        if message["type"] == "http.response.start":
            status = message["status"]

    await app(dict(SCOPE, state={}), receive, send)
    return status


async def main(n: int, c: int) -> float:
    app = apps.app
    async with app.router.lifespan_context(app):
        for _ in range(200):
            assert await one(app) == 200
        gc.collect()
        gc.freeze()
        t0 = time.process_time()  # this process's CPU: less noise from neighbours
        done = 0
        while done < n:
            statuses = await asyncio.gather(*(one(app) for _ in range(c)))
            assert all(s == 200 for s in statuses), statuses
            done += c
        return (time.process_time() - t0) / done * 1e6


async def limiter_only(n: int, c: int) -> float:
    import redis.asyncio
    from starlette.requests import Request

    from redis_ratelimit.fastapi import Limiter

    limiter = Limiter(redis.asyncio.Redis.from_url(os.environ["BENCH_REDIS_URL"]))
    limit = limiter.limit(f"{10**12}/minute", algorithm="fixed")

    async def hit() -> None:
        await limit.hit(Request(dict(SCOPE, state={})))

    for _ in range(10):
        await asyncio.gather(*(hit() for _ in range(c)))
    gc.collect()
    gc.freeze()
    t0 = time.process_time()
    for _ in range(n // c):
        await asyncio.gather(*(hit() for _ in range(c)))
    us = (time.process_time() - t0) / (n // c * c) * 1e6
    limiter.close()
    return us


if __name__ == "__main__":
    args = [a for a in sys.argv[1:] if not a.startswith("--")]
    n = int(args[0]) if args else 20000
    c = int(args[1]) if len(args) > 1 else 50
    if "--limiter-only" in sys.argv:
        print(f"RateLimit.hit: {asyncio.run(limiter_only(n, c)):.1f} us CPU/check")
        sys.exit()
    if "--profile" in sys.argv:
        import cProfile
        import pstats

        prof = cProfile.Profile()
        prof.enable()
        us = asyncio.run(main(n, c))
        prof.disable()
        pstats.Stats(prof).sort_stats("tottime").print_stats(30)
    else:
        us = asyncio.run(main(n, c))
    print(f"{os.environ.get('BENCH_VARIANT')}: {us:.1f} us CPU/request")

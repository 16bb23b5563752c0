"""Runs one README snippet (scripts/docs.d/docs.py calls it, a process per
snippet) against the server on $DOCS_REDIS_PORT: the port 6379 written in
the snippet, and redis-py's default port, mean that server, so a snippet
reads as it would be used and never reaches a Redis of the machine's.

A snippet that leaves a FastAPI `app` then gets one request on each of its
routes, inside the app's lifespan: no answer may be a 5xx, and the module
must have been called (a limiter failing open on a Redis it can't reach
would pass silently otherwise).
"""

from __future__ import annotations

import inspect
import os
import pathlib
import re
import runpy
import sys
import tempfile
from typing import Any

import redis
import redis.asyncio

PORT = int(os.environ["DOCS_REDIS_PORT"])


def default_port_is_ours(cls: Any) -> None:
    init: Any = inspect.unwrap(cls.__init__)  # under redis-py's deprecation wrappers
    if init.__defaults__:
        init.__defaults__ = tuple(PORT if d == 6379 else d for d in init.__defaults__)
    if init.__kwdefaults__ and init.__kwdefaults__.get("port") == 6379:
        init.__kwdefaults__["port"] = PORT
    if 6379 in (inspect.signature(init).parameters["port"].default,):
        raise SystemExit(f"could not change {cls.__qualname__}'s default port")


def rl_calls() -> int:
    with redis.Redis(port=PORT) as c:
        stats = c.info("commandstats")
    return sum(v["calls"] for k, v in stats.items() if k.lower().startswith("cmdstat_rl."))


def smoke(app: Any) -> None:
    import warnings

    from fastapi import FastAPI
    from fastapi.routing import APIRoute

    with warnings.catch_warnings():  # starlette's about httpx: not the snippet's
        warnings.simplefilter("ignore", DeprecationWarning)
        from fastapi.testclient import TestClient

    if not isinstance(app, FastAPI):
        return
    routes = [r for r in app.routes if isinstance(r, APIRoute)]
    if not routes:
        return
    before = rl_calls()
    with TestClient(app, raise_server_exceptions=False) as client:
        for route in routes:
            path = re.sub(r"\{[^}]*\}", "ACME", route.path)
            for method in sorted(route.methods or ()):
                r = client.request(method, path, json={})
                if r.status_code >= 500:
                    raise SystemExit(f"{method} {path} answered {r.status_code}: {r.text}")
                print(f"{method} {path}: {r.status_code}", dict(r.headers))
    if rl_calls() == before:
        raise SystemExit(f"requests to {[r.path for r in routes]} made no RL.* call")


def main() -> None:
    path = pathlib.Path(sys.argv[1])
    default_port_is_ours(redis.Redis)
    default_port_is_ours(redis.asyncio.Redis)
    source = re.sub(r"\b6379\b", str(PORT), path.read_text())
    with tempfile.NamedTemporaryFile("w", suffix=".py", dir=path.parent, delete=False) as f:
        f.write(source)
    try:
        ns = runpy.run_path(f.name, run_name="__main__")
    finally:
        os.unlink(f.name)
    if "app" in ns:
        smoke(ns["app"])


if __name__ == "__main__":
    main()

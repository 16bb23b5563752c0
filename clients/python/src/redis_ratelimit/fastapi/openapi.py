"""The 429 and 503 responses in the app's OpenAPI schema."""

from __future__ import annotations

import logging
from collections.abc import Iterable
from typing import TYPE_CHECKING, Any

from .concurrency import ConcurrencyLimit
from .rules import (
    _RULES_ATTR,
    RateLimit,
)

log = logging.getLogger("redis_ratelimit")

if TYPE_CHECKING:
    from .limiter import Limiter


_HEADER_DOCS = {
    "RateLimit-Policy": "The quotas: name, q (the limit or bucket capacity), w (window, s)",
    "RateLimit": "Per quota: r (remaining) and t (seconds until reset)",
    "X-RateLimit-Limit": "The tightest limit",
    "X-RateLimit-Remaining": "What can still be spent under it",
    "X-RateLimit-Reset": "Seconds until it resets",
}


def _header_schema(names: Iterable[str]) -> dict[str, Any]:
    return {n: {"description": _HEADER_DOCS[n], "schema": {"type": "string"}} for n in names}


def openapi_responses(limiter: Limiter) -> dict[int | str, dict[str, Any]]:
    """The 429 and 503 responses of a limited route, for FastAPI's
    `responses=` (init_app adds them by itself)."""
    style = limiter.headers
    names = [n for n in _HEADER_DOCS if style == "both" or
             (style == "ietf") == (not n.startswith("X-"))] if style else []  # fmt: skip
    too_many: dict[str, Any] = {
        "description": "Rate limit exceeded",
        "headers": {
            "Retry-After": {"description": "Seconds to wait", "schema": {"type": "integer"}},
            **_header_schema(names),
        },
    }
    # Failing open, a 503 is still answered when the connection pool stays
    # busy past its own timeout (letting the request through would let a
    # burst through), so it is documented either way.
    # A Redis that answers but cannot rate-limit is answered 503 in either
    # mode (unless serve_misconfigured).
    unavailable = (
        "Rate limiter busy (its connection pool stayed full) or misconfigured"
        if limiter.fail_open
        else "Rate limiter unavailable or misconfigured"
    )
    return {429: too_many, 503: {"description": unavailable}}


def _limited(route: Any) -> bool:
    if getattr(getattr(route, "endpoint", None), _RULES_ATTR, None):
        return True
    dependant = getattr(route, "dependant", None)
    stack = [dependant] if dependant is not None else []
    while stack:
        d = stack.pop()
        if isinstance(getattr(d, "call", None), (RateLimit, ConcurrencyLimit)):
            return True
        stack.extend(getattr(d, "dependencies", []))
    return False


def _routes(app: Any) -> list[Any]:
    """The app's routes, those of included routers too (which recent
    FastAPI versions keep apart, behind iter_route_contexts)."""
    routes = list(getattr(app, "routes", []))
    try:
        from fastapi import routing
    except ImportError:  # plain Starlette
        return routes
    iterate = getattr(routing, "iter_route_contexts", None)
    return routes if iterate is None else list(iterate(routes))


def _document(app: Any, limiter: Limiter) -> None:
    original = app.openapi

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is not None:
            return dict(app.openapi_schema)
        schema: dict[str, Any] = original()
        everywhere = limiter.middleware_limits
        responses = openapi_responses(limiter)
        for route in _routes(app):
            path = getattr(route, "path_format", None)
            methods = getattr(route, "methods", None) or ()
            if path is None or not getattr(route, "include_in_schema", False):
                continue
            if not (_limited(route) or (everywhere and not limiter.is_exempt(route.endpoint))):
                continue
            for method in methods:
                op = schema.get("paths", {}).get(path, {}).get(method.lower())
                if op is None:
                    continue
                for status, doc in responses.items():
                    op.setdefault("responses", {}).setdefault(str(status), doc)
        app.openapi_schema = schema
        return schema

    app.openapi = openapi

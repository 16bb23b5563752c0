"""Key functions (request -> identity) and the key names built from them."""

from __future__ import annotations

import hashlib
import inspect
import logging
from collections.abc import Awaitable, Callable
from typing import Any, TypeAlias

from starlette.requests import Request

log = logging.getLogger("redis_ratelimit")


KeyFunc: TypeAlias = Callable[[Request], "str | Awaitable[str | None] | None"]


CostFunc: TypeAlias = Callable[[Request], "int | Awaitable[int]"]


async def _resolve(value: Any) -> Any:
    return await value if inspect.isawaitable(value) else value


def _escape(text: str) -> str:
    # Braces would move the cluster hash tag; keep them out of key names.
    if "{" not in text and "}" not in text and "%" not in text:
        return text
    return text.replace("%", "%25").replace("{", "%7B").replace("}", "%7D")


def client_ip(request: Request, trusted_proxies: int = 0) -> str:
    """The client's address: the socket peer, or, behind `trusted_proxies`
    reverse proxies that append to X-Forwarded-For, the address the
    outermost trusted proxy saw. Addresses further left are the client's
    own claims and never used."""
    if trusted_proxies > 0:
        hops = [
            h.strip()
            for line in request.headers.getlist("x-forwarded-for")
            for h in line.split(",")
            if h.strip()
        ]
        if len(hops) >= trusted_proxies:
            return hops[-trusted_proxies]
    return request.client.host if request.client else "unknown"


def by_ip(request: Request) -> str:
    """The client address (trusting the Limiter's `trusted_proxies`)."""
    scope = request.scope
    # The Limiter the check put there (not imported: it imports this module)
    trusted: int = getattr(scope.get("redis_ratelimit.limiter"), "trusted_proxies", 0)
    if trusted > 0:
        return "ip:" + client_ip(request, trusted)
    # client_ip(request, 0) without building request.client (an Address)
    client = scope.get("client")
    return "ip:" + client[0] if client else "ip:unknown"


def bearer_token(request: Request) -> str | None:
    scheme, _, token = request.headers.get("authorization", "").partition(" ")
    token = token.strip()
    return token if scheme.lower() == "bearer" and token else None


def by_api_key(request: Request) -> str | None:
    """The bearer token, hashed so that secrets never appear in key names;
    None (no limit) without one."""
    token = bearer_token(request)
    return None if token is None else "key:" + hashlib.sha256(token.encode()).hexdigest()[:24]


def _route_scope(request: Request) -> str:
    route = request.scope.get("route")
    path = getattr(route, "path", None) or request.url.path
    return f"{request.scope.get('method', 'WS')}:{path}"


def _key_base(prefix: str, ident: str, scope: str | None, request: Request) -> str:
    if scope is None:
        scope = _route_scope(request)
    return f"{prefix}:{{{_escape(ident)}}}:{_escape(scope)}"

"""Operators' pages behind the app's own check: the dashboard lists the
identities being denied, /metrics the rules and their traffic, so neither
may be served to whoever asks.

    authorize(request) -> bool (or an awaitable of one)

True serves the request; False answers 401 with `WWW-Authenticate: Basic`
(a browser asks for a user and password, Prometheus sends its
`basic_auth` or `authorization` settings). A check that raises an
HTTPException answers with it, so it may say 403 or carry its own
headers.
"""

from __future__ import annotations

import base64
import binascii
import hmac
import inspect
from collections.abc import Awaitable, Callable
from typing import Any

from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import PlainTextResponse
from starlette.types import ASGIApp, Receive, Scope, Send

Authorize = Callable[[Request], "bool | Awaitable[bool]"]

# What a browser answers with a user and password prompt.
_CHALLENGE = {"WWW-Authenticate": 'Basic realm="operators"'}


def guarded(app: ASGIApp, authorize: Authorize | None) -> ASGIApp:
    """`app`, served only to the requests `authorize` lets through (every
    request when None)."""
    if authorize is None:
        return app

    async def guard(scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":  # lifespan, websocket: not ours to refuse
            await app(scope, receive, send)
            return
        request = Request(scope, receive)
        try:
            verdict: Any = authorize(request)
            if inspect.isawaitable(verdict):
                verdict = await verdict
        except HTTPException as e:
            refused = PlainTextResponse(str(e.detail), e.status_code, headers=e.headers)
            await refused(scope, receive, send)
            return
        if verdict is True:
            await app(scope, receive, send)
            return
        await PlainTextResponse("Unauthorized", 401, headers=_CHALLENGE)(scope, receive, send)

    return guard


def token_check(token: str) -> Authorize:
    """A check for one shared secret: `Authorization: Bearer <token>`, or
    Basic with the token as its password (any user name; what a browser
    sends). Compared in constant time."""
    if not token:
        raise ValueError("token_check needs a non-empty token")
    want = token.encode()

    def check(request: Request) -> bool:
        scheme, _, value = request.headers.get("authorization", "").partition(" ")
        given = value.strip().encode()
        if scheme.lower() == "basic":
            try:
                decoded = base64.b64decode(given, validate=True)
            except (binascii.Error, ValueError):
                return False
            given = decoded.partition(b":")[2]
        elif scheme.lower() != "bearer":
            return False
        return hmac.compare_digest(given, want)

    return check


__all__ = ["Authorize", "guarded", "token_check"]

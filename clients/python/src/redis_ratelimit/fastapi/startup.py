"""A Limiter's start-up: hooking it into an app (Limiter.init_app: the
429 and WebSocket handlers, the OpenAPI responses, the collector's
tuning, the check before the app's lifespan) and the check that the
server has the module (Limiter.check_server)."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import TYPE_CHECKING, Any

from starlette.requests import Request
from starlette.responses import Response

from .._breaker import unavailable, within
from .._core import (
    NO_PERMISSION,
    RateLimiterMisconfigured,
    RateLimitError,
    misconfiguration,
    misconfigured,
)
from .collector import _freeze_after_startup, widen_young_generation
from .headers import Denied
from .openapi import _document
from .websocket import WebSocketDenied, deny

if TYPE_CHECKING:
    from .limiter import Limiter

log = logging.getLogger("redis_ratelimit")


def init_app(limiter: Limiter, app: Any, *, freeze_gc: bool, check_server: bool) -> None:
    """Limiter.init_app (see there)."""
    app.state.redis_ratelimit = limiter
    if hasattr(app, "add_exception_handler"):

        async def handle_denied(request: Request, exc: Exception) -> Response:
            assert isinstance(exc, Denied)
            return await limiter.denied_response(request, exc)

        app.add_exception_handler(Denied, handle_denied)
        app.add_exception_handler(WebSocketDenied, _handle_websocket_denied)
    if hasattr(app, "openapi"):
        _document(app, limiter)
    if freeze_gc:
        widen_young_generation()
        _freeze_after_startup(app)
    if check_server:
        _check_at_startup(app, limiter)


async def _handle_websocket_denied(websocket: Any, exc: Exception) -> None:
    assert isinstance(exc, WebSocketDenied)
    await deny(websocket, exc)


def _check_at_startup(app: Any, limiter: Limiter) -> None:
    """Wraps the app's lifespan so that limiter.check_server() runs before
    its startup: a server without the module stops the app from starting.
    Once per app and limiter."""
    router: Any = getattr(app, "router", None)
    inner = getattr(router, "lifespan_context", None)
    if inner is None:
        return
    checked: set[int] = getattr(inner, "_redis_ratelimit_checks", set())
    if id(limiter) in checked:
        return

    @asynccontextmanager
    async def lifespan(a: Any) -> AsyncIterator[Any]:
        if limiter.enabled:
            await limiter.check_server()
        async with inner(a) as state:
            yield state

    lifespan._redis_ratelimit_checks = checked | {id(limiter)}  # type: ignore[attr-defined]
    lifespan._redis_ratelimit_freezes = getattr(inner, "_redis_ratelimit_freezes", False)  # type: ignore[attr-defined]
    router.lifespan_context = lifespan


async def check_server(limiter: Limiter) -> bool:
    """Limiter.check_server (see there)."""
    try:
        await within(limiter.transport.check_module, limiter.timeout)
    except RateLimiterMisconfigured as e:
        limiter._refuse_to_start(e)
        raise
    except RateLimitError as e:  # COMMAND INFO refused: not the limiter's own calls
        log.warning("rate limiter start-up check skipped: %s; the first check tells", e)
        return False
    except Exception as e:
        reason = misconfiguration(e)
        if reason == NO_PERMISSION:  # the same, on the pipelined connection
            log.warning("rate limiter start-up check skipped: the Redis user may not run "
                        "COMMAND INFO on %s (%s); grant it +command|info; the first "
                        "check tells", limiter.server(), e)  # fmt: skip
            return False
        if reason is not None:  # credentials refused while connecting: WRONGPASS, NOAUTH
            wrong = misconfigured(e, limiter.server())
            assert wrong is not None
            limiter._refuse_to_start(wrong)
            raise wrong from e
        err = unavailable(e)
        if err is None:
            raise
        log.warning("rate limiter start-up check: Redis unavailable (%s: %s); checks take "
                    "the fail mode until it answers, and its first reply tells whether "
                    "it has the module", err.kind, err)  # fmt: skip
        return False
    limiter.checked = True
    return True

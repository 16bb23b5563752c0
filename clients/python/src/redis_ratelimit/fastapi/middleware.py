"""RateLimitMiddleware: default limits for a whole app, and the headers on
every response."""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Iterable, Sequence
from typing import TYPE_CHECKING

from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from .._durations import Duration
from .headers import Denied, Unavailable
from .keys import (
    CostFunc,
    KeyFunc,
)
from .openapi import _routes
from .rules import (
    LimitsArg,
    RateLimit,
)

log = logging.getLogger("redis_ratelimit")

if TYPE_CHECKING:
    from .limiter import Limiter


class RateLimitMiddleware:
    """ASGI middleware: default limits for a whole app (or a mounted
    sub-app), and the rate-limit headers on every response, errors raised
    after a dependency's check included.

        app.add_middleware(RateLimitMiddleware, limiter=limiter,
                           limits="1000/hour", exempt=["/health"])

    limits      as for RateLimit (None: only add the headers of the
                dependencies' checks); key, algorithm, cost, scope likewise
                (scope defaults to "global": one budget per identity)
    exempt      paths (exact, or a prefix ending in "*") never limited here;
                endpoints decorated with @limiter.exempt are skipped too
    """

    def __init__(
        self,
        app: ASGIApp,
        limiter: Limiter,
        limits: LimitsArg | None = None,
        *,
        exempt: Iterable[str] = (),
        algorithm: str | Sequence[str] = "sliding",
        key: KeyFunc | None = None,
        cost: int | CostFunc = 1,
        scope: str = "global",
        penalty: Duration | None = None,
    ) -> None:
        self.app = app
        self.limiter = limiter
        self.rule = None if limits is None else RateLimit(
            limiter, limits, algorithm=algorithm, key=key, cost=cost, scope=scope,
            penalty=penalty,
        )  # fmt: skip
        self.exempt_paths = frozenset(p for p in exempt if not p.endswith("*"))
        self.exempt_prefixes = tuple(p[:-1] for p in exempt if p.endswith("*"))
        if self.rule is not None:
            limiter.middleware_limits = True

    def _exempt(self, scope: Scope) -> bool:
        path: str = scope.get("path", "")
        if path in self.exempt_paths or (
            self.exempt_prefixes and path.startswith(self.exempt_prefixes)
        ):
            return True
        if not self.limiter.has_exempt_endpoints():
            return False
        for route in _routes(scope.get("app")):
            matches = getattr(route, "matches", None)
            if matches is None:
                continue
            match, _ = matches(scope)
            if match.name == "FULL":
                return self.limiter.is_exempt(getattr(route, "endpoint", None))
        return False

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        scope.setdefault("redis_ratelimit.limiter", self.limiter)
        rule = self.rule
        if rule is not None and not self._exempt(scope):
            request = Request(scope, receive)
            try:
                # hit(request)'s steps (the middleware's rule never waits):
                # the headers recorded for send_with_headers below, or Denied.
                outcome = await rule.check(request)
                if outcome is not None:
                    rule._answer(request, outcome, None)
            except Unavailable as exc:
                await JSONResponse({"detail": exc.detail}, status_code=503)(scope, receive, send)
                return
            except Denied as denied:
                response = await self.limiter.denied_response(request, denied)
                await response(scope, receive, send)
                return

        # Not a coroutine: it hands over send()'s awaitable, one frame less
        # for every message of the response.
        def send_with_headers(message: Message) -> Awaitable[None]:
            if message["type"] == "http.response.start":
                extra: list[tuple[bytes, bytes]] | None = scope.get("redis_ratelimit.raw_headers")
                if extra:
                    raw = list(message.get("headers", ()))
                    if raw:
                        have = {name.lower() for name, _ in raw}
                        raw += [kv for kv in extra if kv[0] not in have]
                    else:
                        raw = list(extra)
                    message = {**message, "headers": raw}
            return send(message)

        await self.app(scope, receive, send_with_headers)

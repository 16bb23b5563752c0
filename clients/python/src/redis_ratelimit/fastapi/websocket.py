"""WebSocket limits (WebSocketLimit): on accepting a connection, and per
message inside the handler."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Iterable, Sequence
from typing import TYPE_CHECKING, Any, TypeAlias, cast

from starlette.exceptions import WebSocketException
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.websockets import WebSocket, WebSocketState

from .._durations import Duration
from .headers import _RATE_LIMITS, Outcome, Unavailable, _header_dict, _record
from .keys import KeyFunc, _key_base, _resolve, _route_scope
from .rules import LimitsArg, RateLimit, _Plan
from .waiting import waited

if TYPE_CHECKING:
    from .limiter import Limiter


POLICY_VIOLATION = 1008  # RFC 6455: the close code of a denied connection or message
TRY_AGAIN_LATER = 1013  # the rate limiter could not decide and fails closed

MessageDeniedHandler: TypeAlias = Callable[[WebSocket, Outcome], "Awaitable[Any] | Any"]


class WebSocketDenied(WebSocketException):
    """A WebSocket connection refused by its limit (`outcome` the decision)
    or because the rate limiter is unavailable and fails closed (`outcome`
    None, status 503). Raised by the dependency form; init_app's handler
    answers it as WebSocketLimit.deny does, and Starlette's own handling
    of a WebSocketException closes the connection with `code` and
    `reason`."""

    def __init__(self, outcome: Outcome | None, headers: dict[str, str] | None = None) -> None:
        if outcome is None:
            super().__init__(TRY_AGAIN_LATER, "rate limiter unavailable")
            self.status = 503
        else:
            super().__init__(POLICY_VIOLATION, _reason(outcome))
            self.status = 429
        self.outcome = outcome
        self.headers = headers or {}


def _reason(outcome: Outcome) -> str:
    retry = outcome.retry_after_s()
    return "rate limit exceeded" + ("" if retry is None else f", retry after {retry} s")


class _MessageRule(RateLimit):
    """A RateLimit whose keys are a route's messages', apart from its
    connections' (the same quota names may be used for both)."""

    def keys(self, request: Request, ident: str, plan: _Plan) -> list[str]:
        scope = (self.scope if self.scope is not None else _route_scope(request)) + ":message"
        base = _key_base(self.limiter.prefix, ident, scope, request)
        return [base + suffix for suffix in plan.suffixes]


class WebSocketLimit:
    """Limits on a WebSocket route: `connect` on accepting a connection,
    `message` on each message the handler counts.

        ws_limit = limiter.websocket(connect="10/minute", message="5/second")

        @app.websocket("/feed")
        async def feed(websocket: WebSocket):
            if not await ws_limit.accept(websocket):  # refused: answered
                return
            async for text in websocket.iter_text():
                if not await ws_limit.hit(websocket):  # denied: closed 1008
                    return
                ...

    Or `dependencies=[Depends(ws_limit)]` on the route for the connection
    limit (the handler then accepts as usual, without the headers).

    connect, message, algorithm, key, burst, scope, penalty
                 as for RateLimit (the key function gets the WebSocket);
                 the messages' keys are apart from the connections'
    cost         of a message (an int); a connection costs 1
    deny         a refused connection: "response" answers the handshake
                 with the 429 and its headers where the server supports
                 the ASGI denial response (uvicorn does; else it closes:
                 HTTP 403), "close" accepts it and closes it at once with
                 1008 and the reason (what a browser's WebSocket can read)
    on_denied    (websocket, outcome) -> None for a denied message, maybe
                 async: e.g. send an error frame and go on (default: close
                 1008 with the reason)
    wait         a denied message waits for its slot, within this bound
                 (as RateLimit's wait=), before it is denied
    """

    def __init__(
        self,
        limiter: Limiter,
        connect: LimitsArg | None = None,
        message: LimitsArg | None = None,
        *,
        algorithm: str | Sequence[str] = "sliding",
        key: KeyFunc | None = None,
        cost: int = 1,
        burst: int | Sequence[int | None] | None = None,
        scope: str | None = None,
        penalty: Duration | None = None,
        deny: str = "response",
        on_denied: MessageDeniedHandler | None = None,
        wait: Duration | None = None,
    ) -> None:
        if connect is None and message is None:
            raise ValueError("a WebSocketLimit needs connect=, message= or both")
        if deny not in ("response", "close"):
            raise ValueError(f"deny must be 'response' or 'close', not {deny!r}")
        self.limiter = limiter
        self.deny_with = deny
        self.on_denied = on_denied
        self.connect = None if connect is None else RateLimit(
            limiter, connect, algorithm=algorithm, key=key, burst=burst, scope=scope,
            penalty=penalty)  # fmt: skip
        self.message = None if message is None else _MessageRule(
            limiter, message, algorithm=algorithm, key=key, cost=cost, burst=burst,
            scope=scope, penalty=penalty, wait=wait)  # fmt: skip

    # -- the connection

    async def check_connect(self, websocket: WebSocket) -> Outcome | None:
        """The connection's decision (None: no limit applies, or Redis could
        not answer and the limiter fails open), recorded for the headers;
        raises WebSocketDenied when refused or failing closed."""
        rule = self.connect
        if rule is None:
            return None
        conn = cast(Request, websocket)  # an HTTPConnection: what checks read
        try:
            outcome = await rule.check(conn)
        except Unavailable:
            raise WebSocketDenied(None) from None
        if outcome is None:
            return None
        raw = _record(conn, _RATE_LIMITS, outcome, self.limiter.headers)
        if not outcome.allowed:
            raise WebSocketDenied(outcome, _header_dict(raw))
        return outcome

    async def __call__(self, websocket: WebSocket) -> Outcome | None:
        """The dependency form: the connection limit, before the handler."""
        return await self.check_connect(websocket)

    async def accept(
        self,
        websocket: WebSocket,
        subprotocol: str | None = None,
        headers: Iterable[tuple[bytes, bytes]] | None = None,
    ) -> bool:
        """Checks the connection limit and accepts the connection with the
        rate-limit headers on the handshake's response (True), or answers
        the refusal (deny) and returns False."""
        try:
            await self.check_connect(websocket)
        except WebSocketDenied as refused:
            await self.deny(websocket, refused)
            return False
        raw = list(websocket.scope.get("redis_ratelimit.raw_headers") or ())
        await websocket.accept(subprotocol, [*raw, *(headers or ())])
        return True

    async def deny(self, websocket: WebSocket, refused: WebSocketDenied) -> None:
        """Answers a refused connection: the 429 (503) with its headers on
        the handshake, or accepted and closed with the code and reason."""
        await deny(websocket, refused, self.deny_with)

    # -- messages

    async def hit(self, websocket: WebSocket, cost: int | None = None) -> bool:
        """Counts one message (`cost`, default the limit's): True when it
        may be handled, or no limit applies, or Redis could not answer and
        the limiter fails open. A denied message calls on_denied, else
        closes the connection with 1008 and the reason; failing closed
        closes it with 1013. Then False."""
        rule = self.message
        if rule is None:
            return True
        conn = cast(Request, websocket)
        try:
            outcome = await rule.check(conn, cost)
            if (
                outcome is not None
                and rule.wait is not None
                and (not outcome.allowed or outcome.decision.retry_after_ms > 0)
            ):
                outcome = await waited(rule, conn, outcome, cost, watch=False)
        except Unavailable:
            await websocket.close(TRY_AGAIN_LATER, "rate limiter unavailable")
            return False
        if outcome is None:
            return True
        _record(conn, _RATE_LIMITS, outcome, self.limiter.headers)
        if outcome.allowed:
            return True
        if self.on_denied is not None:
            await _resolve(self.on_denied(websocket, outcome))
        else:
            await websocket.close(POLICY_VIOLATION, _reason(outcome))
        return False


async def deny(websocket: WebSocket, refused: WebSocketDenied, how: str = "response") -> None:
    """A refused connection's answer (see WebSocketLimit's deny)."""
    if websocket.client_state is not WebSocketState.CONNECTING:
        await websocket.close(refused.code, refused.reason)
        return
    if how == "response" and "websocket.http.response" in websocket.scope.get("extensions", {}):
        detail = "Rate limit exceeded" if refused.status == 429 else "Rate limiter unavailable"
        response = JSONResponse({"detail": detail}, refused.status, refused.headers)
        await websocket.send_denial_response(response)
        return
    if how == "close":
        await websocket.accept(None, _raw(refused.headers))
    await websocket.close(refused.code, refused.reason)


def _raw(headers: dict[str, str]) -> list[tuple[bytes, bytes]]:
    return [(k.lower().encode(), v.encode()) for k, v in headers.items()]

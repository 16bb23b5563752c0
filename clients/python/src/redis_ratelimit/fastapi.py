"""FastAPI and Starlette integration (pip install 'redis-ratelimit[fastapi]').

    limiter = Limiter(redis.asyncio.Redis())            # one per app
    limiter.init_app(app)                                # OpenAPI docs, 429 handler

    @app.get("/quotes")
    @limiter.limited("100/minute;5000/day")             # or, as a dependency:
    async def quotes(): ...

    @app.get("/news", dependencies=[Depends(limiter.limit("100/minute"))])
    async def news(): ...

    app.add_middleware(RateLimitMiddleware, limiter=limiter, limits="1000/hour")

Every check is one Redis round trip: one RL.<ALGO> for one limit, one atomic
RL.ALL for several (their keys share a hash tag, so it works on a cluster).
A denied identity is then answered 429 locally, without Redis, until its
retry_after has passed (the deny cache).
"""

from __future__ import annotations

import asyncio
import functools
import gc
import hashlib
import inspect
import logging
import math
import time
import uuid
from collections import Counter, OrderedDict
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import Any, TypeAlias, TypeVar

from redis.exceptions import ResponseError
from starlette.concurrency import run_in_threadpool
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from ._breaker import (
    MISCONFIGURED,
    POOL_EXHAUSTED,
    CircuitBreaker,
    LimiterUnavailable,
    unavailable,
    within,
)
from ._core import (
    NO_PERMISSION,
    Arg,
    Decision,
    Fixed,
    Gcra,
    Leaky,
    Limit,
    Log,
    ModuleNotLoaded,
    Policy,
    RateLimiterMisconfigured,
    RateLimitError,
    Sliding,
    Token,
    located,
    misconfiguration,
    misconfigured,
    policy_get_reply,
    policy_set_args,
)
from ._durations import Duration, Rate, check_amount, duration_arg, duration_seconds, parse_rates
from ._fast import FastConnection, encode, encode_args, encode_int, encode_str
from ._pool import PoolGate
from .client import CHECK_COMMAND, AsyncRateLimiter, Lease, _module_check, server_address
from .policies import Policies, PoliciesNotSynced, no_such_policy

log = logging.getLogger("redis_ratelimit")

KeyFunc: TypeAlias = Callable[[Request], "str | Awaitable[str | None] | None"]
CostFunc: TypeAlias = Callable[[Request], "int | Awaitable[int]"]
LimitsArg: TypeAlias = "str | Sequence[Rate] | Callable[[Request], Any]"
DeniedHandler: TypeAlias = Callable[[Request, "Denied"], "Response | Awaitable[Response]"]

ALGORITHMS = ("fixed", "sliding", "log", "token", "leaky", "gcra")
_POLICY_PREFIX = "policy:"
T = TypeVar("T")
E = TypeVar("E", bound=Callable[..., Any])


async def _resolve(value: Any) -> Any:
    return await value if inspect.isawaitable(value) else value


def _escape(text: str) -> str:
    # Braces would move the cluster hash tag; keep them out of key names.
    if "{" not in text and "}" not in text and "%" not in text:
        return text
    return text.replace("%", "%25").replace("{", "%7B").replace("}", "%7D")


def _ceil_s(ms: int) -> int:
    return -(-ms // 1000) if ms > 0 else 0


# ---------------------------------------------------------------- key functions


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
    limiter = scope.get("redis_ratelimit.limiter")
    if isinstance(limiter, Limiter) and limiter.trusted_proxies > 0:
        return "ip:" + client_ip(request, limiter.trusted_proxies)
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


# ---------------------------------------------------------------- decisions and headers


@dataclass(frozen=True)
class Quota:
    """One limit's part in a request's decision, for the headers."""

    name: str
    window: int | None  # seconds, None when unknown (a policy) or none (a lease)
    decision: Decision
    concurrent: bool = False  # a concurrency limit: `limit` requests at a time


@dataclass(frozen=True)
class Outcome:
    """The decision for a request: the module's combined Decision and each
    limit's share."""

    decision: Decision
    quotas: tuple[Quota, ...]
    cap_retry: bool = True  # Retry-After at most the longest window

    @property
    def allowed(self) -> bool:
        return self.decision.allowed

    def retry_after_s(self) -> int | None:
        """Seconds to wait (rounded up, at least 1); None if never."""
        ms = self.decision.retry_after_ms
        if ms < 0:
            return None
        s = max(1, _ceil_s(ms))
        windows = [q.window for q in self.quotas if q.window]
        if self.cap_retry and windows and len(windows) == len(self.quotas):
            s = min(s, max(windows))
        return s

    def raw_headers(
        self, style: str | None = "both", served: bool = False
    ) -> list[tuple[bytes, bytes]]:
        """headers(), as ASGI's (lower-case name, value) byte pairs; None:
        only Retry-After. `served`: no Retry-After (the request goes
        through whatever the state says)."""
        d = self.decision
        quotas = self.quotas
        if style == "both" and len(quotas) == 1 and quotas[0].decision is d:
            # The usual case, in one go: one limit, every header.
            q = quotas[0]
            key = (q.name, d.limit, q.window, q.concurrent)
            fixed = _FIXED_PARTS.get(key)
            if fixed is None:
                fixed = _fixed_parts(key)
            policy, named, limit = fixed
            ms = d.reset_after_ms
            reset = b"%d" % (-(-ms // 1000) if ms > 0 else 0)
            remaining = b"%d" % d.remaining
            out = [
                (b"ratelimit-policy", policy),
                (b"ratelimit", named + remaining + b";t=" + reset),
                (b"x-ratelimit-limit", limit),
                (b"x-ratelimit-remaining", remaining),
                (b"x-ratelimit-reset", reset),
            ]
            if not d.allowed and not served:
                retry = self.retry_after_s()
                if retry is not None:
                    out.append((b"retry-after", b"%d" % retry))
            return out
        out = []
        if style == "both" or style == "ietf":
            if len(quotas) == 1:
                q = quotas[0]
                d = q.decision
                out.append((b"ratelimit-policy", _policy_bytes(q.name, d.limit, q.window,
                                                               q.concurrent)))  # fmt: skip
                out.append((b"ratelimit", b"%s;r=%d;t=%d" % (
                    _quoted(q.name), d.remaining, _ceil_s(d.reset_after_ms))))  # fmt: skip
            else:
                out.append((b"ratelimit-policy", b", ".join(
                    _policy_bytes(q.name, q.decision.limit, q.window, q.concurrent)
                    for q in quotas)))  # fmt: skip
                out.append((b"ratelimit", ", ".join(
                    f'"{q.name}";r={q.decision.remaining};t={_ceil_s(q.decision.reset_after_ms)}'
                    for q in quotas).encode()))  # fmt: skip
        if style == "both" or style == "x":
            d = self.decision
            out.append((b"x-ratelimit-limit", b"%d" % d.limit))
            out.append((b"x-ratelimit-remaining", b"%d" % d.remaining))
            out.append((b"x-ratelimit-reset", b"%d" % _ceil_s(d.reset_after_ms)))
        if not self.decision.allowed and not served:
            retry = self.retry_after_s()
            if retry is not None:
                out.append((b"retry-after", b"%d" % retry))
        return out

    def headers(self, style: str = "both") -> dict[str, str]:
        """IETF RateLimit-Policy/RateLimit ("ietf"), X-RateLimit-* ("x"),
        or both; Retry-After when denied."""
        out: dict[str, str] = {}
        if style in ("both", "ietf"):
            out["RateLimit-Policy"] = ", ".join(_policy_item(q) for q in self.quotas)
            out["RateLimit"] = ", ".join(
                f'"{q.name}";r={q.decision.remaining};t={_ceil_s(q.decision.reset_after_ms)}'
                for q in self.quotas
            )
        if style in ("both", "x"):
            d = self.decision
            out["X-RateLimit-Limit"] = str(d.limit)
            out["X-RateLimit-Remaining"] = str(d.remaining)
            out["X-RateLimit-Reset"] = str(_ceil_s(d.reset_after_ms))
        if not self.allowed:
            retry = self.retry_after_s()
            if retry is not None:
                out["Retry-After"] = str(retry)
        return out


_POLICIES: dict[tuple[str, int, int | None, bool], bytes] = {}
_QUOTED: dict[str, bytes] = {}
_FIXED_PARTS: dict[tuple[str, int, int | None, bool], tuple[bytes, bytes, bytes]] = {}


def _fixed_parts(key: tuple[str, int, int | None, bool]) -> tuple[bytes, bytes, bytes]:
    """What a quota's headers keep from one check to the next: its
    RateLimit-Policy item, the start of its RateLimit item, the limit."""
    parts = (_policy_bytes(*key), _quoted(key[0]) + b";r=", b"%d" % key[1])
    if len(_FIXED_PARTS) < 10_000:
        _FIXED_PARTS[key] = parts
    return parts


def _quoted(name: str) -> bytes:
    """A quota's name as the RateLimit header has it: b'"name"'."""
    quoted = _QUOTED.get(name)
    if quoted is None:
        quoted = b'"%s"' % name.encode()
        if len(_QUOTED) < 10_000:
            _QUOTED[name] = quoted
    return quoted


def _policy_bytes(name: str, limit: int, window: int | None, concurrent: bool) -> bytes:
    key = (name, limit, window, concurrent)
    cached = _POLICIES.get(key)
    if cached is not None:
        return cached
    value = _policy_item(Quota(name, window, Decision(True, limit, 0, 0, 0), concurrent)).encode()
    if len(_POLICIES) < 10_000:
        _POLICIES[key] = value
    return value


def _policy_item(q: Quota) -> str:
    # The quota is what the module reports as the limit: a bucket's
    # capacity, not its refill rate.
    item = f'"{q.name}";q={q.decision.limit}'
    if q.concurrent:  # the draft's unit for requests in flight; no window
        return item + ';qu="concurrent-requests"'
    return item + (f";w={q.window}" if q.window else "")


class Denied(HTTPException):
    """The 429 a limit answers. `outcome` holds the decision; register an
    exception handler for it (or Limiter(on_denied=...)) to answer your own."""

    def __init__(self, outcome: Outcome, headers: dict[str, str]) -> None:
        super().__init__(429, detail="Rate limit exceeded", headers=headers)
        self.outcome = outcome


class Unavailable(HTTPException):
    """The 503 answered when Redis cannot and the limiter fails closed."""

    def __init__(self) -> None:
        super().__init__(503, detail="Rate limiter unavailable")


class Misconfigured(Unavailable):
    """The 503 answered, whatever the fail mode, when Redis answers but
    cannot rate-limit (no module, NOPERM, a key of another type): `error`
    is the RateLimiterMisconfigured, which is logged at ERROR."""

    def __init__(self, error: RateLimiterMisconfigured) -> None:
        super().__init__()
        self.error = error


# ---------------------------------------------------------------- the deny cache


class DenyCache:
    """Identities Redis has denied, until their retry_after has passed;
    at most `size` of them (the oldest entries go first)."""

    def __init__(self, size: int = 10_000, clock: Callable[[], float] = time.monotonic) -> None:
        self.size = size
        self._clock = clock
        self._entries: OrderedDict[str, tuple[float, Outcome]] = OrderedDict()
        self.hits = 0

    def __len__(self) -> int:
        return len(self._entries)

    def get(self, key: str) -> tuple[float, Outcome] | None:
        """(seconds left, the outcome Redis gave) while the key is denied."""
        entry = self._entries.get(key)
        if entry is None:
            return None
        left = entry[0] - self._clock()
        if left <= 0:
            del self._entries[key]
            return None
        self.hits += 1
        return left, entry[1]

    def put(self, key: str, outcome: Outcome) -> None:
        ms = outcome.decision.retry_after_ms
        if self.size <= 0 or ms <= 0:  # never (-1) is not cached: a smaller cost may pass
            return
        self._entries[key] = (self._clock() + ms / 1000, outcome)
        self._entries.move_to_end(key)
        while len(self._entries) > self.size:
            self._entries.popitem(last=False)

    def discard(self, key: str) -> None:
        self._entries.pop(key, None)

    def clear(self) -> None:
        self._entries.clear()


# ---------------------------------------------------------------- the collector


def freeze_heap() -> None:
    """gc.collect(), then gc.freeze(): the objects alive now (an app's
    modules, routes, models, clients, once started) move to the permanent
    generation, which no later collection walks. A full collection then
    costs in proportion to what requests keep alive, not to the whole
    heap. init_app() calls it after the lifespan's startup; call it
    yourself when the app does not run the lifespan. A no-op where the
    interpreter has no gc.freeze (PyPy)."""
    freeze = getattr(gc, "freeze", None)
    if freeze is not None:
        gc.collect()
        freeze()


YOUNG_GENERATION = 50_000


def widen_young_generation(threshold: int = YOUNG_GENERATION) -> None:
    """Raises the collector's first threshold (gc.set_threshold) to
    `threshold` if it is lower; never lowers it.

    Every limited request waits once for Redis. While requests wait, the
    objects they hold (a FastAPI request keeps a few hundred) count against
    the young generation, whose default threshold of 700 a few waiting
    requests exceed: the collector then runs thousands of times a minute,
    walks the waiting requests' objects, finds no garbage (they are freed
    by reference counting once answered) and promotes them to older
    generations that are walked again. Measured with one uvicorn worker
    under 50 connections, an endpoint that only awaits a future once spent
    about a fifth of its CPU there (6,310 collections in 15 s, 3.2 s);
    at 100,000, none, and the limited apps at 50,000 none either. Garbage
    in reference cycles is still collected, a little later."""
    get = getattr(gc, "get_threshold", None)
    if get is None:
        return
    first, *rest = get()
    if first < threshold:
        gc.set_threshold(threshold, *rest)


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


def _freeze_after_startup(app: Any) -> None:
    """Wraps the app's lifespan (its router's lifespan_context, which runs
    the startup handlers too) so that freeze_heap() runs once its startup
    is done; once per app."""
    router: Any = getattr(app, "router", None)
    inner = getattr(router, "lifespan_context", None)
    if inner is None or getattr(inner, "_redis_ratelimit_freezes", False):
        return

    @asynccontextmanager
    async def lifespan(a: Any) -> AsyncIterator[Any]:
        async with inner(a) as state:
            freeze_heap()
            yield state

    lifespan._redis_ratelimit_freezes = True  # type: ignore[attr-defined]
    router.lifespan_context = lifespan


# ---------------------------------------------------------------- the limiter


class Limiter:
    """Settings and state shared by an app's limits.

    redis            a redis.asyncio.Redis or redis.asyncio.cluster.RedisCluster
    prefix           of every key
    enabled          False: every limit lets everything through (tests, dev)
    fail_open        Redis unreachable or slower than `timeout`: serve the
                     request (True) or answer 503 (False). Never for a Redis
                     that answers but cannot rate-limit (no module, NOPERM,
                     a key of another type): 503, logged at ERROR
    serve_misconfigured
                     True: such a server's checks serve the request without
                     limits instead (still logged at ERROR); an explicit
                     opt-out, for a limit that is only nice to have
    timeout          seconds Redis may take to answer a check before the fail
                     mode applies (the wait for a free pooled connection
                     comes first and is not counted; a pool still busy after
                     its own timeout is answered 503 even failing open)
    trusted_proxies  reverse proxies in front that append X-Forwarded-For
    headers          "both", "ietf" (RateLimit, RateLimit-Policy), "x"
                     (X-RateLimit-*) or None
    deny_cache       identities kept denied locally, at most (0: none)
    on_denied        (request, Denied) -> Response: your own 429 (default:
                     JSON {"detail": ...} with the headers)
    key              the default key function (by_ip)
    breaker          a CircuitBreaker (the default: CircuitBreaker(5, 5.0)):
                     after 5 consecutive failures Redis is not asked for 5 s,
                     every check takes the fail mode at once; False: none
    pipelining       checks, lease calls go down one connection of their own,
                     pipelined (a standalone redis.asyncio.Redis over TCP or
                     a unix socket, without TLS); False, or any other
                     client: through redis-py's pool
    policies         a Policies: the app's limits kept in the server, used as
                     "policy:<name>"; `await limiter.sync_policies()` at
                     start-up defines them (as its `sync` says; "verify"
                     only checks them, for a Redis user who may not write
                     them), a call finding one missing defines them again
                     and is retried once, and the headers take each
                     policy's window from the definition in force
    log_interval     seconds between two warnings of one kind, at least
                     (and between two ERRORs of one kind of misconfiguration)

    `failures` counts the failed checks by kind (UNREACHABLE, CIRCUIT_OPEN,
    POOL_EXHAUSTED, ERROR_REPLY, MISCONFIGURED), whatever was logged.
    """

    def __init__(
        self,
        redis: Any,
        *,
        prefix: str = "rl",
        enabled: bool = True,
        fail_open: bool = True,
        timeout: float = 0.5,
        trusted_proxies: int = 0,
        headers: str | None = "both",
        deny_cache: int = 10_000,
        on_denied: DeniedHandler | None = None,
        key: KeyFunc = by_ip,
        breaker: CircuitBreaker | bool = True,
        pipelining: bool = True,
        policies: Policies | None = None,
        log_interval: float = 10.0,
        serve_misconfigured: bool = False,
    ) -> None:
        if headers not in ("both", "ietf", "x", None):
            raise ValueError(f"headers must be 'both', 'ietf', 'x' or None, not {headers!r}")
        self.client = AsyncRateLimiter(redis)
        self.prefix = prefix
        self.enabled = enabled
        self.fail_open = fail_open
        self.timeout = timeout
        self.trusted_proxies = trusted_proxies
        self.headers = headers
        self.deny_cache = DenyCache(deny_cache)
        self.on_denied = on_denied
        self.key = key
        self._exempt: set[Callable[..., Any]] = set()
        self.middleware_limits = False  # a RateLimitMiddleware applies default limits
        if breaker is True:
            breaker = CircuitBreaker()
        self.breaker: CircuitBreaker | None = breaker or None
        self._fast = FastConnection.for_client(redis, timeout) if pipelining else None
        self._gate = PoolGate.for_client(redis)  # calls through redis-py's pool queue here
        self._last_warning: dict[str, float] = {}
        self._reported: dict[str, tuple[float, int]] = {}  # ERRORs: (last, left out since)
        self.policies = policies
        self.log_interval = log_interval
        self.serve_misconfigured = serve_misconfigured
        self.failures: Counter[str] = Counter()
        self.checked = False  # check_server() has found the module

    # -- building blocks

    def limit(
        self,
        limits: LimitsArg,
        *,
        algorithm: str | Sequence[str] = "sliding",
        key: KeyFunc | None = None,
        cost: int | CostFunc = 1,
        burst: int | Sequence[int | None] | None = None,
        scope: str | None = None,
        penalty: Duration | None = None,
        shadow: bool = False,
    ) -> RateLimit:
        """A dependency enforcing `limits` (see RateLimit)."""
        return RateLimit(self, limits, algorithm=algorithm, key=key, cost=cost, burst=burst,
                         scope=scope, penalty=penalty, shadow=shadow)  # fmt: skip

    def limited(
        self,
        limits: LimitsArg,
        *,
        algorithm: str | Sequence[str] = "sliding",
        key: KeyFunc | None = None,
        cost: int | CostFunc = 1,
        burst: int | Sequence[int | None] | None = None,
        scope: str | None = None,
        penalty: Duration | None = None,
        shadow: bool = False,
    ) -> Callable[[E], E]:
        """A decorator enforcing `limits` on an endpoint (RateLimit.wrap):
        limit()'s check without the cost of a FastAPI dependency.

            @app.get("/search")
            @limiter.limited("100/minute")
            async def search(q: str): ..."""
        return self.limit(limits, algorithm=algorithm, key=key, cost=cost, burst=burst,
                          scope=scope, penalty=penalty, shadow=shadow).wrap  # fmt: skip

    def concurrency(
        self,
        limit: int,
        *,
        ttl: Duration = 30,
        key: KeyFunc | None = None,
        scope: str | None = None,
        name: str = "inflight",
        heartbeat: bool = True,
    ) -> ConcurrencyLimit:
        """A dependency holding one of `limit` slots for the request (see
        ConcurrencyLimit)."""
        return ConcurrencyLimit(self, limit, ttl=ttl, key=key, scope=scope, name=name,
                                heartbeat=heartbeat)  # fmt: skip

    def exempt(self, endpoint: Callable[..., Any]) -> Callable[..., Any]:
        """Decorator: the middleware's default limits skip this endpoint."""
        self._exempt.add(endpoint)
        return endpoint

    def is_exempt(self, endpoint: Any) -> bool:
        return endpoint in self._exempt

    def has_exempt_endpoints(self) -> bool:
        return bool(self._exempt)

    def init_app(self, app: Any, *, freeze_gc: bool = True, check_server: bool = True) -> None:
        """Registers the 429/503 handlers (on_denied) and documents the 429
        and 503 responses with their headers in the app's OpenAPI schema on
        every route with a limit (all routes when the middleware is used).

        check_server  at the start of the app's lifespan, check_server():
                   a Redis without the module (every master of a cluster)
                   stops the app from starting (ModuleNotLoaded); one that
                   cannot be reached is only logged. False: no check.

        freeze_gc  tune the garbage collector for requests that wait:
                   widen_young_generation() now, and once the app's
                   lifespan startup is done, collect the garbage and
                   gc.freeze() what is left (see freeze_heap), so that
                   full collections no longer walk the app's own objects.
                   False: leave the collector alone."""
        app.state.redis_ratelimit = self
        if hasattr(app, "add_exception_handler"):
            app.add_exception_handler(Denied, self._handle_denied)
        if hasattr(app, "openapi"):
            _document(app, self)
        if freeze_gc:
            widen_young_generation()
            _freeze_after_startup(app)
        if check_server:
            _check_at_startup(app, self)

    async def _handle_denied(self, request: Request, exc: Exception) -> Response:
        assert isinstance(exc, Denied)
        return await self.denied_response(request, exc)

    async def denied_response(self, request: Request, exc: Denied) -> Response:
        if self.on_denied is not None:
            response: Response = await _resolve(self.on_denied(request, exc))
            for k, v in (exc.headers or {}).items():
                response.headers.setdefault(k, v)
            return response
        return JSONResponse({"detail": exc.detail}, status_code=429, headers=exc.headers)

    # -- asking Redis

    def server(self, key: str | None = None) -> str | None:
        """The address this limiter's call about `key` goes to (None when
        unknown: a cluster without a key)."""
        fast = self._fast
        if fast is not None:
            return f"unix:{fast.path}" if fast.path else f"{fast.host or 'localhost'}:{fast.port}"
        return server_address(self.client.redis)

    async def check_server(self) -> bool:
        """Checks that the server has the ratelimit module (COMMAND INFO
        RL.FIXED, on every master of a cluster), within the timeout.
        init_app's start-up runs it. True when it has; raises ModuleNotLoaded
        (after logging it at ERROR) when it has not. False when the check
        could not run: Redis unreachable (the fail mode applies until it
        answers, and its first reply to a check tells: without the module,
        503 and an ERROR), or the ACL user may not run COMMAND INFO (grant
        +command|info); both are logged as a warning."""
        fast = self._fast
        try:
            if fast is not None:
                ask = ("COMMAND", "INFO", CHECK_COMMAND)
                reply = await within(lambda: fast.execute(ask), self.timeout)
                _module_check({self.server() or "the Redis server": reply})
            else:
                await within(self.client.check_module, self.timeout)
        except RateLimiterMisconfigured as e:
            self.failures[MISCONFIGURED] += 1
            log.error("rate limiter misconfigured (%s), refusing to start: %s", e.reason, e)
            raise
        except RateLimitError as e:  # COMMAND INFO refused: not the limiter's own calls
            log.warning("rate limiter start-up check skipped: %s; the first check tells", e)
            return False
        except Exception as e:
            if misconfiguration(e) == NO_PERMISSION:  # the same, on the pipelined connection
                log.warning("rate limiter start-up check skipped: the Redis user may not run "
                            "COMMAND INFO on %s (%s); grant it +command|info; the first "
                            "check tells", self.server(), e)  # fmt: skip
                return False
            err = unavailable(e)
            if err is None:
                raise
            log.warning("rate limiter start-up check: Redis unavailable (%s: %s); checks take "
                        "the fail mode until it answers, and its first reply tells whether "
                        "it has the module", err.kind, err)  # fmt: skip
            return False
        self.checked = True
        return True

    async def call(self, fn: Callable[[], Awaitable[T]]) -> T:
        """await fn() (a Redis call through redis-py's pool) within the
        timeout, through the breaker. Raises LimiterUnavailable when Redis
        cannot answer. The wait for a free pooled connection comes first,
        outside the timeout (PoolGate)."""
        if self._gate is not None:
            async with self._gate:
                return await self._call(fn)
        return await self._call(fn)

    async def _call(self, fn: Callable[[], Awaitable[T]]) -> T:
        if self.breaker is not None:
            return await self.breaker.call(fn, self.timeout)
        try:
            return await within(fn, self.timeout)
        except Exception as e:
            err = unavailable(e)
            if err is None:
                raise
            raise err from e

    async def execute(self, args: Sequence[Arg]) -> Any:
        """One command's reply, within the timeout, through the breaker (on
        the pipelined connection when there is one). Raises
        LimiterUnavailable when Redis cannot answer."""
        fast = self._fast
        if fast is None:
            execute = self.client.redis.execute_command
            return await self.call(lambda: execute(*args))
        if self.breaker is not None:  # the connection keeps the time itself
            return await self.breaker.call(lambda: fast.execute(args), None)
        try:
            return await fast.execute(args)
        except Exception as e:
            err = unavailable(e)
            if err is None:
                raise
            raise err from e

    async def ask(self, fn: Callable[[], Awaitable[T]]) -> T | None:
        """fn()'s result, or None when Redis cannot answer (within the
        timeout, the breaker closed) and the limiter fails open; raises
        Unavailable (503) when failing closed."""
        try:
            return await self.call(fn)
        except LimiterUnavailable as e:
            self._fail_mode(e)
            return None

    async def run(self, args: Sequence[Arg], key: str | None = None) -> Any:
        """execute(args), or None for the fail mode as ask() (`key`: the
        call's, for the messages)."""
        if self._fast is not None:
            return await self.run_resp(encode(args), key)
        try:
            return await self.execute(args)
        except LimiterUnavailable as e:
            self._fail_mode(e, key)
            return None

    async def run_resp(self, command: bytes, key: str | None = None) -> Any:
        """run() for a command already in RESP, on the pipelined connection
        (there must be one)."""
        fast = self._fast
        assert fast is not None
        breaker = self.breaker
        if breaker is None or breaker._opened_at is None:
            # execute() unrolled, for the common case: a check, the breaker closed
            try:
                reply = await fast.send(command)
            except Exception as e:
                err = breaker._failed_with(e, False) if breaker is not None else unavailable(e)
                if not isinstance(err, LimiterUnavailable):
                    raise
                self._fail_mode(err, key)
                return None
            if breaker is not None and breaker._failed:
                breaker._success(False)
            return reply
        try:
            return await breaker.call(lambda: fast.send(command), None)
        except LimiterUnavailable as e:
            self._fail_mode(e, key)
            return None

    def _fail_mode(self, e: LimiterUnavailable, key: str | None = None) -> None:
        self.failures[e.kind] += 1
        if e.kind == MISCONFIGURED:
            # Redis answered: not an outage, never failed open by default.
            wrong = self.explain(e, key)
            serving = self.serve_misconfigured
            self.report(wrong, "serving without limits (serve_misconfigured=True)" if serving
                        else "answering 503")  # fmt: skip
            if not serving:
                raise Misconfigured(wrong) from None
            return
        # A pool with no free connection is the app's own congestion, not
        # Redis down: failing open would let a burst through. Always 503.
        fail_open = self.fail_open and e.kind != POOL_EXHAUSTED
        mode = "serving without limits" if fail_open else "answering 503"
        self.warn(e.kind, "rate limiter unavailable (%s), %s: %s", e.kind, mode, e)
        if not fail_open:
            raise Unavailable() from None

    def explain(self, e: LimiterUnavailable, key: str | None = None) -> RateLimiterMisconfigured:
        """The RateLimiterMisconfigured of a MISCONFIGURED failure, naming
        the server and the key."""
        wrong = e.misconfigured or misconfigured(e) or RateLimiterMisconfigured(
            str(e), "module-not-loaded")  # fmt: skip
        return located(wrong, self.server(key), key)

    def report(self, wrong: RateLimiterMisconfigured, consequence: str = "") -> None:
        """Logs a misconfiguration at ERROR: at most one per kind per
        `log_interval` s, saying how many were left out since (apart from
        the outages' warnings)."""
        kind = wrong.reason
        now = time.monotonic()
        last, left_out = self._reported.get(kind, (-1e9, 0))
        if now - last <= self.log_interval:
            self._reported[kind] = (last, left_out + 1)
            return
        self._reported[kind] = (now, 0)
        more = f" ({left_out} more since the last report)" if left_out else ""
        log.error("rate limiter misconfigured (%s)%s: %s%s", kind,
                  ", " + consequence if consequence else "", wrong, more)  # fmt: skip

    def _lost(self, e: LimiterUnavailable, what: str, message: str, *args: Any,
              key: str | None = None) -> None:  # fmt: skip
        """A call the request does not wait on failed (a refund, a lease's
        release or renewal, a policy read): a warning, or the ERROR of a
        misconfiguration."""
        self.failures[e.kind] += 1
        if e.kind == MISCONFIGURED:
            self.report(self.explain(e, key), what)
        else:
            self.warn(f"{what}:{e.kind}", message, *args)

    # -- policies kept in the server

    async def sync_policies(self) -> dict[str, str]:
        """Defines the Limiter's policies in the server as their `sync`
        says (Policies.sync), through the timeout and the breaker. Returns
        what became of each; raises LimiterUnavailable when Redis cannot
        answer (then the first call finding a policy missing defines it),
        RateLimiterMisconfigured (ModuleNotLoaded, NOPERM, ...) when it
        answers but cannot hold them, PoliciesNotSynced when they are not
        as the app defines them and the app may not (sync="verify") or
        cannot (its Redis user lacks +rl.policy|set) define them: a
        configuration error, which an `except LimiterUnavailable` does
        not swallow, logged at ERROR."""
        if self.policies is None:
            return {}
        if not self.checked:
            await self.check_server()
        try:
            return await self.policies.sync(_PolicyCalls(self), server=self.server())
        except PoliciesNotSynced as e:
            self.failures[MISCONFIGURED] += 1
            log.error("rate limiter misconfigured (%s), refusing to start: %s", e.reason, e)
            raise
        except LimiterUnavailable as e:
            if e.kind == MISCONFIGURED:
                wrong = self.explain(e)
                self.failures[MISCONFIGURED] += 1
                log.error("rate limiter misconfigured (%s), policies not synced: %s",
                          wrong.reason, wrong)  # fmt: skip
                raise wrong from None
            raise

    async def run_policies(
        self, args: Sequence[Arg], names: Sequence[str], key: str | None = None
    ) -> Any:
        """run(args) for a call using these policies (short names): their
        definitions due for a refresh are read at the same time, and a call
        answered `no such policy` did nothing: it is sent again, once,
        after the policies are defined again (not with sync off). When they
        stay missing (sync="verify", or a Redis user who may not define
        them) it is a misconfiguration: 503 and an ERROR naming them."""
        policies = self.policies
        if policies is None:
            return await self.run(args, key)
        stale = [n for n in names if n in policies and policies.stale(n)]
        try:
            if stale:
                reply = await self._execute_and_read(args, stale)
            else:
                reply = await self.execute(args)
        except LimiterUnavailable as e:
            if not no_such_policy(e):
                self._fail_mode(e, key)
                return None
            try:
                restored = await self._restore_policies()
            except PoliciesNotSynced as stays:  # the server answers: not an outage
                self._fail_mode(LimiterUnavailable(str(stays), MISCONFIGURED, stays), key)
                return None  # serve_misconfigured
            if not restored:
                self._fail_mode(e, key)
                return None
            return await self.run(args, key)
        return reply

    async def _execute_and_read(self, args: Sequence[Arg], names: Sequence[str]) -> Any:
        """execute(args) and RL.POLICY GET of these policies at the same
        time (pipelined down the one connection when there is one), as one
        call for the timeout and the breaker: one failure, not one per
        command. Raises LimiterUnavailable as execute()."""
        policies = self.policies
        assert policies is not None
        fast = self._fast
        calls = _PolicyCalls(self)
        if fast is None:
            execute = self.client.redis.execute_command
            first: Callable[[], Awaitable[Any]] = lambda: execute(*args)  # noqa: E731
        else:
            first = lambda: fast.execute(args)  # noqa: E731

        async def together() -> list[Any]:
            replies = await asyncio.gather(
                first(), *(calls.raw_get(policies.server_name(n)) for n in names),
                return_exceptions=True,
            )  # fmt: skip
            for r in replies:  # an error reply is an answer; anything else is not
                if isinstance(r, BaseException) and not isinstance(r, ResponseError):
                    raise r
            return replies

        if fast is not None and self.breaker is not None:
            replies = await self.breaker.call(together, None)
        else:
            replies = await self.call(together)
        for name, r in zip(names, replies[1:], strict=True):
            if not isinstance(r, BaseException):
                policies.learn(name, policy_get_reply(r))
        if isinstance(replies[0], ResponseError):
            err = unavailable(replies[0])
            assert err is not None  # an error reply is ERROR_REPLY or MISCONFIGURED
            raise err from replies[0]
        return replies[0]

    async def _read_policies(self, names: Sequence[str]) -> None:
        assert self.policies is not None
        try:
            await self.policies.read(_PolicyCalls(self), names)
        except LimiterUnavailable as e:  # the headers keep the last definition known
            self._lost(e, "policy-read", "rate limiter policies not read: %s", e)

    async def _restore_policies(self) -> bool:
        assert self.policies is not None
        try:
            return await self.policies.restore(_PolicyCalls(self), server=self.server())
        except LimiterUnavailable as e:
            self._lost(e, "restore", "rate limiter policies not restored: %s", e)
            return False

    def close(self) -> None:
        """Closes the pipelined connection (the redis client is yours)."""
        if self._fast is not None:
            self._fast.close()

    def warn(self, kind: str, message: str, *args: Any) -> None:
        """Logs a warning, at most one of each kind per `log_interval` s."""
        now = time.monotonic()
        if now - self._last_warning.get(kind, -1e9) > self.log_interval:
            self._last_warning[kind] = now
            log.warning(message, *args)


class _PolicyCalls:
    """RL.POLICY GET and SET for a Limiter's policies, within its timeout
    and through its breaker: down the pipelined connection when there is
    one (it reconnects by itself after a Redis restart, where the pool's
    idle connections fail once each), else through the client (which sends
    RL.POLICY SET to every master of a cluster)."""

    def __init__(self, limiter: Limiter) -> None:
        self.limiter = limiter

    async def raw_get(self, name: str) -> Any:
        """RL.POLICY GET without the timeout or the breaker (the caller's)."""
        limiter = self.limiter
        if limiter._fast is None:
            return await limiter.client.policy_get(name)
        return await limiter._fast.execute(("RL.POLICY", "GET", name))

    async def policy_get(self, name: str) -> list[str] | None:
        limiter = self.limiter
        if limiter._fast is None:
            return await limiter.call(lambda: limiter.client.policy_get(name))
        return policy_get_reply(await limiter.execute(("RL.POLICY", "GET", name)))

    async def policy_set(
        self, name: str, limit: Limit, *, penalty: Duration | None = None, shadow: bool = False
    ) -> None:
        limiter = self.limiter
        if limiter._fast is None:
            await limiter.call(
                lambda: limiter.client.policy_set(name, limit, penalty=penalty, shadow=shadow)
            )
        else:
            await limiter.execute(policy_set_args(name, limit, penalty, shadow))


# ---------------------------------------------------------------- limits


def _limit_for(rate: Rate, algorithm: str, burst: int | None) -> Limit:
    window = f"{rate.seconds}s"
    if algorithm == "fixed":
        return Fixed(rate.amount, window)
    if algorithm == "sliding":
        return Sliding(rate.amount, window)
    if algorithm == "log":
        return Log(rate.amount, window)
    capacity = burst or rate.amount
    if algorithm == "token":
        return Token(capacity, rate.amount, window)
    if algorithm == "leaky":
        return Leaky(capacity, rate.amount, window)
    return Gcra(capacity - 1, rate.amount, window)  # capacity at once


@dataclass(frozen=True)
class _Plan:
    """What one request checks: (quota name, window seconds, Limit) each,
    and the command's arguments that do not depend on the request."""

    parts: tuple[tuple[str, int | None, Limit], ...]
    suffixes: tuple[str, ...]  # of the keys: ":" + the quota's name
    head: tuple[Arg, ...]  # before the keys: RL.<ALGO>, RL.CHECK <policy>, RL.ALL <n>
    middle: tuple[Arg, ...]  # after the keys: the limits' parameters
    # the same in RESP, "COST" after the parameters (for the pipelined connection)
    head_resp: bytes = b""
    middle_resp: bytes = b""
    # the short names of the policies it uses (kept in the server), worked
    # out once: every check asks
    policy_names: tuple[str, ...] = field(default=(), init=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "head_resp", encode_args(self.head))
        object.__setattr__(self, "middle_resp", encode_args((*self.middle, "COST")))
        names = tuple(n for n, _, spec in self.parts if isinstance(spec, Policy))
        object.__setattr__(self, "policy_names", names)

    @classmethod
    def of(cls, parts: tuple[tuple[str, int | None, Limit], ...]) -> _Plan:
        suffixes = tuple(":" + name for name, _, _ in parts)
        if len(parts) > 1:
            middle = tuple(a for _, _, spec in parts for a in spec.args())
            return cls(parts, suffixes, ("RL.ALL", len(parts)), middle)
        spec = parts[0][2]
        if isinstance(spec, Policy):
            return cls(parts, suffixes, ("RL.CHECK", spec.name), ())
        return cls(parts, suffixes, ("RL." + spec.algorithm,), tuple(spec.params()))

    def command(self, keys: list[str], cost: int, options: tuple[Arg, ...]) -> list[Arg]:
        return [*self.head, *keys, *self.middle, "COST", cost, *options]

    def resp(
        self, keys: list[str], cost: int, options: tuple[Arg, ...], options_resp: bytes
    ) -> bytes:
        """command() in RESP, from the parts encoded beforehand."""
        n = len(self.head) + len(keys) + len(self.middle) + 2 + len(options)
        encoded_keys = encode_str(keys[0]) if len(keys) == 1 else b"".join(map(encode_str, keys))
        return b"*%d\r\n%s%s%s%s%s" % (n, self.head_resp, encoded_keys, self.middle_resp,
                                        encode_int(cost), options_resp)  # fmt: skip


def _per_limit(value: Any, n: int, what: str) -> list[Any]:
    if isinstance(value, (list, tuple)):
        if len(value) != n:
            raise ValueError(f"{what}: {len(value)} given for {n} limits")
        return list(value)
    return [value] * n


_Target: TypeAlias = "tuple[list[str], str, bytes]"
_TARGETS = 4096  # cached targets per rule, at most (then it starts over)
_new = object.__new__


def _decision5(reply: list[Any]) -> Decision:
    """Decision.from_reply() of a five-field reply, for every check."""
    allowed, limit, remaining, retry, reset = reply
    d = _new(Decision)
    fields = d.__dict__
    fields["allowed"] = allowed == 1
    fields["limit"] = int(limit)
    fields["remaining"] = int(remaining)
    fields["retry_after_ms"] = int(retry)
    fields["reset_after_ms"] = int(reset)
    fields["lease_id"] = None
    fields["limits"] = ()
    return d


class RateLimit:
    """A dependency (and the middleware's engine) enforcing limits per key.

    limits     "100/minute;5000/day" (every one must allow: one RL.ALL), a
               list of Rate, "policy:<name>" for a policy kept in the
               server (RL.POLICY SET), or request -> any of these (may be
               async), e.g. a tier chosen per request; None: no limit
    algorithm  fixed | sliding | log | token | leaky | gcra, or one per rate
    key        request -> identity (by_ip, by_api_key, yours; may be async);
               None skips the limit for that request
    cost       an int, or request -> int (may be async); 0 only peeks
    burst      bucket algorithms: capacity (default: the rate's amount)
    scope      namespace of the keys (default: method and route path)
    penalty    a denied key is blocked that long (the module's PENALTY)
    shadow     decide and count, never deny (the module's SHADOW)
    """

    def __init__(
        self,
        limiter: Limiter,
        limits: LimitsArg,
        *,
        algorithm: str | Sequence[str] = "sliding",
        key: KeyFunc | None = None,
        cost: int | CostFunc = 1,
        burst: int | Sequence[int | None] | None = None,
        scope: str | None = None,
        penalty: Duration | None = None,
        shadow: bool = False,
    ) -> None:
        self.limiter = limiter
        self.algorithm = algorithm
        self.burst = burst
        self.key = key
        self.cost = cost
        self.scope = scope
        self.penalty = None if penalty is None else duration_arg(penalty, "penalty")
        self.shadow = shadow
        self._peek_options: tuple[Arg, ...] = ("SHADOW",) if shadow else ()
        self._options = self._peek_options
        if self.penalty is not None:
            self._options = ("PENALTY", self.penalty, *self._options)
        self._options_resp = encode_args(self._options)
        self._peek_options_resp = encode_args(self._peek_options)
        self._static: _Plan | None = None
        # (identity, method, route path) -> the static plan's keys, their
        # deny-cache key and the command at the default cost: what every
        # check of a returning caller would build again.
        self._targets: dict[tuple[str, str, str], _Target] = {}
        self._dynamic: Callable[[Request], Any] | None = None
        self._plans: dict[Any, _Plan] = {}
        if callable(limits):
            self._dynamic = limits
        else:
            self._static = self._plan(limits)
        if isinstance(cost, int) and (isinstance(cost, bool) or cost < 0):
            raise ValueError(f"cost must be a non-negative integer, not {cost!r}")

    def _plan(self, limits: Any) -> _Plan:
        if isinstance(limits, str) and limits.startswith(_POLICY_PREFIX):
            # "policy:a" or several, "policy:a;policy:b" (one RL.ALL).
            names = [p.strip() for p in limits.split(";")]
            if not all(n.startswith(_POLICY_PREFIX) for n in names) or not 1 <= len(names) <= 64:
                raise ValueError(f"bad limits {limits!r}: 1 to 64 of 'policy:<name>', ';' apart")
            book = self.limiter.policies
            parts = []
            for n in (n[len(_POLICY_PREFIX) :] for n in names):
                server = book.server_name(n) if book is not None and n in book else n
                parts.append((n, None, Policy(server)))
            return _Plan.of(tuple(parts))
        rates = parse_rates(limits) if isinstance(limits, str) else list(limits)
        if not 1 <= len(rates) <= 64:
            raise ValueError("1 to 64 limits per RateLimit")
        algos = [str(a).lower() for a in _per_limit(self.algorithm, len(rates), "algorithm")]
        for a in algos:
            if a not in ALGORITHMS:
                raise ValueError(f"unknown algorithm {a!r} (use {', '.join(ALGORITHMS)})")
        bursts = _per_limit(self.burst, len(rates), "burst")
        return _Plan.of(
            tuple(
                (r.name, r.seconds, _limit_for(r, a, b))
                for r, a, b in zip(rates, algos, bursts, strict=True)
            )
        )

    async def plan(self, request: Request) -> _Plan | None:
        if self._static is not None:
            return self._static
        assert self._dynamic is not None
        chosen = await _resolve(self._dynamic(request))
        if chosen is None:
            return None
        cache_key = chosen if isinstance(chosen, str) else tuple(chosen)
        plan = self._plans.get(cache_key)
        if plan is None:
            plan = self._plan(chosen)
            if len(self._plans) < 1000:
                self._plans[cache_key] = plan
        return plan

    def _target_of(self, request: Request, ident: str, plan: _Plan) -> _Target:
        keys = self.keys(request, ident, plan)
        cache_key = keys[0] if len(keys) == 1 else "\0".join(keys)
        command = b""  # only the pipelined connection sends RESP made here
        cost = self.cost
        if isinstance(cost, int) and self.limiter._fast is not None and not plan.policy_names:
            options = (self._options, self._options_resp) if cost > 0 else (
                self._peek_options, self._peek_options_resp)  # fmt: skip
            command = plan.resp(keys, cost, *options)
        return keys, cache_key, command

    def keys(self, request: Request, ident: str, plan: _Plan) -> list[str]:
        base = _key_base(self.limiter.prefix, ident, self.scope, request)
        return [base + suffix for suffix in plan.suffixes]

    async def _target(self, request: Request) -> tuple[list[str], _Plan] | None:
        """This request's keys and plan; None when no limit applies."""
        limiter = self.limiter
        if not limiter.enabled:
            return None
        request.scope.setdefault("redis_ratelimit.limiter", limiter)
        key_fn = self.key or limiter.key
        ident = key_fn(request)
        if ident is not None and not isinstance(ident, str):
            ident = await _resolve(ident)
        if ident is None:
            return None
        plan = self._static or await self.plan(request)
        if plan is None:
            return None
        return self.keys(request, ident, plan), plan

    async def check(self, request: Request, cost: int | None = None) -> Outcome | None:
        """The decision for this request (one round trip, or none when the
        deny cache already knows the answer); None when no limit applies or
        Redis could not answer and the limiter fails open."""
        # _target(), inline: one coroutine less per request
        limiter = self.limiter
        if not limiter.enabled:
            return None
        scope = request.scope
        if "redis_ratelimit.limiter" not in scope:
            scope["redis_ratelimit.limiter"] = limiter
        ident = (self.key or limiter.key)(request)
        if ident is not None and not isinstance(ident, str):
            ident = await _resolve(ident)
        if ident is None:
            return None
        if cost is None:
            cost = self.cost if isinstance(self.cost, int) else await _resolve(self.cost(request))
        plan = self._static
        target: _Target | None = None
        if plan is not None:
            ck: tuple[str, str, str] | None = None
            if self.scope is not None:
                ck = (ident, "", "")
            else:
                path = getattr(scope.get("route"), "path", None)
                if path is not None:
                    ck = (ident, scope["method"], path)
            if ck is not None:
                target = self._targets.get(ck)
                if target is None:
                    target = self._target_of(request, ident, plan)
                    if len(self._targets) >= _TARGETS:
                        self._targets.clear()
                    self._targets[ck] = target
        else:
            plan = await self.plan(request)
            if plan is None:
                return None
        if target is None:
            target = self._target_of(request, ident, plan)
        keys, cache_key, command = target
        # Not for policies: an RL.POLICY SET applies to the next call.
        if cost > 0 and not plan.policy_names:
            cached = limiter.deny_cache.get(cache_key)
            if cached is not None:
                left, outcome = cached
                was = outcome.decision
                ms = math.ceil(left * 1000)
                return Outcome(
                    Decision(False, was.limit, 0, ms, max(ms, was.reset_after_ms)),
                    outcome.quotas,
                    outcome.cap_retry,
                )
        fast = limiter._fast
        if plan.policy_names:
            # With the definitions' reads, and a retry on 'no such policy'.
            args = plan.command(keys, cost, self._options if cost > 0 else self._peek_options)
            reply = await limiter.run_policies(args, plan.policy_names, keys[0])
        elif fast is not None:
            if cost != self.cost or not command:
                if cost > 0:
                    command = plan.resp(keys, cost, self._options, self._options_resp)
                else:
                    command = plan.resp(keys, cost, self._peek_options, self._peek_options_resp)
            breaker = limiter.breaker
            fut = fast.submit(command) if breaker is None or breaker._opened_at is None else None
            if fut is None:  # not connected yet, or the breaker open
                reply = await limiter.run_resp(command, keys[0])
            else:  # run_resp(), inline: the common case waits in this frame only
                try:
                    reply = await fut
                except Exception as e:
                    err = breaker._failed_with(e, False) if breaker is not None else unavailable(e)
                    if not isinstance(err, LimiterUnavailable):
                        raise
                    limiter._fail_mode(err, keys[0])
                    return None
                if breaker is not None and breaker._failed:
                    breaker._success(False)
        else:
            args = plan.command(keys, cost, self._options if cost > 0 else self._peek_options)
            reply = await limiter.run(args, keys[0])
        if reply is None:
            return None
        if type(reply) is list and len(reply) == 5:
            decision = _decision5(reply)
        else:
            decision = Decision.from_reply(reply)
        if plan.policy_names:
            await self._check_definitions(plan, decision)
        outcome = self._outcome(decision, plan)
        if not outcome.allowed and cost > 0 and not plan.policy_names:
            limiter.deny_cache.put(cache_key, outcome)
        return outcome

    async def _check_definitions(self, plan: _Plan, d: Decision) -> None:
        """A limit other than the known definition's: the policy was
        changed; read it again (once per change) for the headers."""
        book = self.limiter.policies
        if book is None:
            return
        subs = d.limits or (d,)
        changed = [
            n
            for (n, _, spec), s in zip(plan.parts, subs, strict=True)
            if isinstance(spec, Policy) and n in book and s.limit != book.current(n).capacity
        ]
        if changed:
            await self.limiter._read_policies(changed)

    def _outcome(self, d: Decision, plan: _Plan) -> Outcome:
        parts = plan.parts
        # The usual case, without the dataclasses' __init__ (a policy's
        # window and penalty come from its definition, below).
        if len(parts) == 1 and not d.limits and not plan.policy_names:
            name, window, _ = parts[0]
            q = _new(Quota)
            fields = q.__dict__
            fields["name"] = name
            fields["window"] = window
            fields["decision"] = d
            fields["concurrent"] = False
            o = _new(Outcome)
            fields = o.__dict__
            fields["decision"] = d
            fields["quotas"] = (q,)
            fields["cap_retry"] = self.penalty is None
            return o
        subs = d.limits or (d,)
        book = self.limiter.policies
        windows = [
            book.current(n).window_s()
            if book is not None and isinstance(spec, Policy) and n in book
            else w
            for n, w, spec in plan.parts
        ]
        return Outcome(
            d,
            tuple(
                Quota(n, w, s) for (n, _, _), w, s in zip(plan.parts, windows, subs, strict=True)
            ),
            # A policy may carry a penalty the client does not know of.
            cap_retry=self.penalty is None and not plan.policy_names,
        )

    async def hit(
        self, request: Request, response: Response | None = None, cost: int | None = None
    ) -> Outcome | None:
        """Checks (spending `cost`, default the limit's), sets the headers
        on `response`, raises Denied (429) when a limit denies, or
        Unavailable (503) when failing closed."""
        outcome = await self.check(request, cost)
        if outcome is None:
            return None
        raw = _record(request, _RATE_LIMITS, outcome, self.limiter.headers)
        if not outcome.allowed:
            raise Denied(outcome, _header_dict(raw))
        if response is not None:
            _put_headers(response, raw)
        return outcome

    async def peek(self, request: Request) -> Outcome | None:
        """The caller's state under these limits, spending nothing."""
        return await self.check(request, 0)

    async def refund(
        self, request: Request, response: Response | None = None, cost: int = 1
    ) -> Outcome | None:
        """Gives back `cost` units to each of the caller's limits (RL.REFUND,
        by each algorithm's rule: never into a window that has closed, never
        more than was spent), for "charge first, refund on success":

            @app.post("/login")
            async def login(request: Request, response: Response,
                            charged=Depends(login_limit)):
                ...  # a wrong password raises: the attempt stays counted
                if charged is not None:
                    await login_limit.refund(request, response)

        The state afterwards is read in the same round trip and put in the
        headers (and on `response`). Returns it; None when the limit does
        not apply or Redis could not answer. Never raises for Redis: the
        request has been served, a lost refund only leaves it counted (a
        warning is logged, at most one per 10 s)."""
        check_amount(cost, "cost")
        target = await self._target(request)
        if target is None:
            return None
        keys, plan = target
        limiter = self.limiter
        pipe = limiter.client.redis.pipeline(transaction=False)
        for k in keys:
            pipe.execute_command("RL.REFUND", k, cost)
        pipe.execute_command(*plan.command(keys, 0, self._peek_options))
        try:
            replies = await limiter.call(pipe.execute)
        except LimiterUnavailable as e:
            limiter._lost(e, "refund", "rate limiter refund lost (%s): %s", e.kind, e, key=keys[0])
            return None
        limiter.deny_cache.discard(keys[0] if len(keys) == 1 else "\0".join(keys))
        outcome = self._outcome(Decision.from_reply(replies[-1]), plan)
        raw = _record(request, _RATE_LIMITS, outcome, limiter.headers, served=True)
        if response is not None:
            _put_headers(response, raw)
        return outcome

    def wrap(self, endpoint: E) -> E:
        """The limit as a decorator on a FastAPI endpoint (Limiter.limited),
        the cheaper form: FastAPI resolves a dependency in a generic way
        that costs about as much as the check itself, a decorator is one
        call more. The check runs when the endpoint is called, after the
        route's dependencies and the request's validation (a request
        answered 422 is not counted); headers, 429 and fail modes are the
        dependency's. The endpoint's own `request: Request` and `response:
        Response` parameters are used when it has them, else added unseen
        (not in OpenAPI)."""
        return _wrap_endpoint(self, endpoint)

    async def __call__(self, request: Request, response: Response) -> Outcome | None:
        # hit(request, response), inline: one coroutine less per request
        outcome = await self.check(request)
        if outcome is None:
            return None
        raw = _record(request, _RATE_LIMITS, outcome, self.limiter.headers)
        if not outcome.allowed:
            raise Denied(outcome, _header_dict(raw))
        _put_headers(response, raw)
        return outcome


_REQUEST_ARG = "redis_ratelimit_request"
_RESPONSE_ARG = "redis_ratelimit_response"


def _typed_parameters(endpoint: Callable[..., Any]) -> list[inspect.Parameter]:
    """The endpoint's parameters, annotations evaluated as FastAPI will."""
    try:
        from fastapi.dependencies.utils import get_typed_signature
    except ImportError:  # not FastAPI: the annotations as written
        return list(inspect.signature(endpoint).parameters.values())
    return list(get_typed_signature(endpoint).parameters.values())


def _param_of(params: list[inspect.Parameter], cls: type) -> str | None:
    for p in params:
        if isinstance(p.annotation, type) and issubclass(p.annotation, cls):
            return p.name
    return None


def _wrap_endpoint(rule: RateLimit, endpoint: E) -> E:
    if not callable(endpoint) or isinstance(endpoint, (RateLimit, ConcurrencyLimit)):
        raise TypeError(f"limited() decorates an endpoint function, not {endpoint!r}")
    typed = _typed_parameters(endpoint)
    request_name = _param_of(typed, Request)
    response_name = _param_of(typed, Response)
    signature = inspect.signature(endpoint)
    params = list(signature.parameters.values())
    extra = []
    if request_name is None:
        extra.append(inspect.Parameter(_REQUEST_ARG, inspect.Parameter.KEYWORD_ONLY,
                                       annotation=Request))  # fmt: skip
    if response_name is None:
        extra.append(inspect.Parameter(_RESPONSE_ARG, inspect.Parameter.KEYWORD_ONLY,
                                       annotation=Response))  # fmt: skip
    # Keyword-only parameters go before a **kwargs, if there is one.
    split = len(params) - (1 if params and params[-1].kind is inspect.Parameter.VAR_KEYWORD
                           else 0)  # fmt: skip
    params = params[:split] + extra + params[split:]
    take_request = request_name is None
    take_response = response_name is None
    request_key = request_name or _REQUEST_ARG
    response_key = response_name or _RESPONSE_ARG
    is_async = inspect.iscoroutinefunction(endpoint) or inspect.iscoroutinefunction(
        getattr(endpoint, "__call__", None)  # noqa: B004 (a callable object)
    )

    @functools.wraps(endpoint)
    async def limited(*args: Any, **kwargs: Any) -> Any:
        request = kwargs.pop(request_key) if take_request else kwargs[request_key]
        response = kwargs.pop(response_key) if take_response else kwargs[response_key]
        await rule(request, response)
        if is_async:
            return await endpoint(*args, **kwargs)
        return await run_in_threadpool(endpoint, *args, **kwargs)

    limited.__signature__ = signature.replace(parameters=params)  # type: ignore[attr-defined]
    rules = (*getattr(endpoint, _RULES_ATTR, ()), rule)
    setattr(limited, _RULES_ATTR, rules)
    return limited  # type: ignore[return-value]


_RULES_ATTR = "__redis_ratelimit_limits__"


def _route_scope(request: Request) -> str:
    route = request.scope.get("route")
    path = getattr(route, "path", None) or request.url.path
    return f"{request.method}:{path}"


def _key_base(prefix: str, ident: str, scope: str | None, request: Request) -> str:
    if scope is None:
        scope = _route_scope(request)
    return f"{prefix}:{{{_escape(ident)}}}:{_escape(scope)}"


_RATE_LIMITS = "rate"  # the owner of rate limits' outcomes: the latest one counts


def _combine(outcomes: list[Outcome]) -> Outcome:
    """One outcome for a rate limit's and concurrency limits' outcomes:
    every quota listed; the numbers (X-RateLimit-*, Retry-After) of the one
    that denied with the longest wait, else of the tightest rate limit."""
    denied = [o for o in outcomes if not o.allowed]
    if denied:
        top = max(denied, key=lambda o: (o.decision.retry_after_ms < 0, o.decision.retry_after_ms))
    else:
        windowed = [o for o in outcomes if not any(q.concurrent for q in o.quotas)]
        top = min(windowed or outcomes,
                  key=lambda o: (o.decision.remaining, -o.decision.reset_after_ms))  # fmt: skip
    return Outcome(top.decision, tuple(q for o in outcomes for q in o.quotas), top.cap_retry)


def _record(
    request: Request, owner: object, outcome: Outcome, style: str | None, *, served: bool = False
) -> list[tuple[bytes, bytes]]:
    """The headers of this request's decisions (the latest of the rate
    limits, and each concurrency limit's), kept in the scope for the
    middleware. `served`: the request goes through whatever the state says."""
    scope = request.scope
    outcomes: dict[object, Outcome] | None = scope.get("redis_ratelimit.outcomes")
    if outcomes is None:
        scope["redis_ratelimit.outcomes"] = {owner: outcome}
    else:
        outcomes[owner] = outcome
        if len(outcomes) > 1:
            outcome = _combine(list(outcomes.values()))
    raw = outcome.raw_headers(style, served)
    scope["redis_ratelimit.raw_headers"] = raw
    return raw


_HEADER_NAMES = {
    b"ratelimit-policy": "RateLimit-Policy",
    b"ratelimit": "RateLimit",
    b"x-ratelimit-limit": "X-RateLimit-Limit",
    b"x-ratelimit-remaining": "X-RateLimit-Remaining",
    b"x-ratelimit-reset": "X-RateLimit-Reset",
    b"retry-after": "Retry-After",
}


def _header_dict(raw: list[tuple[bytes, bytes]]) -> dict[str, str]:
    return {_HEADER_NAMES[k]: v.decode() for k, v in raw}


def _put_headers(response: Response, raw: list[tuple[bytes, bytes]]) -> None:
    if not response.raw_headers:  # a dependency's fresh response: no header to replace
        response.raw_headers.extend(raw)
        return
    headers = response.headers
    for k, v in raw:
        headers[_HEADER_NAMES[k]] = v.decode()


# ---------------------------------------------------------------- concurrency limits

_releasing: set[asyncio.Future[Any]] = set()  # releases outliving a cancelled request


class ConcurrencyLimit:
    """A dependency: at most `limit` requests in flight per identity, each
    holding a lease (RL.ACQUIRE) for as long as it runs.

        inflight = limiter.concurrency(2, ttl="10s", key=by_api_key)

        @app.post("/orders", dependencies=[Depends(inflight)])
        async def orders(): ...

    ttl        a lease's time to live: a worker that dies without releasing
               frees its slot after it
    key        request -> identity (default: the limiter's); None: no limit
    scope      namespace of the key (default: method and route path)
    name       the quota's name in the headers and the key
    heartbeat  renew the lease (RL.RENEW) every ttl/3 while the request
               runs, so that work longer than the ttl keeps its slot

    The lease is released when the request ends, however it ends (returned,
    raised, cancelled by a client that went away). A request finding every
    slot taken gets 429 with Retry-After (when a slot is sure to be free:
    the earliest expiry of a lease held; usually one is freed sooner).
    `async with inflight.lease(request, response):` holds a slot for a block
    instead. The lease id is made here, so a lost reply cannot leave a lease
    that nothing could release (its ttl frees it)."""

    def __init__(
        self,
        limiter: Limiter,
        limit: int,
        *,
        ttl: Duration = 30,
        key: KeyFunc | None = None,
        scope: str | None = None,
        name: str = "inflight",
        heartbeat: bool = True,
    ) -> None:
        self.limiter = limiter
        self.limit = check_amount(limit, "limit")
        self.ttl = duration_arg(ttl, "ttl")
        seconds = duration_seconds(ttl)
        if seconds is None or seconds <= 0:
            raise ValueError(f"bad ttl {ttl!r}: use us, ms, s, m, h or d")
        self.ttl_seconds = seconds
        self.key = key
        self.scope = scope
        if not name or any(c in name for c in '{}"; ,'):
            raise ValueError(f"bad name {name!r}")
        self.name = name
        self.heartbeat = heartbeat

    def key_name(self, request: Request, ident: str) -> str:
        """The Redis key holding this identity's leases."""
        return f"{_key_base(self.limiter.prefix, ident, self.scope, request)}:{self.name}"

    async def _key(self, request: Request) -> str | None:
        limiter = self.limiter
        if not limiter.enabled:
            return None
        request.scope.setdefault("redis_ratelimit.limiter", limiter)
        ident = await _resolve((self.key or limiter.key)(request))
        return None if ident is None else self.key_name(request, ident)

    def _outcome(self, d: Decision) -> Outcome:
        return Outcome(d, (Quota(self.name, None, d, concurrent=True),), cap_retry=False)

    async def peek(self, request: Request) -> Outcome | None:
        """The slots free now, taking none."""
        key = await self._key(request)
        if key is None:
            return None
        reply = await self.limiter.run(("RL.ACQUIRE", key, self.limit, self.ttl, "COST", 0), key)
        return None if reply is None else self._outcome(Decision.from_reply(reply))

    @asynccontextmanager
    async def lease(
        self, request: Request, response: Response | None = None
    ) -> AsyncIterator[Lease | None]:
        """Holds a slot for the block (see the class). Raises Denied (429)
        when none is free. Yields the Lease, or None when the limit does not
        apply or Redis could not answer and the limiter fails open (failing
        closed raises Unavailable, 503)."""
        key = await self._key(request)
        if key is None:
            yield None
            return
        limiter = self.limiter
        lease_id = uuid.uuid4().hex
        # A call that timed out may still run when a stalled Redis resumes:
        # that lease is freed by its ttl.
        reply = await limiter.run(("RL.ACQUIRE", key, self.limit, self.ttl, "ID", lease_id), key)
        if reply is None:  # failing open: the block runs without a slot
            yield None
            return
        d = Decision.from_reply(reply)
        outcome = self._outcome(d)
        raw = _record(request, self, outcome, limiter.headers)
        if not d.allowed:
            raise Denied(outcome, _header_dict(raw))
        if response is not None:
            _put_headers(response, raw)
        keeper = asyncio.ensure_future(self._keep(key, lease_id)) if self.heartbeat else None
        try:
            yield Lease(key, lease_id, d)
        finally:
            if keeper is not None:
                keeper.cancel()
            # Released even when the request is being cancelled: in a task
            # of its own, which the cancellation does not reach.
            release = asyncio.ensure_future(self._release(key, lease_id))
            _releasing.add(release)
            release.add_done_callback(_releasing.discard)
            await asyncio.shield(release)

    async def __call__(self, request: Request, response: Response) -> AsyncIterator[Lease | None]:
        async with self.lease(request, response) as held:
            yield held

    async def _release(self, key: str, lease_id: str) -> bool:
        limiter = self.limiter
        try:
            freed = await limiter.execute(("RL.RELEASE", key, lease_id))
        except LimiterUnavailable as e:
            limiter._lost(e, "release", "rate limiter lease not released (its ttl, %s, frees "
                          "it): %s", self.ttl, e, key=key)  # fmt: skip
            return False
        if not freed:
            limiter.warn("lease-lost", "rate limiter lease on %s had expired before its "
                         "request ended", key)  # fmt: skip
        return bool(freed)

    async def _keep(self, key: str, lease_id: str) -> None:
        limiter = self.limiter
        renew = ("RL.RENEW", key, lease_id, self.ttl)
        while True:
            await asyncio.sleep(self.ttl_seconds / 3)
            try:
                held = await limiter.execute(renew)
            except LimiterUnavailable as e:
                limiter._lost(e, "renew", "rate limiter lease not renewed: %s", e, key=key)
                continue
            if not held:
                limiter.warn("lease-lost", "rate limiter lease on %s expired while its "
                             "request ran", key)  # fmt: skip
                return


# ---------------------------------------------------------------- middleware


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
                outcome = await rule.check(request)  # hit(), inline
            except Unavailable as exc:
                await JSONResponse({"detail": exc.detail}, status_code=503)(scope, receive, send)
                return
            if outcome is not None:
                raw = _record(request, _RATE_LIMITS, outcome, self.limiter.headers)
                if not outcome.allowed:
                    denied = Denied(outcome, _header_dict(raw))
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


# ---------------------------------------------------------------- OpenAPI

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


__all__ = [
    "CircuitBreaker",
    "ConcurrencyLimit",
    "Denied",
    "DenyCache",
    "Limiter",
    "LimiterUnavailable",
    "Misconfigured",
    "ModuleNotLoaded",
    "Outcome",
    "Quota",
    "RateLimit",
    "RateLimitMiddleware",
    "RateLimiterMisconfigured",
    "Unavailable",
    "bearer_token",
    "by_api_key",
    "by_ip",
    "client_ip",
    "freeze_heap",
    "openapi_responses",
    "widen_young_generation",
]

"""Rate limiting for FastAPI on top of the ratelimit Redis module (RL.* commands).

Copy this file into your service. Usage:

    app = FastAPI(lifespan=lifespan)          # lifespan calls setup(app, redis)
    login_limit = RateLimit("5/minute", algorithm="fixed", key=by_ip)

    @app.post("/login", dependencies=[Depends(login_limit)])
    async def login(...): ...

Each check costs exactly one Redis round trip: one RL.<ALGO> call for a
single limit, or one atomic RL.ALL call when the rate string holds several
("1/second;100/day"): the request is allowed only if every limit allows it.
`penalty="15m"` puts a key that is refused in a penalty box (PENALTY), and
`await limit.refund(request, response)` gives back what a request spent
(RL.REFUND), e.g. for a login that succeeded.

Limits can live in Redis as named policies, which an operator changes with
one RL.POLICY SET while the app runs:

    paid = Policy("paid", "1000/minute", algorithm="token")
    policies = Policies([paid])                 # setup(app, redis, policies=policies)
    await policies.sync(config)                 # in lifespan: RL.POLICY SET what is missing
    paid_limit = RateLimit(paid, key=by_api_key)   # RL.CHECK paid ...

A ConcurrencyLimit bounds the requests in flight with leases (RL.ACQUIRE,
RL.RENEW, RL.RELEASE):

    inflight = ConcurrencyLimit(2, ttl="10s", key=by_user)

    async with inflight.lease(request, response):   # 429 when 2 are running
        ...                                          # released however it ends

When Redis cannot answer, the request takes the fail mode (served without
limits, or 503). redis_client() makes a client that waits for a free
connection instead of failing during bursts, and a CircuitBreaker stops
asking a Redis that keeps failing, so that a stalled one does not cost every
request the full timeout. Needs Python 3.11 or later.
"""

from __future__ import annotations

import asyncio
import hashlib
import inspect
import logging
import math
import re
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta, timezone
from typing import Any, TypeVar

from fastapi import FastAPI, HTTPException, Request, Response
from redis.asyncio import BlockingConnectionPool, Redis
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import MaxConnectionsError, RedisError, ResponseError
from starlette.types import ASGIApp, Message, Receive, Scope, Send

log = logging.getLogger("ratelimit")

__all__ = [
    "NO_SUCH_POLICY",
    "SYNC_MODES",
    "CircuitBreaker",
    "ConcurrencyLimit",
    "Decision",
    "Lease",
    "LimiterUnavailable",
    "LogThrottle",
    "Policies",
    "Policy",
    "PolicyDef",
    "Quota",
    "Rate",
    "RateLimit",
    "RateLimitConfig",
    "RateLimitHeaders",
    "bearer_token",
    "by_api_key",
    "by_ip",
    "calendar_window",
    "client_ip",
    "combine",
    "parse_duration",
    "parse_offset",
    "parse_rates",
    "redis_client",
    "setup",
]

# ---------------------------------------------------------------- rate strings

_UNITS = {
    "second": 1, "seconds": 1, "sec": 1, "secs": 1, "s": 1,
    "minute": 60, "minutes": 60, "min": 60, "mins": 60, "m": 60,
    "hour": 3600, "hours": 3600, "hr": 3600, "hrs": 3600, "h": 3600,
    "day": 86400, "days": 86400, "d": 86400,
}  # fmt: skip
_UNIT_NAMES = {1: "second", 60: "minute", 3600: "hour", 86400: "day"}
_RATE = re.compile(r"^\s*(\d{1,16})\s*(?:/|\s+per\s+)\s*(\d{1,9})?\s*([A-Za-z]+)\s*$", re.IGNORECASE)
MAX_AMOUNT = 10**15  # the module's largest limit


@dataclass(frozen=True)
class Rate:
    """`amount` requests (cost units) per `seconds`; `name` labels it in
    headers. A concurrency limit (ConcurrencyLimit) has `seconds` 0: `amount`
    requests at a time, no window."""

    amount: int
    seconds: int
    name: str


def parse_rates(text: str) -> list[Rate]:
    """Parse "5/minute", "10 per hour", "100/2 days" or several joined by ';'
    ("1/second;100/day"). Raises ValueError saying what is wrong."""
    if not isinstance(text, str) or not text.strip():
        raise ValueError("empty rate string: expected e.g. '5/minute'")
    rates: list[Rate] = []
    for part in text.split(";"):
        m = _RATE.match(part)
        if not m:
            raise ValueError(
                f"bad rate {part.strip()!r}: expected '<count>/<period>' or "
                "'<count> per <period>', e.g. '5/minute', '10 per hour', '100/2 days'"
            )
        amount, count, unit = int(m[1]), int(m[2] or 1), m[3].lower()
        if unit not in _UNITS:
            raise ValueError(
                f"bad rate {part.strip()!r}: unknown period {m[3]!r} "
                "(use second, minute, hour or day)"
            )
        if amount < 1 or amount > MAX_AMOUNT:
            raise ValueError(f"bad rate {part.strip()!r}: count must be 1 to 10^15")
        if count < 1:
            raise ValueError(f"bad rate {part.strip()!r}: period count must be at least 1")
        seconds = count * _UNITS[unit]
        name = _UNIT_NAMES[_UNITS[unit]] if count == 1 else f"{count}{_UNIT_NAMES[_UNITS[unit]]}"
        if any(r.seconds == seconds for r in rates):
            raise ValueError(f"bad rate {text.strip()!r}: two limits over the same period")
        rates.append(Rate(amount, seconds, name))
    return rates


_DURATION = re.compile(r"^\s*(\d{1,12})\s*(ms|s|m|h|d)?\s*$", re.IGNORECASE)
_DURATION_MS = {"ms": 1, "s": 1000, "m": 60_000, "h": 3_600_000, "d": 86_400_000}
MAX_DURATION_MS = 36500 * 86_400_000  # 100 years: far below the module's limit


def parse_duration(value: str | int) -> int:
    """A duration in milliseconds, as the module writes them: "15m", "900s",
    "500ms", "2h", "1d", or bare seconds ("900" or 900). At least 1 ms.
    Raises ValueError saying what is wrong."""
    if isinstance(value, int) and not isinstance(value, bool):
        value = str(value)  # bare seconds
    m = _DURATION.match(value) if isinstance(value, str) else None
    if not m:
        raise ValueError(
            f"bad duration {value!r}: expected a whole number with an optional unit "
            "(ms, s, m, h, d), e.g. '15m', '900s' or '500ms'"
        )
    ms = int(m[1]) * _DURATION_MS[(m[2] or "s").lower()]
    if not 1 <= ms <= MAX_DURATION_MS:
        raise ValueError(f"bad duration {value!r}: must be from 1 ms to 36500 days")
    return ms


# ---------------------------------------------------------------- Redis client


def redis_client(
    url: str,
    *,
    pool_size: int = 20,
    pool_timeout: float = 10.0,
    timeout: float = 2.0,
    connect_timeout: float = 5.0,
    **kwargs: Any,
) -> Redis:
    """A redis.asyncio client suited to the limiter.

    pool_size        connections at most. A burst of requests beyond it waits
                     for a free connection (a BlockingConnectionPool) instead
                     of failing as redis-py's default pool does
    pool_timeout     how long a request waits for a free connection, at most
    timeout          for one command's reply (socket read/write)
    connect_timeout  for opening a connection

    The defaults leave a healthy Redis on the same host a wide margin: during
    a burst of 1,000 requests on a loaded 2-core machine, replies took at
    most 0.09 s, opening a connection 1.3 s (the event loop is busy) and
    waiting for a free one 2.5 s. No retries: the limiter decides what a
    failed call means (the fail mode).
    """
    pool = BlockingConnectionPool.from_url(
        url,
        max_connections=pool_size,
        timeout=pool_timeout,
        socket_timeout=timeout,
        socket_connect_timeout=connect_timeout,
        retry=Retry(NoBackoff(), 0),
        **kwargs,
    )
    return Redis.from_pool(pool)


# ---------------------------------------------------------------- failures

UNREACHABLE = "unreachable"  # connection refused or lost, timeout: counts for the breaker
CIRCUIT_OPEN = "circuit-open"  # not asked: the breaker is open
POOL_EXHAUSTED = "pool-exhausted"  # no free connection within the pool's timeout
ERROR_REPLY = "error-reply"  # Redis answered with an error (module not loaded, ...)
LEASE_LOST = "lease-lost"  # a lease expired while its request ran (a log kind only)


class LimiterUnavailable(Exception):
    """Redis could not answer the limiter; `kind` says why (one of the
    constants above)."""

    def __init__(self, message: str, kind: str = UNREACHABLE) -> None:
        super().__init__(message)
        self.kind = kind


def failure_kind(error: BaseException) -> str | None:
    """What a Redis call's exception means; None if it is not a Redis problem."""
    if isinstance(error, ResponseError):
        return ERROR_REPLY
    # The default pool raises MaxConnectionsError when full; the waiting
    # pool, ConnectionError("No connection available.") from the timeout of
    # its wait. Neither is Redis failing: when Redis is really down or
    # stalled, the calls holding the connections fail and say so.
    if isinstance(error, MaxConnectionsError) or (
        isinstance(error, RedisConnectionError)
        and isinstance(error.__cause__, asyncio.TimeoutError)
        and "No connection available" in str(error)
    ):
        return POOL_EXHAUSTED
    if isinstance(error, (RedisError, OSError)):  # OSError: TimeoutError too
        return UNREACHABLE
    return None


T = TypeVar("T")


class CircuitBreaker:
    """Stops asking a Redis that keeps failing.

    closed     calls go to Redis; `failures` consecutive failures (connection
               errors, timeouts) open the breaker
    open       for `cooldown` seconds every call fails at once with
               LimiterUnavailable(kind=CIRCUIT_OPEN), without a Redis call;
               the calls still waiting (for a connection or a reply) when it
               opens fail at once too
    half-open  after the cooldown the next call is a trial, the only one let
               through: its success closes the breaker, its failure opens it
               again for another cooldown

    A reply, an error reply included, is a success. A call that found no
    free connection in the pool is neither: the pool was busy, not Redis down.
    """

    def __init__(
        self,
        failures: int = 5,
        cooldown: float = 5.0,
        *,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if failures < 1:
            raise ValueError(f"failures must be at least 1, not {failures!r}")
        if not cooldown > 0:
            raise ValueError(f"cooldown must be positive, not {cooldown!r}")
        self.failures = failures
        self.cooldown = cooldown
        self._clock = clock
        self._failed = 0  # consecutive failures while closed
        self._opened_at: float | None = None
        self._trial = False  # a trial call is in flight
        self._waiting: set[asyncio.Timeout] = set()  # calls in flight

    @property
    def state(self) -> str:
        if self._opened_at is None:
            return "closed"
        if self._trial or self._clock() - self._opened_at < self.cooldown:
            return "open"
        return "half-open"

    async def call(self, fn: Callable[[], Awaitable[T]]) -> T:
        """await fn() unless the breaker is open. Raises LimiterUnavailable
        for a Redis failure; other exceptions pass through."""
        trial = False
        if self._opened_at is not None:
            left = self._opened_at + self.cooldown - self._clock()
            if left > 0 or self._trial:
                why = f"{max(left, 0):.1f} s to the next trial" if left > 0 else "a trial call is in flight"
                raise LimiterUnavailable(f"circuit open ({why})", CIRCUIT_OPEN)
            self._trial = trial = True
        try:
            return await self._call(fn, trial)
        finally:
            if trial:
                self._trial = False

    async def _call(self, fn: Callable[[], Awaitable[T]], trial: bool) -> T:
        cut = asyncio.timeout(None)  # rescheduled to now when the breaker opens
        try:
            async with cut:
                self._waiting.add(cut)
                try:
                    result = await fn()
                finally:
                    self._waiting.discard(cut)
        except Exception as e:
            if cut.expired():
                raise LimiterUnavailable("circuit opened during the call", CIRCUIT_OPEN) from None
            kind = failure_kind(e)
            if kind is None:
                raise
            if kind == UNREACHABLE:
                self._failure(e, trial)
            elif kind == ERROR_REPLY:
                self._success(trial)
            raise LimiterUnavailable(str(e) or type(e).__name__, kind) from e
        self._success(trial)
        return result

    def _success(self, trial: bool) -> None:
        if self._opened_at is None:
            self._failed = 0
        elif trial:
            self._opened_at, self._failed = None, 0
            log.warning("rate limiter circuit closed: Redis answers again")

    def _failure(self, error: Exception, trial: bool) -> None:
        if trial:
            self._opened_at = self._clock()
            log.warning(
                "rate limiter circuit stays open: the trial call failed (%s); next trial in %g s",
                error, self.cooldown,
            )  # fmt: skip
            return
        if self._opened_at is not None:
            return  # already open
        self._failed += 1
        if self._failed < self.failures:
            return
        self._opened_at = self._clock()
        log.warning(
            "rate limiter circuit open after %d consecutive failures (last: %s): "
            "requests take the fail mode without asking Redis for %g s",
            self._failed, error, self.cooldown,
        )  # fmt: skip
        now = asyncio.get_running_loop().time()
        for waiting in list(self._waiting):
            waiting.reschedule(now)


class LogThrottle:
    """At most one warning per `interval` seconds for each kind of message;
    the next one says how many were left out."""

    def __init__(self, interval: float = 10.0, *, clock: Callable[[], float] = time.monotonic):
        self.interval = interval
        self._clock = clock
        self._last: dict[str, float] = {}
        self._skipped: dict[str, int] = {}

    def warning(self, kind: str, message: str, *args: Any) -> bool:
        """Logs unless one of this kind was logged less than `interval` ago;
        True if logged."""
        now = self._clock()
        last = self._last.get(kind)  # None: never logged, whatever the clock says
        if last is not None and now - last < self.interval:
            self._skipped[kind] = self._skipped.get(kind, 0) + 1
            return False
        self._last[kind] = now
        skipped = self._skipped.pop(kind, 0)
        if skipped:
            message += " (and %d more in the last %.0f s)"
            args = (*args, skipped, now - last if last is not None else 0)
        log.warning(message, *args)
        return True


# ---------------------------------------------------------------- configuration


@dataclass
class RateLimitConfig:
    """Per-app settings, kept in app.state.ratelimit (see setup())."""

    redis: Any  # a redis.asyncio.Redis, from redis_client()
    fail_open: bool = True  # Redis unavailable: serve (True) or answer 503 (False)
    trusted_proxies: int = 0  # reverse proxies in front that append X-Forwarded-For
    prefix: str = "rl"
    breaker: CircuitBreaker = field(default_factory=CircuitBreaker)
    log_interval: float = 10.0  # at most one warning per kind per this many seconds
    policies: Policies | None = None  # the app's server-side policies, if it uses any
    logs: LogThrottle = field(init=False, repr=False)

    def __post_init__(self) -> None:
        self.logs = LogThrottle(self.log_interval)

    async def call(self, fn: Callable[[], Awaitable[T]]) -> T:
        """await fn() (a Redis call) through the circuit breaker; raises
        LimiterUnavailable when Redis cannot answer."""
        return await self.breaker.call(fn)

    def book(self) -> Policies:
        if self.policies is None:
            raise RuntimeError("a limit uses policies: give setup(app, redis, policies=...)")
        return self.policies

    async def run(self, commands: Sequence[list[Any]], policies: Sequence[str] = ()) -> list[Any]:
        """Sends the commands in one pipeline (one round trip) through the
        breaker, with RL.POLICY GET of those of `policies` (short names)
        whose definitions are due for a refresh. A command answered `no such
        policy` did nothing: it is sent again, once, after the policies are
        defined again (Policies.restore; not with sync off). Returns the
        commands' replies. Raises LimiterUnavailable when Redis cannot
        answer or answers an error (kind NO_SUCH_POLICY: still missing)."""
        book = self.policies if policies else None
        stale = [n for n in policies if book.stale(n)] if book else []
        extra = book.get_commands(stale) if book else []
        replies = await self._pipeline([*commands, *extra])
        for name, reply in zip(stale, replies[len(commands) :]):
            book.learn(name, reply)  # type: ignore[union-attr]
        replies = replies[: len(commands)]
        failed = [i for i, r in enumerate(replies) if _no_such_policy(r)]
        if failed and book is not None and await book.restore(self):
            again = await self._pipeline([commands[i] for i in failed])
            for i, reply in zip(failed, again):
                replies[i] = reply
        for reply in replies:
            if isinstance(reply, Exception):
                kind = NO_SUCH_POLICY if _no_such_policy(reply) else ERROR_REPLY
                raise LimiterUnavailable(str(reply), kind)
        return replies

    async def _pipeline(self, commands: Sequence[list[Any]]) -> list[Any]:
        pipe = self.redis.pipeline(transaction=False)
        for args in commands:
            pipe.execute_command(*args)
        # Error replies come back in the list: Redis answered (the breaker
        # counts it so), and the caller decides what each one means.
        replies: list[Any] = await self.call(lambda: pipe.execute(raise_on_error=False))
        return replies

    def unavailable(self, error: LimiterUnavailable) -> None:
        """Takes the fail mode for a request that got no answer: returns
        (serve it) when failing open, raises the 503 when failing closed.
        Logs at most one warning per kind of failure per log_interval."""
        if self.fail_open:
            self.logs.warning(
                f"open:{error.kind}", "rate limiter unavailable, serving without limits: %s", error
            )
            return
        self.logs.warning(
            f"closed:{error.kind}", "rate limiter unavailable, answering 503: %s", error
        )
        raise HTTPException(503, detail="Rate limiter unavailable") from None


def setup(app: FastAPI, redis: Any, **settings: Any) -> RateLimitConfig:
    """Attach the Redis client and settings (RateLimitConfig's fields) to the
    app; call it in lifespan."""
    config = RateLimitConfig(redis=redis, **settings)
    app.state.ratelimit = config
    return config


def _config(request: Request) -> RateLimitConfig:
    cfg = getattr(request.app.state, "ratelimit", None)
    if cfg is None:
        raise RuntimeError("ratelimit.setup(app, redis) was not called (in lifespan)")
    if not isinstance(cfg, RateLimitConfig):
        raise TypeError(f"app.state.ratelimit is a {type(cfg).__name__}, not a RateLimitConfig")
    return cfg


# ---------------------------------------------------------------- key functions


def client_ip(request: Request) -> str:
    """The client's address: the socket peer, or, only when the app trusts N
    proxies, the N-th address from the right of X-Forwarded-For (the one the
    outermost trusted proxy saw). Addresses further left are client-supplied."""
    cfg = _config(request)
    if cfg.trusted_proxies > 0:
        hops = [
            h.strip()
            for line in request.headers.getlist("x-forwarded-for")
            for h in line.split(",")
            if h.strip()
        ]
        if len(hops) >= cfg.trusted_proxies:
            return hops[-cfg.trusted_proxies]
    return request.client.host if request.client else "unknown"


def bearer_token(request: Request) -> str | None:
    scheme, _, token = request.headers.get("authorization", "").partition(" ")
    token = token.strip()
    return token if scheme.lower() == "bearer" and token else None


def by_ip(request: Request) -> str:
    return "ip:" + client_ip(request)


def by_api_key(request: Request) -> str | None:
    """The API key, hashed so that secrets never appear in Redis key names.
    None without a key: the limit is then not applied."""
    token = bearer_token(request)
    if token is None:
        return None
    return "key:" + hashlib.sha256(token.encode()).hexdigest()[:24]


# ---------------------------------------------------------------- decisions


def _ceil_s(ms: int) -> int:
    return max(0, math.ceil(ms / 1000))


@dataclass
class Quota:
    """One limit's answer."""

    rate: Rate
    algorithm: str
    allowed: bool
    limit: int
    remaining: int
    retry_after_ms: int
    reset_after_ms: int


@dataclass
class Decision:
    """The combined answer (the tightest limit) and one Quota per limit."""

    allowed: bool
    limit: int
    remaining: int
    retry_after_ms: int  # -1: never (the cost exceeds a limit)
    reset_after_ms: int
    quotas: list[Quota]

    @property
    def retry_after_s(self) -> int | None:
        """Seconds to wait, rounded up; None if the request can never pass."""
        if self.retry_after_ms < 0:
            return None
        return max(1, _ceil_s(self.retry_after_ms))

    def headers(self) -> dict[str, str]:
        policy = ", ".join(_policy_item(q) for q in self.quotas)
        state = ", ".join(
            f'"{q.rate.name}";r={q.remaining};t={_ceil_s(q.reset_after_ms)}' for q in self.quotas
        )
        headers = {
            "RateLimit-Policy": policy,
            "RateLimit": state,
            "X-RateLimit-Limit": str(self.limit),
            "X-RateLimit-Remaining": str(self.remaining),
            "X-RateLimit-Reset": str(_ceil_s(self.reset_after_ms)),
        }
        if not self.allowed and self.retry_after_s is not None:
            headers["Retry-After"] = str(self.retry_after_s)
        return headers


LEASE = "lease"  # Quota.algorithm of a concurrency limit


def _policy_item(q: Quota) -> str:
    if q.algorithm == LEASE:
        # The draft's quota unit for a limit on requests in flight; no window.
        return f'"{q.rate.name}";q={q.rate.amount};qu="concurrent-requests"'
    return f'"{q.rate.name}";q={q.rate.amount};w={q.rate.seconds}'


def combine(decisions: Sequence[Decision]) -> Decision:
    """One answer for decisions made by separate calls (a concurrency limit
    and a rate limit): allowed only if all are, every quota listed. Its
    numbers (the X-RateLimit-* headers) are those of the limit that refused,
    with the longest wait (never, -1, longest of all); if none refused, of
    the tightest limit with a window, fewest remaining: a concurrency limit
    shows there only when it refuses."""
    if not decisions:
        raise ValueError("no decision to combine")
    denied = [d for d in decisions if not d.allowed]
    if denied:
        top = max(denied, key=lambda d: (d.retry_after_ms < 0, d.retry_after_ms))
    else:
        windowed = [d for d in decisions if all(q.algorithm != LEASE for q in d.quotas)]
        top = min(windowed or decisions, key=lambda d: (d.remaining, -d.reset_after_ms))
    return Decision(
        top.allowed,
        top.limit,
        top.remaining,
        top.retry_after_ms,
        top.reset_after_ms,
        quotas=[q for d in decisions for q in d.quotas],
    )


def _record(
    request: Request, response: Response | None, owner: object, d: Decision, *, served: bool = False
) -> dict[str, str]:
    """Keeps `owner`'s latest decision for this request and sets the headers
    of all of them combined: on `response`, and for RateLimitHeaders (which
    puts them on any response, errors raised later included). `served`: the
    request goes through whatever the state says (no Retry-After)."""
    decisions: dict[object, Decision] | None = getattr(request.state, "ratelimit_decisions", None)
    if decisions is None:
        decisions = {}
        request.state.ratelimit_decisions = decisions
    decisions[owner] = d
    headers = combine(list(decisions.values())).headers()
    if served:
        headers.pop("Retry-After", None)
    request.state.ratelimit_headers = headers
    if response is not None:
        response.headers.update(headers)
    return headers


def _five(value: Any) -> list[int]:
    # [allowed, limit, remaining, retry_after_ms, reset_after_ms], the same
    # array under RESP2 and RESP3.
    return [int(v) for v in value[:5]]


# ---------------------------------------------------------------- policies

_POLICY_NAME = re.compile(r"^[A-Za-z0-9_.:-]{1,64}$")  # the module's rule
_PARAMS = {"FIXED": 2, "SLIDING": 2, "LOG": 2, "TOKEN": 3, "LEAKY": 3, "GCRA": 3}
_MODULE_UNITS_US = {
    "us": 1, "ms": 1_000, "s": 1_000_000, "m": 60_000_000, "h": 3_600_000_000,
    "d": 86_400_000_000,
}  # fmt: skip
_MODULE_DURATION = re.compile(r"^(\d{1,19})(us|ms|s|m|h|d)?$", re.IGNORECASE)
_MONTHS = re.compile(r"^(\d{1,6})mo$", re.IGNORECASE)  # the module's calendar months
_OFFSET = re.compile(r"^([+-])([01]\d|2[0-3]):([0-5]\d)$")
_MONTH_RATE = re.compile(
    r"^\s*(\d{1,16})\s*(?:/|\s+per\s+)\s*(\d{1,4})?\s*(months?|mo)\s*$", re.IGNORECASE
)


def parse_offset(text: str) -> int:
    """A UTC offset as the module takes it ("+05:30", "-08:00", "Z") in
    minutes east of UTC. Raises ValueError."""
    if text.strip() in ("Z", "z"):
        return 0
    m = _OFFSET.match(text.strip())
    if not m:
        raise ValueError(f"bad offset {text!r}: expected +hh:mm or -hh:mm, e.g. '+02:00'")
    minutes = int(m[2]) * 60 + int(m[3])
    return -minutes if m[1] == "-" else minutes


def _format_offset(minutes: int) -> str:
    sign = "-" if minutes < 0 else "+"
    return f"{sign}{abs(minutes) // 60:02d}:{abs(minutes) % 60:02d}"


def calendar_window(
    months: int, offset_minutes: int, now: datetime | None = None
) -> tuple[datetime, datetime]:
    """The window of `months` calendar months holding `now` (default: the
    clock), as the module aligns them: from the first of every `months`-th
    month since January 1970, midnight at the UTC offset. Returns its start
    and end, aware datetimes in that offset."""
    tz = timezone(timedelta(minutes=offset_minutes))
    local = (now or datetime.now(UTC)).astimezone(tz)
    index = (local.year - 1970) * 12 + local.month - 1
    first = index - index % months
    start = date(1970 + first // 12, first % 12 + 1, 1)
    end = date(1970 + (first + months) // 12, (first + months) % 12 + 1, 1)
    return (
        datetime(start.year, start.month, 1, tzinfo=tz),
        datetime(end.year, end.month, 1, tzinfo=tz),
    )


def _module_duration_us(text: str) -> int:
    """A duration as the module writes it ("1m", "15m", "500ms", bare
    seconds) in microseconds. Raises ValueError."""
    m = _MODULE_DURATION.match(text.strip())
    if not m:
        raise ValueError(f"unreadable duration {text!r}")
    return int(m[1]) * _MODULE_UNITS_US[(m[2] or "s").lower()]


def _text(value: Any) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


@dataclass(frozen=True)
class PolicyDef:
    """A policy's definition, normalized so that two spellings of the same
    limit compare equal ("60s" and "1m"). Read from RL.POLICY GET's reply or
    from the arguments the app would send to RL.POLICY SET."""

    algorithm: str  # FIXED, SLIDING, LOG, TOKEN, LEAKY, GCRA
    numbers: tuple[int, ...]  # the integer parameters, in order
    window_us: int  # the window (FIXED, SLIDING, LOG) or refill period; 0: months
    penalty_us: int | None = None
    shadow: bool = False
    options: tuple[str, ...] = ()  # anything else the server answered, kept verbatim
    months: int = 0  # a window of calendar months ("1mo"), always aligned
    align: bool = False  # windows on a grid from the epoch (ALIGN), not from a first request
    offset_minutes: int = 0  # the grid's UTC offset (OFFSET +hh:mm)

    @classmethod
    def parse(cls, args: Sequence[Any]) -> PolicyDef:
        words = [_text(a) for a in args]
        if not words or words[0].upper() not in _PARAMS:
            raise ValueError(f"unreadable policy definition {' '.join(words)!r}")
        algo = words[0].upper()
        n = _PARAMS[algo]
        if len(words) < 1 + n:
            raise ValueError(f"unreadable policy definition {' '.join(words)!r}")
        numbers = tuple(int(w) for w in words[1:n])
        months_match = _MONTHS.match(words[n].strip())
        months = int(months_match[1]) if months_match else 0
        window_us = 0 if months else _module_duration_us(words[n])
        penalty_us, shadow, align, offset, rest = None, False, bool(months), 0, []
        i = 1 + n
        while i < len(words):
            word = words[i].upper()
            if word in ("PENALTY", "OFFSET") and i + 1 < len(words):
                if word == "PENALTY":
                    penalty_us = _module_duration_us(words[i + 1])
                else:
                    offset = parse_offset(words[i + 1])
                i += 2
                continue
            if word == "SHADOW":
                shadow = True
            elif word == "ALIGN":
                align = True
            else:
                rest.append(words[i])
            i += 1
        return cls(algo, numbers, window_us, penalty_us, shadow, tuple(rest), months, align, offset)

    @property
    def capacity(self) -> int:
        """What the module answers as `limit` for this definition."""
        if self.algorithm == "GCRA":
            return self.numbers[0] + 1  # max_burst + 1, as redis-cell
        return self.numbers[0]

    @property
    def quota(self) -> int:
        """RateLimit-Policy's q: the limit per window, or a bucket's rate."""
        return self.numbers[0] if len(self.numbers) == 1 else self.numbers[1]

    def window_s(self, now: datetime | None = None) -> int:
        """RateLimit-Policy's w, whole seconds (rounded up). A window of
        calendar months has no fixed length: w is the length of the window
        holding `now` (default: the clock), 31 days in January."""
        if self.months:
            start, end = calendar_window(self.months, self.offset_minutes, now)
            return int((end - start).total_seconds())
        return max(1, -(-self.window_us // 1_000_000))

    def rate(self, name: str, now: datetime | None = None) -> Rate:
        return Rate(self.quota, self.window_s(now), name)

    def describe(self) -> str:
        window = f"{self.months}mo" if self.months else f"{self.window_us}us"
        parts = [self.algorithm, *map(str, self.numbers), window]
        if self.align and not self.months:
            parts.append("ALIGN")
        if self.offset_minutes:
            parts += ["OFFSET", _format_offset(self.offset_minutes)]
        if self.penalty_us is not None:
            parts += ["PENALTY", f"{self.penalty_us}us"]
        if self.shadow:
            parts.append("SHADOW")
        return " ".join([*parts, *self.options])


@dataclass(frozen=True)
class Policy:
    """A limit the app defines in the server by name (RL.POLICY SET) and then
    uses by name (RL.CHECK, POLICY in RL.ALL), so that an operator can
    change it with one RL.POLICY SET, without a redeploy.

    name       the policy's name (1 to 64 of A-Z a-z 0-9 _ . : -); also its
               label in the headers and the last part of its keys
    rate       one rate, "1000/minute": the window's limit, or a bucket's
               refill rate. "100000/month" (or "/3 months"): a fixed window
               of calendar months, resetting at midnight on the 1st (ALIGN)
    algorithm  fixed | sliding | log | token | leaky | gcra
    burst      bucket algorithms: capacity (default: the rate's amount)
    penalty    a duration: a request this policy denies puts its key in the
               penalty box that long (applied by RL.CHECK, the module's rule)
    align      fixed windows on the clock's grid (ALIGN: a day from midnight)
               instead of from a key's first request; always for months
    offset     the UTC offset of that grid, "+02:00" (OFFSET; default UTC)
    """

    name: str
    rate: str
    algorithm: str = "sliding"
    burst: int | None = None
    penalty: str | int | None = None
    align: bool = False
    offset: str | None = None

    def __post_init__(self) -> None:
        if not isinstance(self.name, str) or not _POLICY_NAME.match(self.name):
            raise ValueError(
                f"policy name must be 1 to 64 of A-Z a-z 0-9 _ . : -, not {self.name!r}"
            )
        if self._months() is None:
            rates = parse_rates(self.rate)
            if len(rates) != 1:
                raise ValueError(f"policy {self.name!r}: one rate per policy, not {self.rate!r}")
        elif self.algorithm.lower() != "fixed":
            raise ValueError(f"policy {self.name!r}: a window of months needs algorithm 'fixed'")
        if (self.align or self.offset is not None) and self.algorithm.lower() != "fixed":
            raise ValueError(f"policy {self.name!r}: align and offset are for algorithm 'fixed'")
        if self.offset is not None:
            parse_offset(self.offset)
        if self.algorithm.lower() not in _ALGORITHMS:
            raise ValueError(
                f"policy {self.name!r}: unknown algorithm {self.algorithm!r} "
                f"(use {', '.join(_ALGORITHMS)})"
            )
        b = self.burst
        if b is not None and (isinstance(b, bool) or not isinstance(b, int) or b < 1):
            raise ValueError(f"burst must be an integer from 1 to 10^15, not {b!r}")
        if b is not None and b > MAX_AMOUNT:
            raise ValueError(f"burst must be an integer from 1 to 10^15, not {b!r}")
        if self.penalty is not None:
            parse_duration(self.penalty)

    def _months(self) -> tuple[int, int] | None:
        """(amount, months) of a rate in months; None for other rates."""
        m = _MONTH_RATE.match(self.rate) if isinstance(self.rate, str) else None
        if not m:
            return None
        amount, months = int(m[1]), int(m[2] or 1)
        if not 1 <= amount <= MAX_AMOUNT or months < 1:
            raise ValueError(f"policy {self.name!r}: bad rate {self.rate!r}")
        return amount, months

    def args(self) -> list[Any]:
        """The arguments of RL.POLICY SET after the name."""
        algo = self.algorithm.lower()
        args: list[Any] = [algo.upper()]
        in_months = self._months()
        if in_months is not None:
            args += [in_months[0], f"{in_months[1]}mo", "ALIGN"]
        elif self.align:
            (rate,) = parse_rates(self.rate)
            args += [rate.amount, f"{rate.seconds}s", "ALIGN"]
        if in_months is not None or self.align:
            if self.offset is not None and parse_offset(self.offset):
                args += ["OFFSET", _format_offset(parse_offset(self.offset))]
            if self.penalty is not None:
                args += ["PENALTY", f"{parse_duration(self.penalty)}ms"]
            return args
        (rate,) = parse_rates(self.rate)
        if algo in ("fixed", "sliding", "log"):
            args += [rate.amount, f"{rate.seconds}s"]
        else:
            capacity = self.burst or rate.amount
            if algo == "gcra":  # redis-cell's meaning: max_burst + 1 at once
                capacity -= 1
            args += [capacity, rate.amount, f"{rate.seconds}s"]
        if self.penalty is not None:
            args += ["PENALTY", f"{parse_duration(self.penalty)}ms"]
        return args

    @property
    def definition(self) -> PolicyDef:
        return PolicyDef.parse(self.args())


SYNC_MODES = ("missing", "overwrite", "off")
NO_SUCH_POLICY = "no-such-policy"  # LimiterUnavailable.kind: the server lacks a policy


class Policies:
    """The app's policies and what the server holds for them.

    sync      what the app writes to the server (RL.POLICY SET):
              missing    at start-up, define the policies the server lacks
                         and keep the server's definition of the others (an
                         operator's RL.POLICY SET survives app restarts; a
                         different one is logged); when a call answers
                         `no such policy` (a Redis restarted without
                         persistence, a DEL), define it again and retry once
              overwrite  the same, but at start-up every policy is set to
                         the app's definition (config wins on deploy)
              off        never write: the policies are managed elsewhere; a
                         missing one takes the fail mode
    prefix    put before every name in the server ("quotes:" makes
              "quotes:free"), so that apps sharing a Redis do not share
              policies; headers and keys use the name without it
    refresh   seconds a definition read from the server is trusted for the
              headers (q and w). 0 (default): every call reads the
              definitions of its policies (RL.POLICY GET, pipelined with the
              decision: the same round trip), so the headers always describe
              the limit in force. Above 0, only the first call past it does,
              saving those commands; a reply whose limit differs from the
              known definition still makes it read again at once, but a
              change that keeps the limit (a window) shows up to `refresh`
              seconds late.
    """

    def __init__(
        self,
        policies: Sequence[Policy],
        *,
        sync: str = "missing",
        prefix: str = "",
        refresh: float = 0.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if sync not in SYNC_MODES:
            raise ValueError(f"sync must be one of {', '.join(SYNC_MODES)}, not {sync!r}")
        if not refresh >= 0:
            raise ValueError(f"refresh must be at least 0, not {refresh!r}")
        self.by_name: dict[str, Policy] = {}
        for p in policies:
            if p.name in self.by_name:
                raise ValueError(f"policy {p.name!r} defined twice")
            self.by_name[p.name] = p
            if not _POLICY_NAME.match(prefix + p.name):
                raise ValueError(f"policy name {prefix + p.name!r} is not valid in the server")
        self.sync_mode = sync
        self.prefix = prefix
        self.refresh = refresh
        self._clock = clock
        self._known: dict[str, PolicyDef] = {}  # short name -> what the server holds
        self._unreadable: set[str] = set()  # held by the server, in a form not understood here
        self._read_at: dict[str, float] = {}
        self._restoring: asyncio.Task[None] | None = None

    def server_name(self, name: str) -> str:
        if name not in self.by_name:
            raise KeyError(f"policy {name!r} is not one of the app's policies")
        return self.prefix + name

    def current(self, name: str) -> PolicyDef:
        """The definition in force as last read from the server, else the
        app's own."""
        return self._known.get(name) or self.by_name[name].definition

    def stale(self, name: str) -> bool:
        read_at = self._read_at.get(name)
        return read_at is None or self._clock() - read_at >= self.refresh

    def learn(self, name: str, reply: Any) -> None:
        """Keeps what RL.POLICY GET answered (nil: the server lacks it)."""
        if isinstance(reply, Exception):
            return
        self._unreadable.discard(name)
        if reply is None:
            self._known.pop(name, None)
            self._read_at.pop(name, None)
            return
        try:
            self._known[name] = PolicyDef.parse(reply)
        except ValueError as e:
            # Held all the same: never to be "restored" over an operator's.
            log.warning("policy %s: %s; headers use the app's definition", name, e)
            self._known.pop(name, None)
            self._unreadable.add(name)
        self._read_at[name] = self._clock()

    def held(self, name: str) -> bool:
        """Whether the server held the policy when last read."""
        return name in self._known or name in self._unreadable

    def get_commands(self, names: Sequence[str]) -> list[list[Any]]:
        return [["RL.POLICY", "GET", self.server_name(n)] for n in names]

    async def read(self, cfg: RateLimitConfig, names: Sequence[str]) -> None:
        """Reads these definitions now (one round trip)."""
        if not names:
            return
        replies = await cfg._pipeline(self.get_commands(names))
        for name, reply in zip(names, replies):
            self.learn(name, reply)

    async def _set(self, cfg: RateLimitConfig, names: Sequence[str]) -> None:
        sets = [["RL.POLICY", "SET", self.server_name(n), *self.by_name[n].args()] for n in names]
        for reply in await cfg._pipeline(sets):
            if isinstance(reply, Exception):
                raise LimiterUnavailable(f"RL.POLICY SET: {reply}", ERROR_REPLY)

    async def sync(self, cfg: RateLimitConfig) -> dict[str, str]:
        """At start-up: reads every policy and defines them as `sync` says.
        Returns what was done per policy (defined, replaced, kept, same,
        missing). Raises LimiterUnavailable when Redis cannot answer."""
        names = list(self.by_name)
        await self.read(cfg, names)
        done: dict[str, str] = {}
        to_set: list[str] = []
        for n in names:
            want = self.by_name[n].definition
            have = self._known.get(n)
            if have == want:
                done[n] = "same"
            elif self.sync_mode == "off":
                done[n] = "kept" if self.held(n) else "missing"
            elif not self.held(n):
                done[n], to_set = "defined", [*to_set, n]
            elif self.sync_mode == "overwrite":
                done[n], to_set = "replaced", [*to_set, n]
            else:
                done[n] = "kept"
            if done[n] == "kept":
                log.warning(
                    "policy %s in Redis (%s) differs from the app's (%s): keeping Redis' "
                    "(RL_POLICY_SYNC=%s)",
                    self.server_name(n), have.describe() if have else "?", want.describe(),
                    self.sync_mode,
                )  # fmt: skip
            elif done[n] == "missing":
                log.warning(
                    "policy %s is not defined in Redis (RL_POLICY_SYNC=off): "
                    "requests using it take the fail mode",
                    self.server_name(n),
                )
        await self._set(cfg, to_set)
        await self.read(cfg, to_set)
        return done

    async def restore(self, cfg: RateLimitConfig) -> bool:
        """After `no such policy`: defines every missing policy again from
        the app's definitions, once for all the requests that found them
        missing at the same time. False if the app must not (sync off) or
        could not."""
        if self.sync_mode == "off":
            return False
        task = self._restoring
        if task is None or task.done():
            task = asyncio.ensure_future(self._restore(cfg))
            self._restoring = task
        try:
            await asyncio.shield(task)
        except LimiterUnavailable as e:
            cfg.logs.warning(f"restore:{e.kind}", "rate limiter policies not restored: %s", e)
            return False
        return True

    async def _restore(self, cfg: RateLimitConfig) -> None:
        # Every policy missing, not only these: a Redis that lost one has
        # usually lost them all, and each would cost its own retry.
        await self.read(cfg, list(self.by_name))
        # Only those still missing: one an operator has just set stays his.
        missing = [n for n in self.by_name if not self.held(n)]
        if missing:
            log.warning(
                "rate limiter policies missing in Redis, defined again from the app's "
                "definitions: %s",
                ", ".join(self.server_name(n) for n in missing),
            )
        await self._set(cfg, missing)
        await self.read(cfg, list(self.by_name))


def _no_such_policy(reply: Any) -> bool:
    return isinstance(reply, ResponseError) and str(reply).startswith("no such policy")


# ---------------------------------------------------------------- the dependency

KeyFunc = Callable[[Request], str | None | Awaitable[str | None]]
CostFunc = Callable[[Request], int | Awaitable[int]]
_ALGORITHMS = ("fixed", "sliding", "log", "token", "leaky", "gcra")


def _per_rate(value: Any, n: int, what: str) -> list[Any]:
    if isinstance(value, (list, tuple)):
        if len(value) != n:
            raise ValueError(f"{what}: {len(value)} given for {n} limits")
        return list(value)
    return [value] * n


async def _resolve(value: Any) -> Any:
    return await value if inspect.isawaitable(value) else value


def _escape(text: str) -> str:
    # Braces would move the cluster hash tag; keep them out of key names.
    return text.replace("%", "%25").replace("{", "%7B").replace("}", "%7D")


class RateLimit:
    """A FastAPI dependency enforcing one or more limits per key.

    rates      "5/minute", "10 per hour", "1/second;100/day" (all must allow),
               or one or several Policy: the limits are then the server's
               policies, used by name (RL.CHECK, or POLICY in RL.ALL), and
               algorithm and burst come from them
    algorithm  fixed | sliding | log | token | leaky | gcra, or one per limit
    key        request -> identity string (by_ip, by_api_key, your own);
               may be async; None skips the limit for that request
    cost       an int or request -> int (may be async); 0 only peeks
    burst      bucket algorithms: capacity (default: the rate's amount)
    scope      namespace of the keys (default: method and route path)
    penalty    a duration ("15m", "900s", "500ms", bare seconds): a request
               denied by a limit puts its key in the penalty box for that
               long (the module's PENALTY): every request is then denied,
               with Retry-After up to the end of the box

    As a dependency it sets the headers on the response, raises 429 when a
    limit denies, and returns the Decision (None when not applied). Call
    `await limit.hit(request, response, cost=n)` to use it by hand, and
    `await limit.refund(request, response)` to give back what it spent.
    """

    def __init__(
        self,
        rates: str | Sequence[Rate] | Policy | Sequence[Policy],
        *,
        algorithm: str | Sequence[str] = "sliding",
        key: KeyFunc = by_ip,
        cost: int | CostFunc = 1,
        burst: None | int | Sequence[int | None] = None,
        scope: str | None = None,
        penalty: str | int | None = None,
    ) -> None:
        given: list[Any] = (
            parse_rates(rates) if isinstance(rates, str)
            else [rates] if isinstance(rates, Policy) else list(rates)
        )  # fmt: skip
        if not given:
            raise ValueError("no limit given")
        if len(given) > 64:
            raise ValueError("at most 64 limits in one RateLimit")
        self.policies: list[Policy] = [r for r in given if isinstance(r, Policy)]
        if self.policies and len(self.policies) != len(given):
            raise ValueError("give rates or policies, not both")
        if self.policies:
            if len({p.name for p in self.policies}) != len(self.policies):
                raise ValueError("the same policy twice in one RateLimit")
            # What the app defines; the headers use what the server holds.
            self.rates = [p.definition.rate(p.name) for p in self.policies]
            algorithm = [p.algorithm for p in self.policies]
        else:
            self.rates = given
        n = len(self.rates)
        self.algorithms = [str(a).lower() for a in _per_rate(algorithm, n, "algorithm")]
        for a in self.algorithms:
            if a not in _ALGORITHMS:
                raise ValueError(f"unknown algorithm {a!r} (use {', '.join(_ALGORITHMS)})")
        self.bursts = _per_rate(burst, n, "burst")
        for b in self.bursts:
            if b is not None and (not isinstance(b, int) or not 1 <= b <= MAX_AMOUNT):
                raise ValueError(f"burst must be an integer from 1 to 10^15, not {b!r}")
        if isinstance(cost, int) and (isinstance(cost, bool) or cost < 0):
            raise ValueError(f"cost must be a non-negative integer, not {cost!r}")
        if self.policies and any(b is not None for b in self.bursts):
            raise ValueError("a policy's burst is part of the Policy")
        if len(self.policies) == 1 and penalty is not None:
            raise ValueError("a single policy's penalty is part of the Policy (RL.CHECK's)")
        self.key = key
        self.cost = cost
        self.scope = scope
        self.penalty_ms = None if penalty is None else parse_duration(penalty)

    # -- building the command

    def _params(self, i: int) -> list[Any]:
        rate, algo, burst = self.rates[i], self.algorithms[i], self.bursts[i]
        window = f"{rate.seconds}s"
        if algo in ("fixed", "sliding", "log"):
            return [rate.amount, window]
        capacity = burst or rate.amount
        if algo == "gcra":  # redis-cell's meaning: max_burst + 1 at once
            return [capacity - 1, rate.amount, window]
        return [capacity, rate.amount, window]

    def keys(self, request: Request, ident: str) -> list[str]:
        """The Redis keys of this identity's limits, one per rate."""
        cfg = _config(request)
        scope = self.scope
        if scope is None:
            route = request.scope.get("route")
            path = getattr(route, "path", None) or request.url.path
            scope = f"{request.method}:{path}"
        base = f"{cfg.prefix}:{{{_escape(ident)}}}:{_escape(scope)}"
        return [f"{base}:{r.name}" for r in self.rates]

    def command(self, request: Request, ident: str, cost: int) -> list[Any]:
        """The RL.<ALGO> (one limit) or RL.ALL (several) call spending `cost`.
        A peek (cost 0) never carries the penalty: it must not start a box."""
        keys = self.keys(request, ident)
        options: list[Any] = ["COST", cost]
        if self.penalty_ms is not None and cost > 0:
            options += ["PENALTY", f"{self.penalty_ms}ms"]
        if self.policies:
            book = _config(request).book()
            names = [book.server_name(p.name) for p in self.policies]
            if len(keys) == 1:  # the policy's own PENALTY and SHADOW apply
                return ["RL.CHECK", names[0], keys[0], "COST", cost]
            # In RL.ALL a policy gives its parameters; the call's options
            # (this RateLimit's penalty) apply.
            policy_args: list[Any] = ["RL.ALL", len(keys), *keys]
            for name in names:
                policy_args += ["POLICY", name]
            return policy_args + options
        if len(keys) == 1:
            algo = self.algorithms[0].upper()
            return [f"RL.{algo}", keys[0], *self._params(0), *options]
        args: list[Any] = ["RL.ALL", len(keys), *keys]
        for i in range(len(keys)):
            args += [self.algorithms[i].upper(), *self._params(i)]
        return args + options

    @property
    def policy_names(self) -> list[str]:
        return [p.name for p in self.policies]

    def decision(self, reply: Any, defs: Sequence[PolicyDef] | None = None) -> Decision:
        """The Decision in a reply. `defs`: the definitions in force of the
        policies (default: the app's own), for the headers' q and w."""
        subs = reply[5:] if len(self.rates) > 1 else [reply]
        allowed, limit, remaining, retry_after_ms, reset_after_ms = _five(reply)
        rates, algorithms = self.rates, self.algorithms
        if self.policies and defs is not None:
            rates = [d.rate(p.name) for d, p in zip(defs, self.policies)]
            algorithms = [d.algorithm.lower() for d in defs]
        quotas = [
            Quota(rate, algo, bool(s[0]), *s[1:])
            for rate, algo, s in zip(rates, algorithms, map(_five, subs))
        ]
        return Decision(
            bool(allowed), limit, remaining, retry_after_ms, reset_after_ms, quotas=quotas
        )

    async def decide(self, cfg: RateLimitConfig, reply: Any) -> Decision:
        """decision() with the definitions the server holds. A limit in the
        reply other than the known definition's means the policy was
        changed: it is read again first (one more round trip, once per
        change), so that the headers describe the limit that decided."""
        if not self.policies:
            return self.decision(reply)
        book = cfg.book()
        subs = reply[5:] if len(self.rates) > 1 else [reply]
        changed = [
            p.name
            for p, s in zip(self.policies, subs)
            if int(s[1]) != book.current(p.name).capacity
        ]
        if changed:
            try:
                await book.read(cfg, changed)
            except LimiterUnavailable as e:  # the headers keep the last known definition
                cfg.logs.warning(f"policy-read:{e.kind}", "rate limiter policy not read: %s", e)
        return self.decision(reply, [book.current(p.name) for p in self.policies])

    # -- asking Redis

    async def identity(self, request: Request) -> str | None:
        """What the key function says for this request (None: not limited)."""
        ident: str | None = await _resolve(self.key(request))
        return ident

    async def ask(self, request: Request, cost: int) -> Decision | None:
        """One round trip; None if the key function returned None. Raises
        LimiterUnavailable when Redis cannot answer."""
        ident = await self.identity(request)
        if ident is None:
            return None
        if isinstance(cost, bool) or not isinstance(cost, int) or cost < 0:
            raise ValueError(f"cost must be a non-negative integer, not {cost!r}")
        cfg = _config(request)
        (reply,) = await cfg.run([self.command(request, ident, cost)], self.policy_names)
        return await self.decide(cfg, reply)

    async def peek(self, request: Request) -> Decision | None:
        """The caller's quotas without spending anything (COST 0)."""
        return await self.ask(request, 0)

    async def hit(
        self, request: Request, response: Response | None = None, cost: int | None = None
    ) -> Decision | None:
        if cost is None:
            cost = self.cost if isinstance(self.cost, int) else await _resolve(self.cost(request))
        try:
            d = await self.ask(request, cost)
        except LimiterUnavailable as e:
            _config(request).unavailable(e)  # raises the 503 when failing closed
            return None
        if d is None:
            return None
        headers = _record(request, response if d.allowed else None, self, d)
        if not d.allowed:
            raise HTTPException(429, detail="Rate limit exceeded", headers=headers)
        return d

    async def refund(
        self, request: Request, response: Response | None = None, cost: int = 1
    ) -> Decision | None:
        """Gives back `cost` units to each of the caller's limits (RL.REFUND,
        by each algorithm's rule: never into a window that has closed, never
        more than was spent) and sets the headers to the state afterwards,
        read in the same round trip. Returns that state; None if the limit
        does not apply to the request or Redis cannot answer.

        Never raises for Redis: the request it follows has been served, and
        a lost refund only leaves the request counted (logged, throttled)."""
        if isinstance(cost, bool) or not isinstance(cost, int) or cost < 1:
            raise ValueError(f"refund cost must be a positive integer, not {cost!r}")
        ident = await self.identity(request)
        if ident is None:
            return None
        cfg = _config(request)
        commands = [["RL.REFUND", key, cost] for key in self.keys(request, ident)]
        commands.append(self.command(request, ident, 0))
        try:
            replies = await cfg.run(commands, self.policy_names)
            d = await self.decide(cfg, replies[-1])
        except LimiterUnavailable as e:
            cfg.logs.warning(f"refund:{e.kind}", "rate limiter refund lost: %s", e)
            return None
        # The request was served: the state may say "denied" (the key went
        # into the penalty box meanwhile), but no Retry-After on a success.
        _record(request, response, self, d, served=True)
        return d

    async def __call__(self, request: Request, response: Response) -> Decision | None:
        return await self.hit(request, response)


@dataclass(frozen=True)
class Lease:
    """A slot held by a request (ConcurrencyLimit.lease())."""

    key: str
    id: str
    decision: Decision


_releasing: set[asyncio.Task[bool]] = set()  # releases outliving a cancelled request


class ConcurrencyLimit:
    """At most `limit` requests in flight per key, with leases (RL.ACQUIRE).

    limit      requests at a time (each takes one slot)
    ttl        a lease's time to live ("30s", "500ms", bare seconds): a
               worker that dies without releasing frees its slot after it
    key        request -> identity string, as for RateLimit; None: no limit
    scope      namespace of the key (default: method and route path)
    name       the policy's name in the headers
    heartbeat  renew the lease (RL.RENEW) every ttl/3 while the request runs,
               so that work longer than the ttl keeps its slot, and the ttl
               can be short: it only bounds how long a dead worker's slot
               stays taken

    Use it around the work:

        async with inflight.lease(request, response):
            ...  # at most `limit` requests of one identity run this at once

    The lease is released when the block ends, however it ends (returned,
    raised, cancelled). A request over the limit gets 429 with Retry-After
    (when a slot is sure to be free: the earliest expiry of a lease held;
    usually one is freed sooner) and never enters the block. The lease id
    is made here (a random uuid), so a lost reply cannot leave a lease that
    nothing could release.
    """

    def __init__(
        self,
        limit: int,
        *,
        ttl: str | int = "30s",
        key: KeyFunc = by_ip,
        scope: str | None = None,
        name: str = "inflight",
        heartbeat: bool = True,
    ) -> None:
        if isinstance(limit, bool) or not isinstance(limit, int) or not 1 <= limit <= MAX_AMOUNT:
            raise ValueError(f"limit must be an integer from 1 to 10^15, not {limit!r}")
        if not re.fullmatch(r"[A-Za-z0-9_.-]{1,32}", name):
            raise ValueError(f"name must be 1 to 32 letters, digits, '_', '.' or '-', not {name!r}")
        self.rate = Rate(limit, 0, name)
        self.ttl_ms = parse_duration(ttl)
        self.key = key
        self.scope = scope
        self.heartbeat = heartbeat

    @property
    def limit(self) -> int:
        return self.rate.amount

    def key_name(self, request: Request, ident: str) -> str:
        """The Redis key holding this identity's leases."""
        cfg = _config(request)
        scope = self.scope
        if scope is None:
            route = request.scope.get("route")
            path = getattr(route, "path", None) or request.url.path
            scope = f"{request.method}:{path}"
        return f"{cfg.prefix}:{{{_escape(ident)}}}:{_escape(scope)}:{self.rate.name}"

    def command(
        self, request: Request, ident: str, cost: int = 1, lease_id: str | None = None
    ) -> list[Any]:
        """RL.ACQUIRE taking `cost` slots under `lease_id`; cost 0 peeks."""
        args: list[Any] = [
            "RL.ACQUIRE", self.key_name(request, ident), self.limit, f"{self.ttl_ms}ms"
        ]  # fmt: skip
        if lease_id is not None:
            args += ["ID", lease_id]
        return args + ["COST", cost]

    @property
    def policy_names(self) -> list[str]:
        return []  # a lease is no policy

    async def decide(self, cfg: RateLimitConfig, reply: Any) -> Decision:
        return self.decision(reply)

    def decision(self, reply: Any) -> Decision:
        # [allowed, limit, remaining, retry_after_ms, reset_after_ms, lease_id]
        allowed, limit, remaining, retry_after_ms, reset_after_ms = _five(reply)
        quota = Quota(
            self.rate, LEASE, bool(allowed), limit, remaining, retry_after_ms, reset_after_ms
        )
        return Decision(
            bool(allowed), limit, remaining, retry_after_ms, reset_after_ms, quotas=[quota]
        )

    async def identity(self, request: Request) -> str | None:
        ident: str | None = await _resolve(self.key(request))
        return ident

    async def peek(self, request: Request) -> Decision | None:
        """The slots free now, taking none (COST 0)."""
        ident = await self.identity(request)
        if ident is None:
            return None
        cfg = _config(request)
        args = self.command(request, ident, 0)
        return self.decision(await cfg.call(lambda: cfg.redis.execute_command(*args)))

    @asynccontextmanager
    async def lease(
        self, request: Request, response: Response | None = None
    ) -> AsyncIterator[Lease | None]:
        """Holds a slot for the block (see the class). Yields the Lease, or
        None when the limit does not apply (no identity) or Redis cannot
        answer and the app fails open (failing closed raises the 503)."""
        ident = await self.identity(request)
        if ident is None:
            yield None
            return
        cfg = _config(request)
        key = self.key_name(request, ident)
        lease_id = uuid.uuid4().hex
        args = self.command(request, ident, 1, lease_id)
        try:
            reply = await cfg.call(lambda: cfg.redis.execute_command(*args))
        except LimiterUnavailable as e:
            # A call that timed out may still run when a stalled Redis
            # resumes: that lease is freed by its ttl.
            cfg.unavailable(e)  # raises the 503 when failing closed
            reply = None
        if reply is None:  # failing open: the block runs without a slot
            yield None
            return
        d = self.decision(reply)
        headers = _record(request, response if d.allowed else None, self, d)
        if not d.allowed:
            raise HTTPException(429, detail="Rate limit exceeded", headers=headers)
        keeper = None
        if self.heartbeat:
            keeper = asyncio.create_task(self._keep_alive(cfg, key, lease_id))
        try:
            yield Lease(key, lease_id, d)
        finally:
            if keeper is not None:
                keeper.cancel()
            # Released even if this request is being cancelled: the release
            # runs in its own task, which a cancellation does not stop.
            release = asyncio.ensure_future(self._release(cfg, key, lease_id))
            _releasing.add(release)
            release.add_done_callback(_releasing.discard)
            await asyncio.shield(release)

    async def _release(self, cfg: RateLimitConfig, key: str, lease_id: str) -> bool:
        try:
            freed = await cfg.call(lambda: cfg.redis.execute_command("RL.RELEASE", key, lease_id))
        except LimiterUnavailable as e:
            cfg.logs.warning(
                f"release:{e.kind}",
                "rate limiter lease not released (its ttl, %g s, frees it): %s",
                self.ttl_ms / 1000, e,
            )  # fmt: skip
            return False
        if not freed:
            cfg.logs.warning(
                LEASE_LOST,
                "rate limiter lease on %s had expired before its request ended: "
                "the limit did not hold it for all of its run",
                key,
            )
        return bool(freed)

    async def _keep_alive(self, cfg: RateLimitConfig, key: str, lease_id: str) -> None:
        ttl = f"{self.ttl_ms}ms"
        while True:
            await asyncio.sleep(self.ttl_ms / 3000)
            try:
                held = await cfg.call(
                    lambda: cfg.redis.execute_command("RL.RENEW", key, lease_id, ttl)
                )
            except LimiterUnavailable as e:
                cfg.logs.warning(f"renew:{e.kind}", "rate limiter lease not renewed: %s", e)
                continue
            if not held:
                cfg.logs.warning(
                    LEASE_LOST, "rate limiter lease on %s expired while its request ran", key
                )
                return


class RateLimitHeaders:
    """ASGI middleware: app.add_middleware(RateLimitHeaders).

    A dependency's headers reach the response only when the endpoint returns
    normally; an HTTPException raised later (a 401 from /login, say) builds a
    new response without them. This middleware adds the headers of the
    request's last decision to whatever response goes out, unless present."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            return await self.app(scope, receive, send)

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                extra = (scope.get("state") or {}).get("ratelimit_headers")
                if extra:
                    raw = list(message.get("headers", []))
                    have = {name.lower() for name, _ in raw}
                    raw += [
                        (k.lower().encode(), v.encode())
                        for k, v in extra.items()
                        if k.lower().encode() not in have
                    ]
                    message = {**message, "headers": raw}
            await send(message)

        await self.app(scope, receive, send_with_headers)

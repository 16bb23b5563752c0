"""Rate limiting for FastAPI on top of the ratelimit Redis module (RL.* commands).

Copy this file into your service. Usage:

    app = FastAPI(lifespan=lifespan)          # lifespan calls setup(app, redis)
    login_limit = RateLimit("5/minute", algorithm="fixed", key=by_ip)

    @app.post("/login", dependencies=[Depends(login_limit)])
    async def login(...): ...

Each request costs exactly one Redis round trip: one RL.<ALGO> call for a
single limit, or one atomic RL.ALL call when the rate string holds several
("1/second;100/day"): the request is allowed only if every limit allows it.
"""

from __future__ import annotations

import hashlib
import inspect
import logging
import math
import re
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from fastapi import FastAPI, HTTPException, Request, Response
from redis.exceptions import RedisError
from starlette.types import ASGIApp, Message, Receive, Scope, Send

log = logging.getLogger("ratelimit")

__all__ = [
    "Decision",
    "LimiterUnavailable",
    "Quota",
    "Rate",
    "RateLimit",
    "RateLimitConfig",
    "RateLimitHeaders",
    "bearer_token",
    "by_api_key",
    "by_ip",
    "client_ip",
    "parse_rates",
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
    """`amount` requests (cost units) per `seconds`; `name` labels it in headers."""

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


# ---------------------------------------------------------------- configuration


@dataclass
class RateLimitConfig:
    """Per-app settings, kept in app.state.ratelimit (see setup())."""

    redis: Any  # a redis.asyncio.Redis
    fail_open: bool = True  # Redis unreachable: serve (True) or answer 503 (False)
    trusted_proxies: int = 0  # reverse proxies in front that append X-Forwarded-For
    prefix: str = "rl"
    _last_warning: float = field(default=0.0, repr=False)


def setup(app: FastAPI, redis: Any, **settings: Any) -> RateLimitConfig:
    """Attach the Redis client and settings to the app; call it in lifespan."""
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


class LimiterUnavailable(Exception):
    """Redis could not be asked (down, timeout, or an error reply)."""


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
        policy = ", ".join(
            f'"{q.rate.name}";q={q.rate.amount};w={q.rate.seconds}' for q in self.quotas
        )
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


def _five(value: Any) -> list[int]:
    # [allowed, limit, remaining, retry_after_ms, reset_after_ms], the same
    # array under RESP2 and RESP3.
    return [int(v) for v in value[:5]]


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

    rates      "5/minute", "10 per hour", "1/second;100/day" (all must allow)
    algorithm  fixed | sliding | log | token | leaky | gcra, or one per limit
    key        request -> identity string (by_ip, by_api_key, your own);
               may be async; None skips the limit for that request
    cost       an int or request -> int (may be async); 0 only peeks
    burst      bucket algorithms: capacity (default: the rate's amount)
    scope      namespace of the keys (default: method and route path)

    As a dependency it sets the headers on the response, raises 429 when a
    limit denies, and returns the Decision (None when not applied). Call
    `await limit.hit(request, response, cost=n)` to use it by hand.
    """

    def __init__(
        self,
        rates: str | Sequence[Rate],
        *,
        algorithm: str | Sequence[str] = "sliding",
        key: KeyFunc = by_ip,
        cost: int | CostFunc = 1,
        burst: None | int | Sequence[int | None] = None,
        scope: str | None = None,
    ) -> None:
        self.rates = parse_rates(rates) if isinstance(rates, str) else list(rates)
        if not self.rates:
            raise ValueError("no limit given")
        if len(self.rates) > 64:
            raise ValueError("at most 64 limits in one RateLimit")
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
        self.key = key
        self.cost = cost
        self.scope = scope

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

    def command(self, request: Request, ident: str, cost: int) -> list[Any]:
        cfg = _config(request)
        scope = self.scope
        if scope is None:
            route = request.scope.get("route")
            path = getattr(route, "path", None) or request.url.path
            scope = f"{request.method}:{path}"
        base = f"{cfg.prefix}:{{{_escape(ident)}}}:{_escape(scope)}"
        keys = [f"{base}:{r.name}" for r in self.rates]
        if len(keys) == 1:
            algo = self.algorithms[0].upper()
            return [f"RL.{algo}", keys[0], *self._params(0), "COST", cost]
        args: list[Any] = ["RL.ALL", len(keys), *keys]
        for i in range(len(keys)):
            args += [self.algorithms[i].upper(), *self._params(i)]
        return args + ["COST", cost]

    def decision(self, reply: Any) -> Decision:
        subs = reply[5:] if len(self.rates) > 1 else [reply]
        allowed, limit, remaining, retry_after_ms, reset_after_ms = _five(reply)
        quotas = [
            Quota(rate, algo, bool(s[0]), *s[1:])
            for rate, algo, s in zip(self.rates, self.algorithms, map(_five, subs))
        ]
        return Decision(
            bool(allowed), limit, remaining, retry_after_ms, reset_after_ms, quotas=quotas
        )

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
        try:
            reply = await cfg.redis.execute_command(*self.command(request, ident, cost))
        except (RedisError, OSError, TimeoutError) as e:
            raise LimiterUnavailable(str(e) or type(e).__name__) from e
        return self.decision(reply)

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
            cfg = _config(request)
            if not cfg.fail_open:
                log.error("rate limiter unavailable, refusing the request: %s", e)
                raise HTTPException(503, detail="Rate limiter unavailable") from None
            now = time.monotonic()
            if now - cfg._last_warning >= 10:  # at most one warning per 10 s
                cfg._last_warning = now
                log.warning("rate limiter unavailable, serving without limits: %s", e)
            return None
        if d is None:
            return None
        headers = d.headers()
        # For RateLimitHeaders: the headers then go out on any response,
        # errors raised later by the endpoint included.
        request.state.ratelimit_headers = headers
        if not d.allowed:
            raise HTTPException(429, detail="Rate limit exceeded", headers=headers)
        if response is not None:
            response.headers.update(headers)
        return d

    async def __call__(self, request: Request, response: Response) -> Decision | None:
        return await self.hit(request, response)


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

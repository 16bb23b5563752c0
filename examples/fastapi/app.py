"""A stock-quote API protected by the ratelimit Redis module.

Its tiers are policies kept in Redis (RL.POLICY SET at start-up, from the
settings), used by name, so that an operator changes one with a single
RL.POLICY SET, without a redeploy:

    GET  /quotes/{symbol}  anonymous: policy `free`, 100/minute per IP
                           (sliding window; RL.CHECK free ...)
                           API key (Authorization: Bearer ...): policies
                           `paid` (1000/minute token bucket) AND `paid-daily`
                           (a daily cap) AND `paid-monthly` (a quota per
                           calendar month, reset at midnight on the 1st),
                           one call: RL.ALL ... POLICY paid POLICY paid-daily
                           POLICY paid-monthly
    POST /login            policy `login`: 5 failed attempts/minute per IP (a
                           success is refunded: RL.REFUND); trying again after
                           them puts the IP in a 15-minute penalty box
    POST /orders           per user: at most 2 in flight (RL.ACQUIRE leases,
                           released when the request ends) and policy
                           `orders`, 1/second, burst 10, cost by order size
    GET  /limits           the caller's quotas, spending nothing (COST 0)
    GET  /ops/ratelimit/   operators (OPS_TOKEN): the live page, who is
                           being denied (RL.TOP) and the decisions
    GET  /ops/metrics      operators (OPS_TOKEN): Prometheus metrics

Run it with run.sh; every setting is an environment variable (README.md).
"""

# No `from __future__ import annotations`: FastAPI reads the endpoints'
# Annotated[..., Depends(f)] at run time, and f is local to create_app().
import asyncio
import hashlib
import logging
import math
import os
import re
import uuid
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from typing import Annotated, Any, Literal, TypeVar

from fastapi import Depends, FastAPI, HTTPException, Path, Request, Response
from fastapi.security import HTTPBearer
from prometheus_client import CollectorRegistry
from pydantic import BaseModel, Field
from redis_ratelimit import (
    CircuitBreaker,
    LimiterUnavailable,
    Policies,
    PolicySpec,
    async_redis,
    parse_offset,
)
from redis_ratelimit.fastapi import (
    ConcurrencyLimit,
    Limiter,
    Outcome,
    RateLimit,
    RateLimitMiddleware,
    Unavailable,
    bearer_token,
    by_api_key,
    by_ip,
    openapi_responses,
    token_check,
)
from redis_ratelimit.fastapi.dashboard import dashboard
from redis_ratelimit.fastapi.metrics import metrics_app
from redis_ratelimit.policies import SYNC_MODES

log = logging.getLogger("quotes")


def _env(name: str, default: str) -> str:
    return os.environ.get(name, default).strip() or default


N = TypeVar("N", int, float)


def _number(name: str, default: str, kind: Callable[[str], N], least: N) -> N:
    """A numeric setting, at least `least`; ValueError naming the variable."""
    text = _env(name, default)
    try:
        value = kind(text)
    except ValueError:
        raise ValueError(f"{name}={text!r}: not a number") from None
    if not value >= least:  # also refuses NaN
        raise ValueError(f"{name}={text!r}: must be at least {least}")
    return value


def _duration(name: str, default: str) -> str:
    """A duration setting ("15m", "900s", "500ms", bare seconds), checked
    here so that a bad one stops the app naming the variable."""
    text = _env(name, default)
    if not re.fullmatch(r"[0-9]{1,12}(ms|s|m|h|d)?", text):
        raise ValueError(
            f"{name}={text!r}: bad duration: expected a whole number with an optional "
            "unit (ms, s, m, h, d), e.g. '15m', '900s' or '500ms'"
        )
    return text


def _offset(name: str, default: str) -> str:
    """A UTC offset setting ("+02:00", "-05:00", "Z")."""
    text = _env(name, default)
    try:
        parse_offset(text)
    except ValueError as e:
        raise ValueError(f"{name}={text!r}: {e}") from None
    return text


def _api_keys(text: str) -> dict[str, str]:
    """API_KEYS="key1:alice,key2:bob" -> {"key1": "alice", "key2": "bob"}."""
    keys = {}
    for item in text.split(","):
        key, sep, user = item.strip().partition(":")
        if sep and key and user:
            keys[key] = user
    return keys


# Demo users for /login (a real service checks a password hash store).
USERS = {"alice": "wonderland", "bob": "builder"}


class Credentials(BaseModel):
    username: str = Field(max_length=64)
    password: str = Field(max_length=256)


class Order(BaseModel):
    symbol: str = Field(pattern=r"^[A-Z]{1,5}$")
    side: Literal["buy", "sell"]
    quantity: int = Field(ge=1, le=1000)

    @property
    def cost(self) -> int:
        """Rate-limit units: 1 per started 100 shares (1 to 10)."""
        return math.ceil(self.quantity / 100)


class Exchange:
    """Stands in for an order's real work (a broker, a database): takes
    `latency` seconds, and fails with an unexpected error for the symbols in
    `failing` (ORDER_LATENCY and ORDER_FAIL_SYMBOLS: for demos and tests)."""

    def __init__(self, latency: float = 0.0, failing: frozenset[str] = frozenset()) -> None:
        self.latency = latency
        self.failing = failing

    async def submit(self, user: str, order: Order) -> str:
        if self.latency:
            await asyncio.sleep(self.latency)
        if order.symbol in self.failing:
            raise RuntimeError(f"exchange failed on {order.symbol} (ORDER_FAIL_SYMBOLS)")
        return str(uuid.uuid4())


def create_app() -> FastAPI:
    redis_url = _env("REDIS_URL", "redis://127.0.0.1:6379")
    # Defaults that a healthy Redis on the host never trips, even under a
    # burst on a loaded machine (README.md, "When Redis is down").
    timeout = _number("RL_REDIS_TIMEOUT", "2", float, 0.001)
    connect_timeout = _number("RL_REDIS_CONNECT_TIMEOUT", "5", float, 0.001)
    pool_size = _number("RL_REDIS_POOL_SIZE", "20", int, 1)
    pool_timeout = _number("RL_REDIS_POOL_TIMEOUT", "10", float, 0.001)
    breaker_failures = _number("RL_BREAKER_FAILURES", "5", int, 1)
    breaker_cooldown = _number("RL_BREAKER_COOLDOWN", "5", float, 0.001)
    log_interval = _number("RL_LOG_INTERVAL", "10", float, 0.0)
    fail_mode = _env("RL_FAIL_MODE", "open").lower()
    if fail_mode not in ("open", "closed"):
        raise ValueError("RL_FAIL_MODE must be 'open' or 'closed'")
    trusted_proxies = _number("RL_TRUSTED_PROXIES", "0", int, 0)
    policy_sync = _env("RL_POLICY_SYNC", "missing").lower()
    if policy_sync not in SYNC_MODES:
        raise ValueError(f"RL_POLICY_SYNC must be one of {', '.join(SYNC_MODES)}")
    policy_refresh = _number("RL_POLICY_REFRESH", "0", float, 0.0)
    policy_prefix = os.environ.get("RL_POLICY_PREFIX", "").strip()
    api_keys = _api_keys(_env("API_KEYS", "demo-key-alice:alice,demo-key-bob:bob"))
    # The operators' pages show who is being denied: served only with this
    # secret, and not at all without one.
    ops_token = os.environ.get("OPS_TOKEN", "").strip()
    exchange = Exchange(
        _number("ORDER_LATENCY", "0", float, 0.0),
        frozenset(s.strip() for s in _env("ORDER_FAIL_SYMBOLS", "").split(",") if s.strip()),
    )

    # -- identities

    def user_of(request: Request) -> str | None:
        token = bearer_token(request)
        return api_keys.get(token) if token else None

    def require_user(request: Request) -> str:
        user = user_of(request)
        if user is None:
            raise HTTPException(
                401, detail="Valid API key required", headers={"WWW-Authenticate": "Bearer"}
            )
        return user

    def by_user(request: Request) -> str | None:
        user = user_of(request)
        return f"user:{user}" if user else None

    def by_valid_key(request: Request) -> str | None:
        return by_api_key(request) if user_of(request) else None

    # -- policies: the tiers, defined in Redis at start-up (RL_POLICY_SYNC)
    # and used by name. These are the definitions for a Redis that lacks
    # them; what Redis holds is what applies (an operator's RL.POLICY SET).

    policies = Policies(
        [
            PolicySpec("free", _env("RL_ANON_RATE", "100/minute"), algorithm="sliding"),
            PolicySpec("paid", _env("RL_PAID_RATE", "1000/minute"), algorithm="token"),
            PolicySpec("paid-daily", _env("RL_PAID_DAILY", "20000/day"), algorithm="fixed"),
            # A quota per calendar month, the same for every key: it resets
            # at midnight on the 1st at RL_PAID_MONTH_OFFSET (ALIGN, OFFSET).
            PolicySpec(
                "paid-monthly",
                _env("RL_PAID_MONTHLY", "300000/month"),
                algorithm="fixed",
                offset=_offset("RL_PAID_MONTH_OFFSET", "+00:00"),
            ),
            # An attempt refused by the limit puts the IP in the penalty box.
            PolicySpec(
                "login",
                _env("RL_LOGIN_RATE", "5/minute"),
                algorithm="fixed",
                penalty=_duration("RL_LOGIN_PENALTY", "15m"),
            ),
            PolicySpec(
                "orders",
                _env("RL_ORDER_RATE", "1/second"),
                algorithm="token",
                burst=_number("RL_ORDER_BURST", "10", int, 1),
            ),
        ],
        sync=policy_sync,
        prefix=policy_prefix,
        refresh=policy_refresh,
    )
    redis = async_redis(
        redis_url,
        pool_size=pool_size,
        pool_timeout=pool_timeout,
        timeout=timeout,
        connect_timeout=connect_timeout,
    )
    limiter = Limiter(
        redis,
        fail_open=fail_mode == "open",
        timeout=timeout,
        trusted_proxies=trusted_proxies,
        breaker=CircuitBreaker(breaker_failures, breaker_cooldown),
        policies=policies,
        log_interval=log_interval,
        # A registry of the app's own: each create_app() its own metrics.
        metrics=CollectorRegistry() if ops_token else False,
    )

    # -- limits (scopes are explicit so that /limits can peek at them)

    anon_quotes = limiter.limit("policy:free", key=by_ip, scope="quotes")
    paid_quotes = limiter.limit(
        "policy:paid;policy:paid-daily;policy:paid-monthly", key=by_valid_key, scope="quotes"
    )
    # Every attempt is charged before the password is checked (so that
    # concurrent guesses cannot overtake the count) and a successful one is
    # refunded: only failures stay counted.
    login_limit = limiter.limit("policy:login", key=by_ip, scope="auth")
    # Spent by hand in the endpoint, by the order's size.
    order_limit = limiter.limit("policy:orders", key=by_user, scope="orders")
    # Orders in flight per user, whatever their rate: each holds a lease
    # from before its rate limit is spent until the request ends.
    orders_inflight = limiter.concurrency(
        _number("RL_ORDER_INFLIGHT", "2", int, 1),
        ttl=_duration("RL_ORDER_LEASE_TTL", "10s"),
        key=by_user,
        scope="orders",
    )

    async def quote_limit(request: Request, response: Response) -> Outcome | None:
        """Paid tier for a valid API key; otherwise the anonymous limit per IP,
        which also throttles guessing API keys."""
        if user_of(request):
            return await paid_quotes.hit(request, response)
        outcome = await anon_quotes.hit(request, response)
        if bearer_token(request) is not None:
            raise HTTPException(
                401, detail="Invalid API key", headers={"WWW-Authenticate": "Bearer"}
            )
        return outcome

    # -- app

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        try:
            done = await limiter.sync_policies()
        except LimiterUnavailable as e:
            # Not fatal: the first call that finds a policy missing defines
            # it (unless RL_POLICY_SYNC=off), and the fail mode covers the
            # calls until Redis answers.
            log.warning("policies not synced with Redis at %s (yet): %s", redis_url, e)
        else:
            log.info(
                "policies (RL_POLICY_SYNC=%s): %s",
                policy_sync,
                ", ".join(f"{policies.server_name(n)} {what}" for n, what in done.items()),
            )
        try:
            yield
        finally:
            limiter.close()
            await redis.aclose()

    # API keys are bearer tokens: the scheme lets /docs send one (Authorize)
    # with every route it tries.
    bearer = HTTPBearer(auto_error=False, description="An API key, e.g. demo-key-alice")
    app = FastAPI(
        title="Stock quotes (rate-limited by the ratelimit module)",
        lifespan=lifespan,
        dependencies=[Depends(bearer)],
    )
    limiter.init_app(app)  # the 429 handler; 429 (and 503) in the OpenAPI schema
    # The headers also on responses raised after a check (a 401 from /login).
    app.add_middleware(RateLimitMiddleware, limiter=limiter)
    limited = openapi_responses(limiter)  # for routes that check by hand
    if ops_token:
        operators = token_check(ops_token)  # Bearer, or Basic's password (a browser)
        app.mount("/ops/ratelimit", dashboard(limiter, authorize=operators))
        app.mount("/ops/metrics", metrics_app(limiter, authorize=operators))

    @app.get("/quotes/{symbol}", responses=limited)
    async def quote(
        symbol: Annotated[str, Path(pattern=r"^[A-Z]{1,5}$")],
        _: Annotated[Outcome | None, Depends(quote_limit)],
    ) -> dict[str, Any]:
        # A made-up but stable price per symbol.
        cents = int.from_bytes(hashlib.sha256(symbol.encode()).digest()[:4], "big") % 100000
        return {"symbol": symbol, "price": round(10 + cents / 100, 2), "currency": "USD"}

    @app.post("/login")
    async def login(
        creds: Credentials,
        request: Request,
        response: Response,
        charged: Annotated[Outcome | None, Depends(login_limit)],
    ) -> dict[str, str]:
        if USERS.get(creds.username) != creds.password:
            raise HTTPException(401, detail="Wrong username or password")  # stays counted
        if charged is not None:  # None: not charged (Redis down, failing open)
            await login_limit.refund(request, response)
        key = next((k for k, u in api_keys.items() if u == creds.username), None)
        if key is None:
            raise HTTPException(403, detail="No API key for this user")
        return {"api_key": key}

    @app.post("/orders", status_code=201, responses=limited)
    async def place_order(
        order: Order,
        request: Request,
        response: Response,
        user: Annotated[str, Depends(require_user)],
    ) -> dict[str, Any]:
        # The slot first: a third order in flight is refused before it
        # spends any of the rate limit, and an order the rate limit refuses
        # gives its slot back at once. The lease is released when the block
        # ends, the exchange failing (a 500) included.
        async with orders_inflight.lease(request, response):
            await order_limit.hit(request, response, cost=order.cost)
            order_id = await exchange.submit(user, order)
        return {"id": order_id, "user": user, **order.model_dump(), "cost": order.cost}

    @app.get("/limits", responses={503: {"description": "Rate limiter unavailable"}})
    async def limits(request: Request) -> dict[str, Any]:
        """Peek at every limit that applies to the caller (COST 0: spends
        nothing, creates no key). 503 when Redis cannot answer."""
        paid_tier = user_of(request) is not None
        candidates: list[tuple[str, RateLimit | ConcurrencyLimit, Callable[..., Any]]] = [
            ("quotes", paid_quotes, by_valid_key) if paid_tier else ("quotes", anon_quotes, by_ip),
            ("login", login_limit, by_ip),
            ("orders", order_limit, by_user),  # per user: applies with an API key only
            ("orders_in_flight", orders_inflight, by_user),
        ]
        applying = [(name, lim) for name, lim, key in candidates if key(request) is not None]
        outcomes = await asyncio.gather(*(lim.peek(request) for _, lim in applying))
        if any(o is None for o in outcomes):  # Redis did not answer (failing open)
            raise Unavailable()
        out = {}
        for (name, _), outcome in zip(applying, outcomes, strict=True):
            assert outcome is not None
            out[name] = [
                {
                    "policy": q.name,
                    "algorithm": "lease"
                    if q.concurrent
                    else policies.current(q.name).algorithm.lower(),
                    "quota": q.decision.limit,
                    "window_s": q.window,  # None: a concurrency limit
                    "limit": q.decision.limit,
                    "remaining": q.decision.remaining,
                    "reset_after_ms": q.decision.reset_after_ms,
                }
                for q in outcome.quotas
            ]
        return {"tier": "paid" if paid_tier else "free", "limits": out}

    return app

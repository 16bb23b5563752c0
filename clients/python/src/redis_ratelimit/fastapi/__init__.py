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

The package is split by job; import from redis_ratelimit.fastapi (the
modules' layout is not part of the API):

    keys         key functions (by_ip, by_api_key, ...) and key names
    headers      Outcome, Quota, the rate-limit headers, Denied/Unavailable
    denycache    the deny cache
    collector    the garbage collector's tuning (freeze_heap, ...)
    limiter      Limiter: settings, the calls to Redis, fail modes
    rules        RateLimit: the check (the hot path) and the decorator
    concurrency  ConcurrencyLimit: leases
    middleware   RateLimitMiddleware
    openapi      the 429/503 responses in the schema
    waiting      waiting for a slot instead of a 429 (wait=)
    websocket    WebSocketLimit: on connect and per message
    metrics      Prometheus metrics (Limiter(metrics=True), the [prometheus] extra)
    dashboard    dashboard(limiter, authorize=...): the operators' live page
    guard        authorize= checks for those two (token_check)
"""

from .._breaker import MISCONFIGURED, POOL_EXHAUSTED, CircuitBreaker, LimiterUnavailable
from .._core import (
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
)
from .._durations import Duration, Rate
from ..client import AsyncRateLimiter, Lease
from ..policies import Policies, PoliciesNotSynced
from .collector import YOUNG_GENERATION, freeze_heap, widen_young_generation
from .concurrency import ConcurrencyLimit
from .denycache import DenyCache
from .guard import guarded, token_check
from .headers import Denied, DeniedHandler, Misconfigured, Outcome, Quota, Unavailable
from .keys import CostFunc, KeyFunc, bearer_token, by_api_key, by_ip, client_ip
from .limiter import Limiter
from .middleware import RateLimitMiddleware
from .openapi import openapi_responses
from .rules import ALGORITHMS, LimitsArg, RateLimit
from .waiting import Waiting
from .websocket import MessageDeniedHandler, WebSocketDenied, WebSocketLimit

__all__ = [
    "CircuitBreaker",
    "ConcurrencyLimit",
    "Denied",
    "DenyCache",
    "Limiter",
    "LimiterUnavailable",
    "MessageDeniedHandler",
    "Misconfigured",
    "ModuleNotLoaded",
    "Outcome",
    "Quota",
    "RateLimit",
    "RateLimitMiddleware",
    "RateLimiterMisconfigured",
    "Unavailable",
    "Waiting",
    "WebSocketDenied",
    "WebSocketLimit",
    "bearer_token",
    "by_api_key",
    "by_ip",
    "client_ip",
    "freeze_heap",
    "guarded",
    "openapi_responses",
    "token_check",
    "widen_young_generation",
]

# Importable from here before the split too (not in __all__).
_ALSO = (
    ALGORITHMS, MISCONFIGURED, POOL_EXHAUSTED, YOUNG_GENERATION, AsyncRateLimiter, CostFunc,
    Decision, DeniedHandler, Duration, Fixed, Gcra, KeyFunc, Leaky, Lease, Limit, LimitsArg, Log,
    Policies, PoliciesNotSynced, Policy, Rate, RateLimitError, Sliding, Token,
)  # fmt: skip

"""A client for the ratelimit Redis module (RL.* commands): rate limiting
decided inside Redis, one atomic call per request.

    from redis import Redis
    from redis_ratelimit import RateLimiter

    limiter = RateLimiter(Redis())
    d = limiter.token("user:42", 10, 5, "1s")     # 10 tokens, 5 per second
    if not d.allowed:
        print("retry in", d.retry_after, "s")

`AsyncRateLimiter` does the same over redis.asyncio. The FastAPI/Starlette
integration is in `redis_ratelimit.fastapi` (pip install 'redis-ratelimit[fastapi]').
"""

from ._breaker import MISCONFIGURED, CircuitBreaker, LimiterUnavailable, async_redis
from ._core import (
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
    RateLimitExceeded,
    Sliding,
    Token,
)
from ._durations import Duration, Rate, duration_arg, parse_rates
from .client import AsyncRateLimiter, Lease, RateLimiter
from .policies import (
    Policies,
    PoliciesNotSynced,
    PolicyDef,
    PolicySpec,
    calendar_window,
    parse_offset,
    rate_limit,
)

__version__ = "0.1.0"

__all__ = [
    "MISCONFIGURED",
    "AsyncRateLimiter",
    "CircuitBreaker",
    "Decision",
    "Duration",
    "Fixed",
    "Gcra",
    "Leaky",
    "Lease",
    "Limit",
    "LimiterUnavailable",
    "Log",
    "ModuleNotLoaded",
    "Policies",
    "PoliciesNotSynced",
    "Policy",
    "PolicyDef",
    "PolicySpec",
    "Rate",
    "RateLimitError",
    "RateLimitExceeded",
    "RateLimiter",
    "RateLimiterMisconfigured",
    "Sliding",
    "Token",
    "async_redis",
    "calendar_window",
    "duration_arg",
    "parse_offset",
    "parse_rates",
    "rate_limit",
]

"""Decisions as a request sees them (Outcome, Quota), their headers, and
the 429/503 exceptions."""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import TypeAlias

from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import Response

from .._core import (
    Decision,
    RateLimiterMisconfigured,
)
from .bounded import Bounded

log = logging.getLogger("redis_ratelimit")


DeniedHandler: TypeAlias = Callable[[Request, "Denied"], "Response | Awaitable[Response]"]


def _ceil_s(ms: int) -> int:
    return -(-ms // 1000) if ms > 0 else 0


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


_HEADER_PARTS = 10_000  # cached per kind of header part, at most (then it starts over)
_POLICIES: Bounded[tuple[str, int, int | None, bool], bytes] = Bounded(_HEADER_PARTS)


_QUOTED: Bounded[str, bytes] = Bounded(_HEADER_PARTS)


_FIXED_PARTS: Bounded[tuple[str, int, int | None, bool], tuple[bytes, bytes, bytes]] = Bounded(
    _HEADER_PARTS
)


def _fixed_parts(key: tuple[str, int, int | None, bool]) -> tuple[bytes, bytes, bytes]:
    """What a quota's headers keep from one check to the next: its
    RateLimit-Policy item, the start of its RateLimit item, the limit."""
    parts = (_policy_bytes(*key), _quoted(key[0]) + b";r=", b"%d" % key[1])
    return _FIXED_PARTS.put(key, parts)


def _quoted(name: str) -> bytes:
    """A quota's name as the RateLimit header has it: b'"name"'."""
    quoted = _QUOTED.get(name)
    if quoted is None:
        quoted = _QUOTED.put(name, b'"%s"' % name.encode())
    return quoted


def _policy_bytes(name: str, limit: int, window: int | None, concurrent: bool) -> bytes:
    key = (name, limit, window, concurrent)
    cached = _POLICIES.get(key)
    if cached is not None:
        return cached
    value = _policy_item(Quota(name, window, Decision(True, limit, 0, 0, 0), concurrent)).encode()
    return _POLICIES.put(key, value)


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
    middleware. `served`: the request goes through whatever the state says.

    Every outcome a request gets (dependency, decorator, middleware, lease,
    refund; from Redis or the deny cache) passes here once: the place to
    count decisions. The calls Redis could not answer are counted apart,
    by Limiter._fail_mode and Limiter._lost (Limiter.failures)."""
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

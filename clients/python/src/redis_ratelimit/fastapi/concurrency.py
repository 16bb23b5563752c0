"""Concurrency limits (ConcurrencyLimit): leases held while a request runs."""

from __future__ import annotations

import asyncio
import logging
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import TYPE_CHECKING, Any

from starlette.requests import Request
from starlette.responses import Response

from .._breaker import (
    LimiterUnavailable,
)
from .._core import (
    Decision,
)
from .._durations import Duration, check_amount, duration_arg, duration_seconds
from ..client import Lease
from .headers import (
    Denied,
    Outcome,
    Quota,
    _header_dict,
    _put_headers,
    _record,
)
from .keys import (
    KeyFunc,
    _key_base,
    _resolve,
)

log = logging.getLogger("redis_ratelimit")

if TYPE_CHECKING:
    from .limiter import Limiter


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
            transport = limiter.transport
            release = ("RL.RELEASE", key, lease_id)  # idempotent: sent again when lost
            freed = await limiter.settle(lambda: transport.send(release), timed=transport.timed)
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
            await limiter.heartbeat_sleep(self.ttl_seconds / 3)
            try:
                held = await limiter.execute(renew)
            except LimiterUnavailable as e:
                limiter._lost(e, "renew", "rate limiter lease not renewed: %s", e, key=key)
                continue
            if not held:
                limiter.warn("lease-lost", "rate limiter lease on %s expired while its "
                             "request ran", key)  # fmt: skip
                return

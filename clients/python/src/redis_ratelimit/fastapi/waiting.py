"""Waiting for a slot instead of a 429 (a limit's `wait=`): the denied
request sleeps its retry_after and asks again, within a bound; a LEAKY
limit's request sleeps until its turn."""

from __future__ import annotations

import asyncio
import time
from collections import Counter
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any

from starlette.requests import ClientDisconnect, Request

from .._core import Decision
from .._durations import Duration, duration_seconds
from .headers import Outcome
from .keys import _resolve

if TYPE_CHECKING:
    from .rules import RateLimit


# What became of the requests that could have waited (Limiter.waits):
SERVED = "served"  # waited, then allowed (or Redis failed and the limiter failed open)
TIMED_OUT = "timed-out"  # waited the bound without a slot: 429
BEYOND = "beyond"  # retry_after (or a LEAKY turn) past the bound, or never: 429 at once
FULL = "full"  # max_waiting requests were waiting already: 429 at once
GONE = "gone"  # the client went away while waiting: nothing more is asked


def wait_seconds(value: Duration) -> float:
    seconds = duration_seconds(value)
    if seconds is None or seconds <= 0:
        raise ValueError(f"bad wait {value!r}: a positive duration (seconds, '500ms', '2s')")
    return seconds


class Waiting:
    """A Limiter's requests waiting for a slot: at most `limit` at once (each
    holds a worker's coroutine and its request), counted by outcome.

    `sleep` and `clock` are asyncio.sleep and time.monotonic, replaceable
    (tests)."""

    def __init__(self, limit: int) -> None:
        if limit < 0:
            raise ValueError(f"max_waiting must be 0 or more, not {limit!r}")
        self.limit = limit
        self.now = 0  # waiting at this moment (a gauge)
        self.counts: Counter[str] = Counter()
        self.sleep: Callable[[float], Awaitable[Any]] = asyncio.sleep
        self.clock: Callable[[], float] = time.monotonic


async def _disconnected(request: Request) -> None:
    """Returns once the client has gone (http.disconnect). Only for a
    request whose body has been read: the messages that follow it are
    the disconnect alone."""
    while True:
        message = await request.receive()
        if message.get("type") == "http.disconnect":
            return


async def _nap(waiting: Waiting, seconds: float, watch: asyncio.Future[None] | None) -> bool:
    """Sleeps `seconds`; False when the client went away first."""
    if watch is None:
        await waiting.sleep(seconds)
        return True
    nap = asyncio.ensure_future(waiting.sleep(seconds))
    try:
        await asyncio.wait((nap, watch), return_when=asyncio.FIRST_COMPLETED)
    finally:
        nap.cancel()
    return not watch.done()


async def waited(
    rule: RateLimit, request: Request, outcome: Outcome, cost: int | None, *, watch: bool = True
) -> Outcome | None:
    """The outcome after waiting, within rule.wait seconds in all: allowed
    (or None: Redis failed and the limiter fails open), or the last denial.
    `watch`: stop waiting when the client goes away (an HTTP request)."""
    limiter = rule.limiter
    waiting: Waiting = limiter.waiting
    counts = waiting.counts
    bound = rule.wait
    assert bound is not None
    if cost is None:
        cost = rule.cost if isinstance(rule.cost, int) else await _resolve(rule.cost(request))
    ms = outcome.decision.retry_after_ms
    if ms < 0 or ms > bound * 1000:
        counts[BEYOND] += 1
        return await _refused(rule, request, outcome, cost)
    if waiting.now >= waiting.limit:
        counts[FULL] += 1
        return await _refused(rule, request, outcome, cost)
    waiting.now += 1
    gone: asyncio.Future[None] | None = None
    try:
        if watch and request.scope.get("type") == "http":
            # Reading the body first (cached on the request, the one the
            # endpoint gets) leaves the disconnect the only message to come.
            try:
                await request.body()
            except RuntimeError:  # streamed to its end already (a form), not cached
                pass
            except ClientDisconnect:
                counts[GONE] += 1
                return await _refused(rule, request, outcome, cost)
            gone = asyncio.ensure_future(_disconnected(request))
        deadline = waiting.clock() + bound
        while True:
            d = outcome.decision
            seconds = max(d.retry_after_ms, 1) / 1000
            if waiting.clock() + seconds > deadline:
                counts[TIMED_OUT if not d.allowed else BEYOND] += 1
                return await _refused(rule, request, outcome, cost)
            if not await _nap(waiting, seconds, gone):
                counts[GONE] += 1  # nothing more is asked; the 429 goes nowhere
                return await _refused(rule, request, outcome, cost)
            if d.allowed:  # a LEAKY request's turn has come
                counts[SERVED] += 1
                return outcome
            again = await rule.check(request, cost)
            if again is None or (again.allowed and again.decision.retry_after_ms <= 0):
                counts[SERVED] += 1
                return again
            outcome = again
    finally:
        waiting.now -= 1
        if gone is not None:
            if gone.done() and not gone.cancelled():
                gone.exception()  # retrieved: a receive() that failed is only the end
            gone.cancel()


async def _refused(rule: RateLimit, request: Request, outcome: Outcome, cost: int) -> Outcome:
    """The 429 of a request that does not wait (longer). A LEAKY request
    accepted into the queue gives its place back first (RL.REFUND), and
    its Retry-After is the wait for its turn."""
    if not outcome.allowed:
        return outcome
    if cost > 0:
        await rule.refund(request, None, cost)
    d = outcome.decision
    denied = Decision(False, d.limit, d.remaining, d.retry_after_ms, d.reset_after_ms, None,
                      d.limits)  # fmt: skip
    return Outcome(denied, outcome.quotas, outcome.cap_retry)

"""A circuit breaker for the async limiter, what its failures mean, and a
redis.asyncio client tuned for it."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import MaxConnectionsError, RedisError, ResponseError

from ._core import RateLimiterMisconfigured, misconfiguration, misconfigured

log = logging.getLogger("redis_ratelimit")

T = TypeVar("T")

UNREACHABLE = "unreachable"  # refused, lost, timed out: counts for the breaker
CIRCUIT_OPEN = "circuit-open"  # not asked: the breaker is open
POOL_EXHAUSTED = "pool-exhausted"  # no free connection in time: the pool was busy
ERROR_REPLY = "error-reply"  # Redis answered an error (a bad argument, LOADING, ...)
# Redis answered that it cannot rate-limit for this client (no module,
# NOPERM, a key of another type): a configuration error, never failed open
# by default, logged at ERROR, counted apart from the outages.
MISCONFIGURED = "misconfigured"


class LimiterUnavailable(Exception):
    """Redis could not answer a limiter's call; `kind` says why: one of
    UNREACHABLE, CIRCUIT_OPEN, POOL_EXHAUSTED, ERROR_REPLY, MISCONFIGURED
    (then `misconfigured` is the RateLimiterMisconfigured, which the
    Limiter's start-up calls raise instead)."""

    def __init__(
        self,
        message: str,
        kind: str = UNREACHABLE,
        misconfigured: RateLimiterMisconfigured | None = None,
    ) -> None:
        super().__init__(message)
        self.kind = kind
        self.misconfigured = misconfigured


def failure_kind(error: BaseException) -> str | None:
    """What a Redis call's exception means; None when it is not about Redis."""
    if isinstance(error, ResponseError):
        return ERROR_REPLY if misconfiguration(error) is None else MISCONFIGURED
    if isinstance(error, RedisError) and misconfiguration(error) is not None:
        return MISCONFIGURED
    # A full default pool raises MaxConnectionsError; a BlockingConnectionPool
    # whose wait timed out, ConnectionError("No connection available.").
    # Neither means Redis failed: the calls holding the connections say so
    # when it has.
    if isinstance(error, MaxConnectionsError) or (
        isinstance(error, RedisConnectionError) and "No connection available" in str(error)
    ):
        return POOL_EXHAUSTED
    if isinstance(error, (RedisError, OSError, asyncio.TimeoutError)):
        return UNREACHABLE
    return None


def unavailable(error: BaseException) -> LimiterUnavailable | None:
    """The LimiterUnavailable for a Redis call's exception; None when the
    exception is not about Redis (it should propagate)."""
    if isinstance(error, LimiterUnavailable):
        return error
    kind = failure_kind(error)
    if kind is None:
        return None
    if isinstance(error, asyncio.TimeoutError):
        return LimiterUnavailable("no reply within the timeout", kind)
    if kind == MISCONFIGURED:
        wrong = misconfigured(error)
        return LimiterUnavailable(str(wrong), kind, wrong)
    return LimiterUnavailable(str(error) or type(error).__name__, kind)


# How often a call's timeout looks at the clock (LoopTimeout).
TICK = 0.05


class LoopTimeout:
    """asyncio.timeout(timeout) counting only the time the event loop
    keeps up: the clock is read every TICK s, and when a reading comes
    late (the loop busy with other work, e.g. the rest of a burst of
    requests, or opening connections behind it) the lateness does not
    count. A reply that has arrived but waits for the loop is not Redis
    being slow. With the loop idle it is a plain timeout.

    `cut` is the asyncio.Timeout: the breaker moves it to now when it
    opens."""

    __slots__ = ("_due", "_handle", "_left", "_loop", "_step", "cut")

    def __init__(self, timeout: float) -> None:
        self.cut = asyncio.timeout(None)
        self._left = timeout
        self._handle: asyncio.TimerHandle | None = None

    async def __aenter__(self) -> asyncio.Timeout:
        await self.cut.__aenter__()
        self._loop = asyncio.get_running_loop()
        self._arm(self._loop.time())
        return self.cut

    async def __aexit__(self, exc_type: Any, exc: Any, tb: Any) -> None:
        if self._handle is not None:
            self._handle.cancel()
        await self.cut.__aexit__(exc_type, exc, tb)  # raises TimeoutError when cut

    def _arm(self, now: float) -> None:
        self._step = min(self._left, TICK)
        self._due = now + self._step
        self._handle = self._loop.call_at(self._due, self._tick)

    def _tick(self) -> None:
        self._handle = None
        if self.cut.expired():  # cut short already (the breaker opened)
            return
        self._left -= self._step  # the step counts, however late this reading
        now = self._loop.time()
        if self._left <= 1e-9:
            self.cut.reschedule(now)
        else:
            self._arm(now)


async def within(fn: Callable[[], Awaitable[T]], timeout: float) -> T:
    """await fn() within `timeout` s of the loop keeping up (LoopTimeout)."""
    async with LoopTimeout(timeout):
        return await fn()


class CircuitBreaker:
    """Stops asking a Redis that keeps failing, so that a stalled Redis does
    not cost every request the full timeout.

    closed     calls go to Redis; `failures` consecutive failures (refused
               or lost connections, timeouts) open the breaker
    open       for `cooldown` seconds every call fails at once with
               LimiterUnavailable(kind=CIRCUIT_OPEN), without a Redis call;
               calls already waiting for a reply when it opens are cut
               short (Python 3.11+)
    half-open  after the cooldown one call goes through as a trial: its
               success closes the breaker, its failure opens it again

    Any reply, an error reply included (a misconfigured server's too: it
    answers), is a success. A call that found no
    free connection in the pool is neither: the pool was busy, not Redis.

    A call made without call() (the Limiter's hot path awaits its reply
    itself) is made only while `closed`, and counted with failure(error)
    or success(); `failed_in_a_row` is the count of consecutive failures
    while closed, `opened_at` the clock's time it opened (None: closed).
    """

    def __init__(
        self,
        failures: int = 5,
        cooldown: float = 5.0,
        *,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if isinstance(failures, bool) or not isinstance(failures, int) or failures < 1:
            raise ValueError(f"failures must be an integer of at least 1, not {failures!r}")
        if not cooldown > 0:
            raise ValueError(f"cooldown must be positive, not {cooldown!r}")
        self.failures = failures
        self.cooldown = cooldown
        self._clock = clock
        # Written only here: a call made outside call() asks `closed` and
        # reports with failure() or success().
        self.failed_in_a_row = 0  # consecutive failures while closed
        self.opened_at: float | None = None  # None: closed
        self._trial = False  # a trial call is in flight
        self._waiting: set[Any] = set()  # the timeouts of the calls in flight

    @property
    def state(self) -> str:
        """One of "closed", "open" or "half-open"."""
        if self.opened_at is None:
            return "closed"
        if self._trial or self._clock() - self.opened_at < self.cooldown:
            return "open"
        return "half-open"

    @property
    def closed(self) -> bool:
        """Calls go to Redis (neither open nor half-open): what a call made
        outside call() asks first."""
        return self.opened_at is None

    async def call(self, fn: Callable[[], Awaitable[T]], timeout: float | None = None) -> T:
        """await fn() within `timeout` seconds unless the breaker is open.
        Raises LimiterUnavailable for a Redis failure (the timeout
        included); other exceptions pass through."""
        if self.opened_at is None:  # the usual case, kept short
            return await self._call(fn, timeout, False)
        left = self.opened_at + self.cooldown - self._clock()
        if left > 0 or self._trial:
            why = f"{max(left, 0):.1f} s to the next trial" if left > 0 else "a trial is in flight"
            raise LimiterUnavailable(f"circuit open ({why})", CIRCUIT_OPEN)
        self._trial = True
        try:
            return await self._call(fn, timeout, True)
        finally:
            self._trial = False

    async def _call(self, fn: Callable[[], Awaitable[T]], timeout: float | None,
                    trial: bool) -> T:  # fmt: skip
        if timeout is None:  # fn keeps its own time
            return await self._call_plain(fn, trial)
        watch = LoopTimeout(timeout)
        cut = watch.cut  # moved to now when the breaker opens
        waiting = self._waiting
        try:
            async with watch:
                waiting.add(cut)
                try:
                    result = await fn()
                finally:
                    waiting.discard(cut)
        except Exception as e:
            if cut.expired() and self.opened_at is not None and not trial:
                why = "circuit opened during the call"
                raise LimiterUnavailable(why, CIRCUIT_OPEN) from None
            raise self._failed_with(e, trial) from e
        if self.failed_in_a_row or trial:
            self._success(trial)
        return result

    async def _call_plain(self, fn: Callable[[], Awaitable[T]], trial: bool) -> T:
        try:
            result = await fn()
        except Exception as e:
            raise self._failed_with(e, trial) from e
        if self.failed_in_a_row or trial:
            self._success(trial)
        return result

    def failure(self, error: Exception) -> Exception:
        """Counts a call made outside call() that raised `error` (the
        breaker closed when it was made): returns the LimiterUnavailable
        it means, or the error itself when it is not about Redis."""
        return self._failed_with(error, False)

    def success(self) -> None:
        """Counts a call made outside call() that got a reply (the breaker
        closed when it was made); nothing to do while none had failed."""
        if self.failed_in_a_row:
            self._success(False)

    def _failed_with(self, error: Exception, trial: bool) -> Exception:
        err = unavailable(error)
        if err is None:
            return error
        if err.kind == UNREACHABLE:
            self._failure(err, trial)
        elif err.kind == ERROR_REPLY or err.kind == MISCONFIGURED:
            self._success(trial)
        return err

    def _success(self, trial: bool) -> None:
        if self.opened_at is None:
            self.failed_in_a_row = 0
        elif trial:
            self.opened_at, self.failed_in_a_row = None, 0
            log.warning("rate limiter circuit closed: Redis answers again")

    def _failure(self, error: Exception, trial: bool) -> None:
        if trial:
            self.opened_at = self._clock()
            log.warning("rate limiter circuit stays open: the trial call failed (%s); "
                        "next trial in %g s", error, self.cooldown)  # fmt: skip
            return
        if self.opened_at is not None:
            return  # already open
        self.failed_in_a_row += 1
        if self.failed_in_a_row < self.failures:
            return
        self.opened_at = self._clock()
        log.warning("rate limiter circuit open after %d consecutive failures (last: %s): "
                    "requests take the fail mode without asking Redis for %g s",
                    self.failed_in_a_row, error, self.cooldown)  # fmt: skip
        now = asyncio.get_running_loop().time()
        for cut in list(self._waiting):
            # One whose own timeout has just fired ("expiring") is
            # failing already, and cannot be rescheduled.
            if not cut.expired():
                cut.reschedule(now)


def async_redis(
    url: str = "redis://localhost:6379",
    *,
    pool_size: int = 50,
    pool_timeout: float = 10.0,
    timeout: float = 2.0,
    connect_timeout: float = 5.0,
    **kwargs: Any,
) -> Any:
    """A redis.asyncio.Redis suited to the limiter.

    pool_size        connections at most. A burst beyond it waits for a free
                     connection (a BlockingConnectionPool) instead of opening
                     one connection per request in flight, as redis-py's
                     default pool does (1,000 concurrent requests: 1,000
                     connections, each opened while the burst waits)
    pool_timeout     how long a call waits for a free connection, at most
    timeout          for one command's reply (socket read and write)
    connect_timeout  for opening a connection

    No retries: the limiter decides what a failed call means (its fail
    mode). Other keyword arguments go to the pool (e.g. protocol=3)."""
    from redis.asyncio import BlockingConnectionPool, Redis
    from redis.asyncio.retry import Retry
    from redis.backoff import NoBackoff

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


__all__ = [
    "CIRCUIT_OPEN",
    "ERROR_REPLY",
    "MISCONFIGURED",
    "POOL_EXHAUSTED",
    "UNREACHABLE",
    "CircuitBreaker",
    "LimiterUnavailable",
    "async_redis",
    "failure_kind",
]

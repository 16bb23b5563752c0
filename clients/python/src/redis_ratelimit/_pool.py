"""The wait for one of redis-py's pooled connections, kept out of the
limiter's timeout: a busy pool is not Redis failing to answer."""

from __future__ import annotations

import asyncio
import contextlib
from collections import deque
from types import TracebackType
from typing import Any

from ._breaker import POOL_EXHAUSTED, LimiterUnavailable

# A pool without its own limit on the wait (a plain ConnectionPool, a
# cluster's nodes): how long a call waits for a free connection, at most.
POOL_WAIT = 10.0
# Above this many connections a pool is taken as unbounded (redis-py's
# default ConnectionPool: 2**31); its calls never wait for one.
UNBOUNDED = 100_000


class PoolGate:
    """Lets at most `size` of the limiter's calls through redis-py's pool at
    once, `size` being the pool's connections (per node on a cluster): a
    call let in finds a free connection at once, so the limiter's short
    timeout starts when Redis is asked, not while the call queues behind a
    burst. The queue is bounded by `wait` seconds (None: by the request);
    a call still waiting then fails with LimiterUnavailable(POOL_EXHAUSTED)."""

    def __init__(self, size: int, wait: float | None) -> None:
        self.size = size
        self.wait = wait
        self._free = size
        # Futures of the calls waiting, each bound to its own event loop (a
        # Limiter can outlive one); a slot freed is handed to the first.
        self._waiting: deque[asyncio.Future[None]] = deque()

    @classmethod
    def for_client(cls, redis: Any) -> PoolGate | None:
        """The gate for a redis.asyncio client's pool; None when its
        connections are not bounded (or not known)."""
        pool = getattr(redis, "connection_pool", None)
        if pool is not None:  # standalone, Sentinel
            size = getattr(pool, "max_connections", None)
            wait = getattr(pool, "timeout", POOL_WAIT)  # a BlockingConnectionPool's own
        else:  # a cluster: the same bound on every node
            kwargs = getattr(getattr(redis, "nodes_manager", None), "connection_kwargs", {})
            size, wait = kwargs.get("max_connections"), POOL_WAIT
        if not isinstance(size, int) or isinstance(size, bool) or not 0 < size <= UNBOUNDED:
            return None
        if not isinstance(wait, (int, float)) or isinstance(wait, bool):
            wait = None if wait is None else POOL_WAIT
        return cls(size, wait)

    async def __aenter__(self) -> None:
        if self._free and not self._waiting:  # a free slot: taken without waiting
            self._free -= 1
            return
        fut: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._waiting.append(fut)
        try:
            await asyncio.wait_for(fut, self.wait)
        except BaseException as e:
            if fut.done() and not fut.cancelled():
                self._release()  # handed a slot just as it gave up: passed on
            else:
                fut.cancel()
                with contextlib.suppress(ValueError):
                    self._waiting.remove(fut)
            if isinstance(e, asyncio.TimeoutError):
                why = f"no free pooled connection within {self.wait:g} s ({self.size} in use)"
                raise LimiterUnavailable(why, POOL_EXHAUSTED) from None
            raise

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self._release()

    def _release(self) -> None:
        waiting = self._waiting
        while waiting:
            fut = waiting.popleft()
            if not fut.done():
                fut.set_result(None)
                return
        self._free += 1

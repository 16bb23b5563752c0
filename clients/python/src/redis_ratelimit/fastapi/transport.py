"""Where a Limiter's calls to Redis go: the one place that chooses between
redis-py's pool and the pipelined connection (_fast.FastConnection).

A Transport sends commands and hands back raw replies; it neither times
out (unless `timed`) nor counts failures: the Limiter wraps every call in
its timeout, breaker and fail mode (Limiter.call), so that what a failure
means is decided once, whatever carried the call.

    Pooled     redis-py's client (any: a cluster, TLS, Sentinel...), its
               pool's queue in front (PoolGate)
    Pipelined  one connection of the limiter's own, commands of every
               request in flight in one write; keeps its own timeout

Timing Redis calls (metrics) belongs here: every call of a Limiter goes
through send(), send_many(), the policy calls, or submit() on the hot path.

A Command is a command's arguments, or (to a transport that `takes_resp`
only) the command already in RESP, as the hot path builds it.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Sequence
from typing import Any, TypeAlias

from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff

from .._core import Arg, Limit, policy_set_args
from .._durations import Duration
from .._fast import FastConnection
from ..client import CHECK_COMMAND, AsyncRateLimiter, _module_check, server_address
from ..testing import Clock, with_at

Command: TypeAlias = "Sequence[Arg] | bytes"


class Transport:
    """The calls a Limiter makes, on one kind of connection (see the module)."""

    # Commands may come in RESP (send(), submit()): the hot path builds
    # them once per caller (RateLimit's targets) and Limiter.run() awaits
    # submit()'s future in its own frame. False: arguments only.
    takes_resp = False
    # Keeps the timeout itself (the Limiter's breaker gets none), and has
    # no pool to queue for (Limiter.call's `timed`).
    timed = False

    def address(self, key: str | None = None) -> str | None:
        """Where a call about `key` goes (None when unknown)."""
        raise NotImplementedError

    def submit(self, command: bytes) -> Awaitable[Any] | None:
        """The reply's future for a command in RESP, queued now; None when
        it cannot be queued at once (then send())."""
        return None

    def send(self, args: Command) -> Awaitable[Any]:
        """One command's reply; an error reply raises ResponseError."""
        raise NotImplementedError

    async def send_many(self, commands: Sequence[Sequence[Arg]]) -> list[Any]:
        """Several commands sent together, their replies in order (an
        error reply raises ResponseError, the first one)."""
        raise NotImplementedError

    async def policy_get(self, name: str) -> Any:
        """RL.POLICY GET's raw reply."""
        return await self.send(("RL.POLICY", "GET", name))

    async def policy_set(
        self, name: str, limit: Limit, penalty: Duration | None, shadow: bool
    ) -> None:
        await self.send(policy_set_args(name, limit, penalty, shadow))

    async def check_module(self) -> None:
        """COMMAND INFO RL.FIXED (every master of a cluster): raises
        ModuleNotLoaded when it is missing."""
        raise NotImplementedError

    def close(self) -> None:
        pass


class Pooled(Transport):
    """Through redis-py's client and its pool."""

    def __init__(self, client: AsyncRateLimiter) -> None:
        self.client = client
        self.redis = client.redis

    def address(self, key: str | None = None) -> str | None:
        return server_address(self.redis)

    def send(self, args: Command) -> Awaitable[Any]:
        reply: Awaitable[Any] = self.redis.execute_command(*args)
        return reply

    async def send_many(self, commands: Sequence[Sequence[Arg]]) -> list[Any]:
        # One pipeline: one round trip, on one connection (on a cluster,
        # commands whose keys share a hash tag).
        pipe = self.redis.pipeline(transaction=False)
        for c in commands:
            pipe.execute_command(*c)
        replies: list[Any] = await pipe.execute()
        return replies

    async def policy_get(self, name: str) -> Any:
        # Read where the client reads policies (a cluster: its default node).
        return await self.client.policy_get(name)

    async def policy_set(
        self, name: str, limit: Limit, penalty: Duration | None, shadow: bool
    ) -> None:
        # On every master of a cluster.
        await self.client.policy_set(name, limit, penalty=penalty, shadow=shadow)

    async def check_module(self) -> None:
        await _credentials_accepted(self.redis)
        await self.client.check_module()


async def _credentials_accepted(redis: Any) -> None:
    """Connects once, with no retry, so a refused password raises at once.
    redis-py's Retry counts AuthenticationError (WRONGPASS, NOAUTH) as a
    ConnectionError and retries it for seconds (redis-py 8: 10 times), past
    any limiter's timeout: the check would read a wrong password as Redis
    being down. A cluster client's nodes each have their own pool: skipped."""
    make = getattr(getattr(redis, "connection_pool", None), "make_connection", None)
    if make is None:
        return
    conn = make()
    conn.retry = Retry(NoBackoff(), 0)
    try:
        await conn.connect()
    finally:
        await conn.disconnect()


class Pipelined(Transport):
    """Down the limiter's own pipelined connection (FastConnection): it
    reconnects by itself after a Redis restart, where the pool's idle
    connections fail once each."""

    takes_resp = True
    timed = True

    def __init__(self, fast: FastConnection) -> None:
        self.fast = fast
        # The hot path's call, bound once.
        self.submit = fast.submit  # type: ignore[method-assign]

    def address(self, key: str | None = None) -> str | None:
        fast = self.fast
        return f"unix:{fast.path}" if fast.path else f"{fast.host or 'localhost'}:{fast.port}"

    def send(self, args: Command) -> Awaitable[Any]:
        if type(args) is bytes:  # in RESP already: the hot path's, not connected yet
            return self.fast.send(args)
        return self.fast.execute(args)

    async def send_many(self, commands: Sequence[Sequence[Arg]]) -> list[Any]:
        # Queued in the same loop iteration: one write, one round trip.
        execute = self.fast.execute
        return list(await asyncio.gather(*(execute(c) for c in commands)))

    async def check_module(self) -> None:
        reply = await self.fast.execute(("COMMAND", "INFO", CHECK_COMMAND))
        _module_check({self.address() or "the Redis server": reply})

    def close(self) -> None:
        self.fast.close()


class Clocked(Transport):
    """Another transport's calls, each decision, refund and acquire with
    `AT <clock>` appended (redis_ratelimit.testing): a Limiter's tests
    deciding at a time they control. It takes no RESP, so the hot path
    builds every command as arguments and AT is appended
    here once per command; a Limiter without a clock never comes here."""

    def __init__(self, inner: Transport, clock: Clock) -> None:
        self.inner = inner
        self.clock = clock
        self.timed = inner.timed

    def address(self, key: str | None = None) -> str | None:
        return self.inner.address(key)

    def send(self, args: Command) -> Awaitable[Any]:
        return self.inner.send(with_at(args, self.clock))

    async def send_many(self, commands: Sequence[Sequence[Arg]]) -> list[Any]:
        clock = self.clock
        return await self.inner.send_many([with_at(c, clock) for c in commands])

    async def policy_get(self, name: str) -> Any:
        return await self.inner.policy_get(name)

    async def policy_set(
        self, name: str, limit: Limit, penalty: Duration | None, shadow: bool
    ) -> None:
        await self.inner.policy_set(name, limit, penalty, shadow)

    async def check_module(self) -> None:
        await self.inner.check_module()

    def close(self) -> None:
        self.inner.close()


def transport_for(client: AsyncRateLimiter, timeout: float, pipelining: bool) -> Transport:
    """The pipelined connection when asked for and the client allows it (a
    standalone redis.asyncio.Redis over TCP or a unix socket, without TLS),
    else the client's pool."""
    fast = FastConnection.for_client(client.redis, timeout) if pipelining else None
    return Pooled(client) if fast is None else Pipelined(fast)


def with_clock(transport: Transport, clock: Clock | None) -> Transport:
    """`transport` with AT `clock` on its calls (Clocked), or without a
    clock again (None): never one Clocked inside another."""
    base = transport.inner if isinstance(transport, Clocked) else transport
    return base if clock is None else Clocked(base, clock)


__all__ = ["Clocked", "Command", "Pipelined", "Pooled", "Transport", "transport_for", "with_clock"]

"""Time an app's tests control: a FakeClock sent as the module's `AT
unix_ms` on every decision, refund and lease a limiter makes, so that a
test spends a minute's quota, moves the clock 61 s and sees it back, in
milliseconds and without sleeping.

    from redis_ratelimit.testing import FakeClock

    clock = FakeClock()              # now, or FakeClock(start=1_796_222_760)
    limiter.use_clock(clock)         # a FastAPI Limiter, RateLimiter, AsyncRateLimiter
    ...                              # 100 requests: the 101st is denied
    clock.advance(61)
    ...                              # allowed again
    limiter.use_clock(None)          # the server's clock again

Under pytest the `ratelimit_clock` fixture (this package's pytest plugin)
is a FakeClock that detaches itself after the test:

    def test_quota(ratelimit_clock):
        ratelimit_clock.attach(limiter)
        ...

The module never moves a limiter's time backwards (AT earlier than a key
has seen decides at the later time), so a clock only goes forwards; keys
live for their reset time from the later of AT and the server's clock.
Leases run on it too: RL.ACQUIRE, RL.RENEW and RL.RELEASE carry AT, and a
concurrency limit's heartbeat waits for the clock to move (wait(): it
renews as the test advances the clock, never on its own, so a lease of a
300 ms ttl outlives three ttls in a test that takes no time). A FastAPI
Limiter's deny cache counts on the fake clock too (a
denied caller cached locally comes back when the fake time passes its
retry); its circuit breaker stays on real time (it is about Redis, not
the limits)."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any, Protocol


class Clock(Protocol):
    """What a limiter asks of a clock set with use_clock()."""

    def now_ms(self) -> int:
        """Unix milliseconds: the AT of the next call."""
        ...

    def time(self) -> float:
        """The same instant in seconds (the deny cache's time)."""
        ...


# The commands that take AT: every decision, RL.REFUND and the lease commands.
TIMED = frozenset(
    ("RL.FIXED", "RL.SLIDING", "RL.LOG", "RL.TOKEN", "RL.LEAKY", "RL.GCRA", "RL.ALL",
     "RL.CHECK", "RL.PEEK", "RL.REFUND", "RL.ACQUIRE", "RL.RENEW", "RL.RELEASE")
)  # fmt: skip


def with_at(args: Sequence[Any], clock: Clock) -> Sequence[Any]:
    """A command with `AT <clock>` appended when it takes AT."""
    name = args[0]
    if isinstance(name, bytes):
        name = name.decode()
    if str(name).upper() in TIMED:
        return [*args, "AT", clock.now_ms()]
    return args


class FakeClock:
    """A clock that moves only when told (see the module). `start`: Unix
    seconds (int or float) or an aware datetime; default: now."""

    def __init__(self, start: float | datetime | None = None) -> None:
        self._ms = 0
        self._attached: list[Any] = []
        # wait()ers: the instant each waits for, and what wakes it.
        self._waiting: list[tuple[int, asyncio.Future[None]]] = []
        self.set(time.time() if start is None else start)

    def now_ms(self) -> int:
        return self._ms

    def time(self) -> float:
        return self._ms / 1000

    def __call__(self) -> float:
        """time(): a clock wherever a zero-argument callable is taken."""
        return self._ms / 1000

    def utc(self) -> datetime:
        """The clock's time as an aware datetime in UTC."""
        return datetime.fromtimestamp(self._ms / 1000, UTC)

    async def sleep(self, seconds: float) -> None:
        """asyncio.sleep on this clock: moves it forwards by `seconds` at
        once (a limit with wait= on an attached limiter naps this way, so a
        test of a waiting route takes no real time)."""
        self.advance(max(0.0, seconds))
        await asyncio.sleep(0)

    async def wait(self, seconds: float) -> None:
        """Waits until the clock has moved `seconds` on, without moving it:
        for what runs beside a test rather than for it (a concurrency
        limit's heartbeat), which then runs as the test moves time and
        never moves it on its own."""
        target = self._ms + max(0, round(seconds * 1000))
        if target <= self._ms:
            await asyncio.sleep(0)
            return
        woken: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        entry = (target, woken)
        self._waiting.append(entry)
        try:
            await woken
        finally:
            if entry in self._waiting:
                self._waiting.remove(entry)

    def _wake(self) -> None:
        due = [e for e in self._waiting if e[0] <= self._ms]
        for entry in due:
            self._waiting.remove(entry)
            woken = entry[1]
            if not woken.done():
                woken.get_loop().call_soon_threadsafe(_resolve, woken)

    def advance(self, seconds: float = 0, *, ms: int = 0) -> FakeClock:
        """Moves the clock forwards by `seconds` plus `ms`."""
        step = round(seconds * 1000) + ms
        if step < 0:
            raise ValueError("a FakeClock moves forwards only (the module never goes back)")
        self._ms += step
        self._wake()
        return self

    def set(self, when: float | datetime) -> FakeClock:
        """Moves the clock to `when` (Unix seconds, or an aware datetime),
        never backwards."""
        if isinstance(when, datetime):
            if when.tzinfo is None:
                raise ValueError("a naive datetime is ambiguous: give it a tzinfo")
            when = when.timestamp()
        if isinstance(when, bool) or not isinstance(when, (int, float)) or when < 0:
            raise ValueError(f"start must be Unix seconds or an aware datetime, not {when!r}")
        ms = round(when * 1000)
        if ms < self._ms:
            raise ValueError("a FakeClock moves forwards only (the module never goes back)")
        self._ms = ms
        self._wake()
        return self

    def attach(self, *limiters: Any) -> FakeClock:
        """limiter.use_clock(self) for each (a FastAPI Limiter, a
        RateLimiter, an AsyncRateLimiter); detach() undoes it."""
        for limiter in limiters:
            limiter.use_clock(self)
            self._attached.append(limiter)
        return self

    def detach(self) -> None:
        """Puts every limiter attached back on the server's clock."""
        while self._attached:
            self._attached.pop().use_clock(None)

    def __repr__(self) -> str:
        return f"FakeClock({self.utc().isoformat()})"


def _resolve(woken: asyncio.Future[None]) -> None:
    if not woken.done():  # cancelled meanwhile
        woken.set_result(None)


__all__ = ["TIMED", "Clock", "FakeClock", "with_at"]

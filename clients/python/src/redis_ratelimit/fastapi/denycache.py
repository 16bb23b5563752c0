"""The deny cache: identities Redis has denied, answered 429 locally until
their retry_after has passed."""

from __future__ import annotations

import heapq
import logging
import time
from collections import OrderedDict
from collections.abc import Callable
from typing import Any

from .headers import (
    Outcome,
)

log = logging.getLogger("redis_ratelimit")


class DenyCache:
    """Identities Redis has denied, until their retry_after has passed;
    at most `size` of them (the oldest entries go first).

    Each entry counts the requests it answered: what RL.TOP cannot see,
    since they never reach Redis (`top()`, the dashboard)."""

    def __init__(self, size: int = 10_000, clock: Callable[[], float] = time.monotonic) -> None:
        self.size = size
        self._clock = clock
        # key -> [deadline, outcome, hits]
        self._entries: OrderedDict[str, list[Any]] = OrderedDict()
        self.hits = 0

    def __len__(self) -> int:
        return len(self._entries)

    def get(self, key: str) -> tuple[float, Outcome] | None:
        """(seconds left, the outcome Redis gave) while the key is denied."""
        entry = self._entries.get(key)
        if entry is None:
            return None
        left = entry[0] - self._clock()
        if left <= 0:
            del self._entries[key]
            return None
        self.hits += 1
        entry[2] += 1
        return left, entry[1]

    def put(self, key: str, outcome: Outcome) -> None:
        ms = outcome.decision.retry_after_ms
        if self.size <= 0 or ms <= 0:  # never (-1) is not cached: a smaller cost may pass
            return
        was = self._entries.get(key)
        self._entries[key] = [self._clock() + ms / 1000, outcome, 0 if was is None else was[2]]
        self._entries.move_to_end(key)
        while len(self._entries) > self.size:
            self._entries.popitem(last=False)

    def top(self, n: int) -> list[tuple[str, int, float]]:
        """The `n` entries that answered most requests, most first: (key,
        requests answered, seconds left). Expired entries are left out."""
        now = self._clock()
        live = ((k, e[2], e[0] - now) for k, e in self._entries.items() if e[0] > now and e[2])
        return heapq.nlargest(n, live, key=lambda t: t[1])

    def use_clock(self, clock: Callable[[], float]) -> None:
        """Counts on another clock from now on (a test's FakeClock); the
        entries timed on the old one go."""
        self._clock = clock
        self._entries.clear()

    def discard(self, key: str) -> None:
        self._entries.pop(key, None)

    def clear(self) -> None:
        self._entries.clear()

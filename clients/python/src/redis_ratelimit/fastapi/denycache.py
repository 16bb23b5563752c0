"""The deny cache: identities Redis has denied, answered 429 locally until
their retry_after has passed."""

from __future__ import annotations

import logging
import time
from collections import OrderedDict
from collections.abc import Callable

from .headers import (
    Outcome,
)

log = logging.getLogger("redis_ratelimit")


class DenyCache:
    """Identities Redis has denied, until their retry_after has passed;
    at most `size` of them (the oldest entries go first)."""

    def __init__(self, size: int = 10_000, clock: Callable[[], float] = time.monotonic) -> None:
        self.size = size
        self._clock = clock
        self._entries: OrderedDict[str, tuple[float, Outcome]] = OrderedDict()
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
        return left, entry[1]

    def put(self, key: str, outcome: Outcome) -> None:
        ms = outcome.decision.retry_after_ms
        if self.size <= 0 or ms <= 0:  # never (-1) is not cached: a smaller cost may pass
            return
        self._entries[key] = (self._clock() + ms / 1000, outcome)
        self._entries.move_to_end(key)
        while len(self._entries) > self.size:
            self._entries.popitem(last=False)

    def use_clock(self, clock: Callable[[], float]) -> None:
        """Counts on another clock from now on (a test's FakeClock); the
        entries timed on the old one go."""
        self._clock = clock
        self._entries.clear()

    def discard(self, key: str) -> None:
        self._entries.pop(key, None)

    def clear(self) -> None:
        self._entries.clear()

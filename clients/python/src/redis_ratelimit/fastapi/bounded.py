"""The one bounded cache of the integration's own memos (key names and
commands per caller, plans per dynamic choice, header parts per quota).

A dict (lookups are dict.get itself: nothing added on the hot path) that
starts over when full: no bookkeeping per hit, as an LRU would need, and
a memo forgotten only costs building it again. The deny cache is not one:
what it holds saves Redis calls under attack, so it drops its oldest
entries one at a time (DenyCache)."""

from __future__ import annotations

from typing import TypeVar

K = TypeVar("K")
V = TypeVar("V")


class Bounded(dict[K, V]):
    """At most `size` entries: put() past that empties it first."""

    __slots__ = ("size",)

    def __init__(self, size: int) -> None:
        super().__init__()
        self.size = size

    def put(self, key: K, value: V) -> V:
        """Keeps value under key (emptying the cache first when full);
        returns it."""
        if len(self) >= self.size:
            self.clear()
        self[key] = value
        return value

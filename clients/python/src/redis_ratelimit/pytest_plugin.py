"""The package's pytest plugin (entry point pytest11): the `ratelimit_clock`
fixture, a FakeClock whose limiters go back to the server's clock after
the test. Loaded by pytest whenever redis-ratelimit is installed; it
imports nothing but redis_ratelimit.testing."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from .testing import FakeClock


@pytest.fixture
def ratelimit_clock() -> Iterator[FakeClock]:
    """A FakeClock at the current time: `ratelimit_clock.attach(limiter)`
    makes the limiter's calls decide at its time; `.advance(61)` moves it."""
    clock = FakeClock()
    try:
        yield clock
    finally:
        clock.detach()

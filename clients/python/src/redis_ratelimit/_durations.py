"""Durations and rate strings, turned into the module's arguments."""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from datetime import timedelta
from typing import TypeAlias

Duration: TypeAlias = int | float | timedelta | str
"""Seconds (int or float), a timedelta, or one of the module's own duration
strings ("500ms", "1m", "2h", and whatever units the module accepts, passed
through unchanged)."""

MAX_AMOUNT = 10**15  # the module's largest limit or cost
_MODULE_STRING = re.compile(r"^[0-9]+[A-Za-z]*$")
_UNITS_US = (("d", 86_400_000_000), ("h", 3_600_000_000), ("m", 60_000_000),
             ("s", 1_000_000), ("ms", 1_000), ("us", 1))  # fmt: skip


def _largest_unit(us: int) -> str:
    for unit, size in _UNITS_US:
        if us % size == 0:
            return f"{us // size}{unit}"
    raise AssertionError("unreachable: every count of microseconds is exact in us")


def duration_arg(value: Duration, what: str = "duration") -> str:
    """The module's argument for a duration: whole seconds as "Ns", other
    times in their largest exact unit down to the microsecond ("1500ms",
    "250us"), strings as given (the module checks them and answers an error
    naming the argument).

    Raises ValueError for a negative, zero, non-finite or sub-microsecond
    figure, or a string that is not a number with an optional unit."""
    if isinstance(value, bool):
        raise TypeError(f"{what} must be seconds, a timedelta or a string, not a bool")
    if isinstance(value, str):
        text = value.strip()
        if not _MODULE_STRING.match(text):
            raise ValueError(
                f"bad {what} {value!r}: expected a number with an optional unit, "
                "e.g. '500ms', '30s', '1m', '1h', '1d'"
            )
        return text
    if isinstance(value, timedelta):
        us = value // timedelta(microseconds=1)
    elif isinstance(value, int):
        us = value * 1_000_000
    elif isinstance(value, float):
        if not math.isfinite(value):
            raise ValueError(f"bad {what} {value!r}: must be finite")
        us = round(value * 1_000_000)
        if us == 0 and value > 0:
            raise ValueError(f"bad {what} {value!r}: less than a microsecond")
    else:
        raise TypeError(
            f"{what} must be seconds (int or float), a timedelta or a string, "
            f"not {type(value).__name__}"
        )
    if us <= 0:
        raise ValueError(f"bad {what} {value!r}: must be positive")
    return _largest_unit(us)


def duration_seconds(value: Duration) -> float | None:
    """The length of a duration in seconds, or None for a string this client
    does not know (a calendar unit such as "1mo": the module knows it)."""
    if isinstance(value, timedelta):
        return value.total_seconds()
    if isinstance(value, bool):
        return None
    if isinstance(value, (int, float)):
        return float(value)
    m = re.fullmatch(r"([0-9]+)(us|ms|s|m|h|d)?", value.strip())
    if not m:
        return None
    factor = {"us": 1e-6, "ms": 1e-3, "s": 1, "m": 60, "h": 3600, "d": 86400}[m[2] or "s"]
    return int(m[1]) * factor


def check_amount(value: int, what: str, *, zero: bool = False) -> int:
    """An integer the module accepts as a limit or cost (0 only if `zero`)."""
    if isinstance(value, bool) or not isinstance(value, int):
        raise TypeError(f"{what} must be an integer, not {type(value).__name__}")
    low = 0 if zero else 1
    if not low <= value <= MAX_AMOUNT:
        raise ValueError(f"{what} must be from {low} to 10^15, not {value}")
    return value


# ---------------------------------------------------------------- rate strings

_PERIODS = {
    "second": 1, "seconds": 1, "sec": 1, "secs": 1, "s": 1,
    "minute": 60, "minutes": 60, "min": 60, "mins": 60, "m": 60,
    "hour": 3600, "hours": 3600, "hr": 3600, "hrs": 3600, "h": 3600,
    "day": 86400, "days": 86400, "d": 86400,
}  # fmt: skip
_PERIOD_NAMES = {1: "second", 60: "minute", 3600: "hour", 86400: "day"}
_RATE = re.compile(
    r"^\s*(\d{1,16})\s*(?:/|\s+per\s+)\s*(\d{1,9})?\s*([A-Za-z]+)\s*$", re.IGNORECASE
)


@dataclass(frozen=True)
class Rate:
    """`amount` units per `seconds`; `name` labels it in headers and keys."""

    amount: int
    seconds: int
    name: str


def parse_rates(text: str) -> list[Rate]:
    """Parses "5/minute", "10 per hour", "100/2 days", or several joined by
    ';' ("100/minute;5000/day"). Raises ValueError saying what is wrong."""
    if not isinstance(text, str) or not text.strip():
        raise ValueError("empty rate string: expected e.g. '5/minute'")
    rates: list[Rate] = []
    for part in text.split(";"):
        m = _RATE.match(part)
        if not m:
            raise ValueError(
                f"bad rate {part.strip()!r}: expected '<count>/<period>' or "
                "'<count> per <period>', e.g. '5/minute', '10 per hour', '100/2 days'"
            )
        amount, count, unit = int(m[1]), int(m[2] or 1), m[3].lower()
        if unit not in _PERIODS:
            raise ValueError(
                f"bad rate {part.strip()!r}: unknown period {m[3]!r} "
                "(use second, minute, hour or day)"
            )
        if not 1 <= amount <= MAX_AMOUNT:
            raise ValueError(f"bad rate {part.strip()!r}: count must be 1 to 10^15")
        if count < 1:
            raise ValueError(f"bad rate {part.strip()!r}: period count must be at least 1")
        seconds = count * _PERIODS[unit]
        base = _PERIOD_NAMES[_PERIODS[unit]]
        name = base if count == 1 else f"{count}{base}"
        if any(r.seconds == seconds for r in rates):
            raise ValueError(f"bad rate {text.strip()!r}: two limits over the same period")
        rates.append(Rate(amount, seconds, name))
    return rates

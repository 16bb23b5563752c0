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
# The module's duration units (src/algo/units.rs, DURATION_UNITS), largest
# first, with their length in microseconds: this client's one table of them.
# A number without a unit is in seconds. (Calendar months, "1mo", have no
# fixed length: policies/calendar.py reads them.)
UNITS_US = (("d", 86_400_000_000), ("h", 3_600_000_000), ("m", 60_000_000),
            ("s", 1_000_000), ("ms", 1_000), ("us", 1))  # fmt: skip
_UNIT_US = dict(UNITS_US)
# A number and one of those units, spelled as the module spells them (lower
# case); the longer units first, so that "5ms" is read as ms, not m.
_UNIT_CHOICES = "|".join(sorted(_UNIT_US, key=len, reverse=True))
_DURATION = re.compile(rf"([0-9]+)({_UNIT_CHOICES})?")


def _largest_unit(us: int) -> str:
    for unit, size in UNITS_US:
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
    us = duration_us(value)
    return None if us is None else us / 1_000_000


def duration_us(text: str) -> int | None:
    """The length in microseconds of a duration string in one of UNITS_US
    ("90s", "250ms", "2h"; a bare number is seconds), or None for any other
    string (a calendar unit such as "1mo", a unit the module does not know)."""
    m = _DURATION.fullmatch(text.strip())
    return None if m is None else int(m[1]) * _UNIT_US[m[2] or "s"]


def check_amount(value: int, what: str, *, zero: bool = False) -> int:
    """An integer the module accepts as a limit or cost (0 only if `zero`)."""
    if isinstance(value, bool) or not isinstance(value, int):
        raise TypeError(f"{what} must be an integer, not {type(value).__name__}")
    low = 0 if zero else 1
    if not low <= value <= MAX_AMOUNT:
        raise ValueError(f"{what} must be from {low} to 10^15, not {value}")
    return value


# ---------------------------------------------------------------- rate strings

# A rate's period words, each one of UNITS_US; the first of each is its name.
_PERIOD_WORDS = {
    "s": ("second", "seconds", "sec", "secs", "s"),
    "m": ("minute", "minutes", "min", "mins", "m"),
    "h": ("hour", "hours", "hr", "hrs", "h"),
    "d": ("day", "days", "d"),
}
_PERIODS = {w: _UNIT_US[u] // 1_000_000 for u, words in _PERIOD_WORDS.items() for w in words}
_PERIOD_NAMES = {_UNIT_US[u] // 1_000_000: words[0] for u, words in _PERIOD_WORDS.items()}
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

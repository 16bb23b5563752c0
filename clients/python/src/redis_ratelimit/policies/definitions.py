"""Policies' definitions: a policy as the app defines it (PolicySpec), the
Limit of a rate string (rate_limit()), and a definition normalized for
comparing the app's with the server's (PolicyDef)."""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from .._core import BY_COMMAND, Fixed, Limit, find_algorithm
from .._durations import MAX_AMOUNT, Duration, duration_arg, duration_us, parse_rates
from .calendar import MONTH_RATE, MONTHS, calendar_window, format_offset, parse_offset

POLICY_NAME = re.compile(r"^[A-Za-z0-9_.:-]{1,64}$")  # the module's rule


def _text(value: Any) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


def _duration_us(text: str) -> int:
    us = duration_us(text.lower())  # "5MS" too, as this has always read it
    if us is None:
        raise ValueError(f"unreadable duration {text!r}")
    return us


@dataclass(frozen=True)
class PolicyDef:
    """A policy's definition, normalized so that two spellings of one limit
    compare equal ("60s" and "1m"): from RL.POLICY GET's reply, or from the
    arguments of RL.POLICY SET (PolicySpec.definition)."""

    algorithm: str  # FIXED, SLIDING, LOG, TOKEN, LEAKY, GCRA
    numbers: tuple[int, ...]  # the integer parameters, in order
    window_us: int  # the window or refill period; 0 for calendar months
    penalty_us: int | None = None
    shadow: bool = False
    options: tuple[str, ...] = ()  # anything else, kept verbatim
    months: int = 0  # a window of calendar months ("1mo")
    align: bool = False  # windows on the clock's grid (ALIGN)
    offset_minutes: int = 0  # the grid's UTC offset (OFFSET)

    @classmethod
    def parse(cls, args: Sequence[Any]) -> PolicyDef:
        words = [_text(a) for a in args]
        algo = words[0].upper() if words else ""
        known = BY_COMMAND.get(algo)
        n = len(known.params) if known else 0
        if not n or len(words) < 1 + n:
            raise ValueError(f"unreadable policy definition {' '.join(words)!r}")
        numbers = tuple(int(w) for w in words[1:n])
        in_months = MONTHS.match(words[n].strip())
        months = int(in_months[1]) if in_months else 0
        window_us = 0 if months else _duration_us(words[n])
        penalty_us, shadow, align, offset, rest = None, False, bool(months), 0, []
        i = 1 + n
        while i < len(words):
            word = words[i].upper()
            if word in ("PENALTY", "OFFSET") and i + 1 < len(words):
                if word == "PENALTY":
                    penalty_us = _duration_us(words[i + 1])
                else:
                    offset = parse_offset(words[i + 1])
                i += 2
                continue
            if word == "SHADOW":
                shadow = True
            elif word == "ALIGN":
                align = True
            else:
                rest.append(words[i])
            i += 1
        return cls(algo, numbers, window_us, penalty_us, shadow, tuple(rest), months, align, offset)

    @property
    def capacity(self) -> int:
        """What the module answers as `limit` under this definition."""
        known = BY_COMMAND.get(self.algorithm)
        return known.answered_limit(self.numbers[0]) if known else self.numbers[0]

    def window_s(self, now: datetime | None = None) -> int:
        """RateLimit-Policy's w, whole seconds (rounded up). Calendar months
        have no fixed length: the length of the window holding `now`
        (default: the clock), 31 days in January."""
        if self.months:
            start, end = calendar_window(self.months, self.offset_minutes, now)
            return int((end - start).total_seconds())
        return max(1, -(-self.window_us // 1_000_000))

    def describe(self) -> str:
        window = f"{self.months}mo" if self.months else f"{self.window_us}us"
        parts = [self.algorithm, *map(str, self.numbers), window]
        if self.align and not self.months:
            parts.append("ALIGN")
        if self.offset_minutes:
            parts += ["OFFSET", format_offset(self.offset_minutes)]
        if self.penalty_us is not None:
            parts += ["PENALTY", f"{self.penalty_us}us"]
        if self.shadow:
            parts.append("SHADOW")
        return " ".join([*parts, *self.options])


def rate_limit(
    rate: str,
    algorithm: str = "sliding",
    *,
    burst: int | None = None,
    align: bool = False,
    offset: str | None = None,
) -> Limit:
    """The Limit for one rate string: "100/minute" with `algorithm` (the
    rate is a window's limit, or a bucket's refill rate with `burst` its
    capacity, default the rate), or "300000/month" ("5 per 3 months"): a
    fixed window of calendar months, aligned on the 1st (algorithm
    "fixed"). `align` and `offset` put fixed windows on the clock's grid.
    Raises ValueError saying what is wrong."""
    found = find_algorithm(str(algorithm).lower(), algorithm)
    algo = found.name
    if (align or offset is not None) and algo != "fixed":
        raise ValueError("align and offset are for algorithm 'fixed'")
    if offset is not None:
        offset = format_offset(parse_offset(offset))
        if offset == "+00:00":
            offset = None  # UTC: the module's default
    if burst is not None and (
        isinstance(burst, bool) or not isinstance(burst, int) or not 1 <= burst <= MAX_AMOUNT
    ):
        raise ValueError(f"burst must be an integer from 1 to 10^15, not {burst!r}")
    m = MONTH_RATE.match(rate) if isinstance(rate, str) else None
    if m:
        amount, months = int(m[1]), int(m[2] or 1)
        if not 1 <= amount <= MAX_AMOUNT or months < 1:
            raise ValueError(f"bad rate {rate!r}")
        if algo != "fixed":
            raise ValueError(f"bad rate {rate!r}: a window of months needs algorithm 'fixed'")
        return Fixed(amount, f"{months}mo", align=True, offset=offset)
    rates = parse_rates(rate)
    if len(rates) != 1:
        raise ValueError(f"one rate, not {rate!r}")
    (r,) = rates
    window = duration_arg(r.seconds)
    if align:  # on the clock's grid: fixed windows only (checked above)
        return Fixed(r.amount, window, align=True, offset=offset)
    return found.of_rate(r.amount, window, burst)


@dataclass(frozen=True)
class PolicySpec:
    """One policy as the app defines it.

    name       1 to 64 of A-Z a-z 0-9 _ . : - (before Policies' prefix); the
               label in headers and the last part of keys
    rate       one rate, "1000/minute" (see rate_limit(); "/month": calendar
               months, fixed windows aligned on the 1st)
    algorithm  fixed | sliding | log | token | leaky | gcra
    burst      bucket algorithms: capacity (default: the rate)
    penalty    a request the policy denies blocks its key that long
    align      fixed windows on the clock's grid; `offset` its UTC offset
    shadow     decide and count, never deny
    """

    name: str
    rate: str
    algorithm: str = "sliding"
    burst: int | None = None
    penalty: Duration | None = None
    align: bool = False
    offset: str | None = None
    shadow: bool = False

    def __post_init__(self) -> None:
        if not isinstance(self.name, str) or not POLICY_NAME.match(self.name):
            raise ValueError(
                f"policy name must be 1 to 64 of A-Z a-z 0-9 _ . : -, not {self.name!r}"
            )
        try:
            self.args()
        except ValueError as e:
            raise ValueError(f"policy {self.name!r}: {e}") from None

    def limit(self) -> Limit:
        return rate_limit(self.rate, self.algorithm, burst=self.burst, align=self.align,
                          offset=self.offset)  # fmt: skip

    def args(self) -> list[Any]:
        """RL.POLICY SET's arguments after the name."""
        args: list[Any] = self.limit().args()
        if self.penalty is not None:
            args += ["PENALTY", duration_arg(self.penalty, "penalty")]
        if self.shadow:
            args.append("SHADOW")
        return args

    @property
    def definition(self) -> PolicyDef:
        return PolicyDef.parse(self.args())


__all__ = ["POLICY_NAME", "PolicyDef", "PolicySpec", "rate_limit"]

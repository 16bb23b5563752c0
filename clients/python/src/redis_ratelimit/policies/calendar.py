"""Calendar windows as the module aligns them: UTC offsets ("+05:30"),
windows of calendar months ("1mo", "300000/month") and where one starts
and ends."""

from __future__ import annotations

import re
from datetime import UTC, date, datetime, timedelta, timezone

MONTHS = re.compile(r"^(\d{1,6})mo$", re.IGNORECASE)  # a window of months: "3mo"
MONTH_RATE = re.compile(
    r"^\s*(\d{1,16})\s*(?:/|\s+per\s+)\s*(\d{1,4})?\s*(months?|mo)\s*$", re.IGNORECASE
)  # a rate per calendar months: "300000/month", "5 per 3 months"
_OFFSET = re.compile(r"^([+-])([01]\d|2[0-3]):([0-5]\d)$")


def parse_offset(text: str) -> int:
    """A UTC offset as the module takes it ("+05:30", "-08:00", "Z") in
    minutes east of UTC. Raises ValueError."""
    if not isinstance(text, str):
        raise ValueError(f"bad offset {text!r}: expected +hh:mm or -hh:mm")
    if text.strip() in ("Z", "z"):
        return 0
    m = _OFFSET.match(text.strip())
    if not m:
        raise ValueError(f"bad offset {text!r}: expected +hh:mm or -hh:mm, e.g. '+02:00'")
    minutes = int(m[2]) * 60 + int(m[3])
    return -minutes if m[1] == "-" else minutes


def format_offset(minutes: int) -> str:
    sign = "-" if minutes < 0 else "+"
    return f"{sign}{abs(minutes) // 60:02d}:{abs(minutes) % 60:02d}"


def calendar_window(
    months: int, offset_minutes: int = 0, now: datetime | None = None
) -> tuple[datetime, datetime]:
    """The window of `months` calendar months holding `now` (default: the
    clock), as the module aligns them: from the 1st of every `months`-th
    month since January 1970, at midnight at the UTC offset. Its start and
    end, as aware datetimes at that offset."""
    tz = timezone(timedelta(minutes=offset_minutes))
    local = (now or datetime.now(UTC)).astimezone(tz)
    index = (local.year - 1970) * 12 + local.month - 1
    first = index - index % months
    start = date(1970 + first // 12, first % 12 + 1, 1)
    end = date(1970 + (first + months) // 12, (first + months) % 12 + 1, 1)
    return (datetime(start.year, start.month, 1, tzinfo=tz),
            datetime(end.year, end.month, 1, tzinfo=tz))  # fmt: skip


__all__ = ["MONTHS", "MONTH_RATE", "calendar_window", "format_offset", "parse_offset"]

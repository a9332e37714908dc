"""ZStack's wire form of dates: ``"Oct 17, 2024 5:43:35 AM"`` (Java's default medium format).

ZStack's SDKs parse dates with that format (or ISO-8601); other forms make them throw, so every
date vmexec sends goes through :func:`format_date`.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime

_MONTHS = ("Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec")

#: ZStack's own form, read without strptime so the month names do not follow the locale.
_ZSTACK_FORM = re.compile(
    r"^([A-Za-z]{3})[a-z]*\.? (\d{1,2}), (\d{4}) (\d{1,2}):(\d{2}):(\d{2}) ?([AaPp][Mm])$")

def format_date(value: datetime) -> str:
    """``value`` in the server's local time, as ZStack writes it (no zero padding, 12-hour clock).

    Naive datetimes are taken as UTC (that is how vmexec stores them).
    """
    if value.tzinfo is None:
        value = value.replace(tzinfo=UTC)
    local = value.astimezone()
    hour = local.hour % 12 or 12
    half = "AM" if local.hour < 12 else "PM"
    # Built by hand rather than with strftime("%b"): the month name must not follow the locale.
    return (f"{_MONTHS[local.month - 1]} {local.day}, {local.year} "
            f"{hour}:{local.minute:02d}:{local.second:02d} {half}")


def parse_date(text: str) -> datetime:
    """Parse a client-given date: ZStack's format, ISO-8601, or ``YYYY-MM-DD[ HH:MM:SS]``.

    Dates without a zone are in the server's local time, as ZStack reads them. Returns an aware
    datetime.

    Raises:
        ValueError: ``text`` is none of those forms.
    """
    text = text.strip()
    match = _ZSTACK_FORM.match(text)
    try:
        if match:
            parsed = _from_zstack_form(match)
        else:
            # fromisoformat also takes "YYYY-MM-DD HH:MM:SS" and "YYYY-MM-DD" (Python 3.11+).
            parsed = datetime.fromisoformat(text)
    except ValueError:
        raise ValueError(
            f"not a date: {text!r} (use e.g. 'Oct 17, 2024 5:43:35 AM' or ISO-8601)") from None
    if parsed.tzinfo is None:
        parsed = parsed.astimezone()
    return parsed


def _from_zstack_form(match: re.Match[str]) -> datetime:
    month_name, day, year, hour, minute, second, half = match.groups()
    month_name = month_name.capitalize()
    if month_name not in _MONTHS:
        raise ValueError(month_name)
    hour12 = int(hour)
    if not 1 <= hour12 <= 12:
        raise ValueError(hour)
    hour24 = hour12 % 12 + (12 if half.upper() == "PM" else 0)
    return datetime(int(year), _MONTHS.index(month_name) + 1, int(day), hour24, int(minute),
                    int(second))

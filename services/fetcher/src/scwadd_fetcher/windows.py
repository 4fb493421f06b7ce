"""Which time ranges to ask the custodian for.

The history is one contiguous period, ``[start, end)`` in epoch seconds, from midnight UTC
``history_days`` days ago to the coming midnight UTC, so today is included and the first day is
whole in every US time zone's local calendar too (they are all behind UTC, so a local day that
starts ``history_days`` days ago starts after the UTC midnight we begin at).

The period is requested in as few windows as the custodian allows. Windows share their
boundaries (one ends where the next begins), so nothing between them can be missed; a reading
that sits exactly on a boundary may come twice, which the ESPI engine de-duplicates.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

DAY = 86_400


@dataclass(frozen=True, order=True)
class Window:
    """``published-min`` and ``published-max`` of one request, epoch seconds."""

    start: int
    end: int

    @property
    def seconds(self) -> int:
        return self.end - self.start


def history_period(history_days: int, now: datetime | None = None) -> Window:
    """The whole period to fetch: ``history_days`` full UTC days before today, plus today."""
    if history_days < 1:
        raise ValueError("history_days must be at least 1")
    moment = now if now is not None else datetime.now(UTC)
    today = moment.astimezone(UTC).replace(hour=0, minute=0, second=0, microsecond=0)
    end = today + timedelta(days=1)
    start = today - timedelta(days=history_days)
    return Window(int(start.timestamp()), int(end.timestamp()))


def split(period: Window, max_seconds: int | None) -> list[Window]:
    """``period`` cut into contiguous windows no longer than ``max_seconds`` (None: no limit)."""
    if max_seconds is None or period.seconds <= max_seconds:
        return [period]
    if max_seconds < 1:
        raise ValueError("max_seconds must be positive")
    windows = []
    start = period.start
    while start < period.end:
        end = min(start + max_seconds, period.end)
        windows.append(Window(start, end))
        start = end
    return windows


_RANGE_IN_MESSAGE = re.compile(
    r"(\d+(?:\.\d+)?)\s*(second|sec|s\b|minute|min|hour|h\b|day|d\b|week|month|year)",
    re.IGNORECASE,
)
_UNIT_SECONDS = {
    "s": 1,
    "sec": 1,
    "second": 1,
    "min": 60,
    "minute": 60,
    "h": 3600,
    "hour": 3600,
    "d": DAY,
    "day": DAY,
    "week": 7 * DAY,
    "month": 28 * DAY,  # the shortest month: a window must never exceed the limit
    "year": 365 * DAY,
}
_RANGE_WORDS = re.compile(r"range|window|period|exceed|too (?:long|large|wide)|maximum", re.I)


def max_range_from_message(message: str) -> int | None:
    """The maximum range in seconds a custodian's 400 message states, if it states one.

    PG&E does not document a maximum; custodians that enforce one say so in the error text
    (e.g. "requested range exceeds the maximum of 90 days"). Only a message that talks about a
    range is read, so an unrelated 400 never shrinks the windows.
    """
    if not _RANGE_WORDS.search(message):
        return None
    match = _RANGE_IN_MESSAGE.search(message)
    if match is None:
        return None
    unit = match.group(2).lower()
    seconds = float(match.group(1)) * _UNIT_SECONDS[unit]
    return int(seconds) if seconds >= 1 else None


def is_range_refusal(message: str) -> bool:
    """The custodian refused the request because the time range is too long."""
    return bool(_RANGE_WORDS.search(message)) and bool(
        re.search(r"range|published|window|period", message, re.IGNORECASE)
    )

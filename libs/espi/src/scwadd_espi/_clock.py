"""The local-time clock: cached time labels for one zone, for the CSV layouts."""

from __future__ import annotations

from datetime import UTC, datetime, tzinfo


class Clock:
    """Time labels for one zone, cached: formatting ~1M timestamps through ``datetime`` and a
    Python ``tzinfo`` would dominate a conversion.

    Offsets are cached per UTC day, and per 15-minute slot on the days the offset changes (UTC
    offsets change only on such boundaries); date texts per day. The caches are bounded by the
    period covered, not by the file size.
    """

    def __init__(self, zone: tzinfo) -> None:
        self.zone = zone
        self._days: dict[int, int] = {}
        self._midnights: dict[int, int] = {}
        self._offsets: dict[int, int] = {}
        self._dates: dict[int, str] = {}
        self._offset_texts: dict[int, str] = {}

    def offset(self, epoch: int) -> int:
        day = epoch // 86400
        steady = self._days.get(day)
        if steady is None:
            at_start, at_next = self._midnight(day), self._midnight(day + 1)
            # A zone changes offset at most once a day: the same offset at this UTC midnight and
            # the next means one offset all day (each midnight is looked up once, for two days).
            steady = at_start if at_start == at_next else _CHANGES_TODAY
            self._days[day] = steady
        if steady != _CHANGES_TODAY:
            return steady
        slot = epoch // 900
        found = self._offsets.get(slot)
        if found is None:
            found = self._exact(slot * 900)
            self._offsets[slot] = found
        return found

    def _midnight(self, day: int) -> int:
        offset = self._midnights.get(day)
        if offset is None:
            offset = self._midnights[day] = self._exact(day * 86400)
        return offset

    def _exact(self, epoch: int) -> int:
        delta = datetime.fromtimestamp(epoch, self.zone).utcoffset()
        return int(delta.total_seconds()) if delta is not None else 0

    def date_text(self, day: int) -> str:
        """The ISO date of a day counted from 1970-01-01 (cached)."""
        return self._date(day)

    def _date(self, day: int) -> str:
        text = self._dates.get(day)
        if text is None:
            text = _EPOCH_DATE.fromordinal(_EPOCH_ORDINAL + day).isoformat()
            self._dates[day] = text
        return text

    def offset_text(self, offset: int) -> str:
        text = self._offset_texts.get(offset)
        if text is None:
            sign = "+" if offset >= 0 else "-"
            hours, rest = divmod(abs(offset), 3600)
            text = f"{sign}{hours:02d}:{rest // 60:02d}"
            self._offset_texts[offset] = text
        return text

    def wall(self, epoch: int) -> tuple[str, int, int, int, int]:
        """Local date text, hour, minute, second and the UTC offset in seconds."""
        offset = self.offset(epoch)
        day, second_of_day = divmod(epoch + offset, 86400)
        hour, rest = divmod(second_of_day, 3600)
        return self._date(day), hour, rest // 60, rest % 60, offset

    def local_iso(self, epoch: int) -> str:
        date_text, hour, minute, second, offset = self.wall(epoch)
        return f"{date_text}T{hour:02d}:{minute:02d}:{second:02d}{self.offset_text(offset)}"

    def utc_iso(self, epoch: int) -> str:
        day, second_of_day = divmod(epoch, 86400)
        hour, rest = divmod(second_of_day, 3600)
        return f"{self._date(day)}T{hour:02d}:{rest // 60:02d}:{rest % 60:02d}Z"

    def repeated(self, epoch: int) -> bool:
        """True when this wall-clock time also labels another instant (a fall-back hour)."""
        wall = epoch + self.offset(epoch)
        for probe in (epoch - 7200, epoch + 7200):
            other_offset = self.offset(probe)
            other = wall - other_offset
            if other != epoch and self.offset(other) == other_offset:
                return True
        return False


_CHANGES_TODAY = -(10**9)  # no real UTC offset
_EPOCH_DATE = datetime(1970, 1, 1).date()
_EPOCH_ORDINAL = _EPOCH_DATE.toordinal()
UTC_CLOCK = Clock(UTC)


def utc_text(epoch: int) -> str:
    return UTC_CLOCK.utc_iso(epoch)


def local_interval_label(epoch: int, zone: tzinfo) -> str:
    """ISO 8601 local time with its UTC offset (what the default layout writes)."""
    return Clock(zone).local_iso(epoch)

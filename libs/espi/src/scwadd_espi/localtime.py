"""ESPI LocalTimeParameters: the DST rule bitfields and a :class:`datetime.tzinfo` built from them.

A DST rule is a 32-bit value, written as 8 hex digits in the XML (``360E2000``):

===========  ===================================================================
bits 0-11    seconds after the hour (0-3599)
bits 12-16   hour (0-23), local wall-clock time in effect *before* the change
bits 17-19   day of week (1 Monday ... 7 Sunday, 0 not used)
bits 20-24   day of month (1-31, 0 not used)
bits 25-27   operator: 0 on the day of month; 1 on the first day-of-week on or after
             the day of month; 2-6 on the 1st-5th day-of-week of the month;
             7 on the last day-of-week of the month
bits 28-31   month (1-12)
===========  ===================================================================

So ``360E2000`` is the 2nd Sunday of March at 02:00 and ``B40E2000`` the 1st Sunday of November at
02:00 (US rules since 2007). :func:`espi_tzinfo` turns a :class:`LocalTimeParameters` into a
``tzinfo`` whose ``fromutc`` sets ``fold=1`` on the repeated hour of a fall-back day, so the two
01:xx readings stay distinguishable; :func:`tzinfo_for` prefers an IANA zone when one is given.
"""

from __future__ import annotations

import calendar
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta, tzinfo
from functools import lru_cache
from typing import TYPE_CHECKING

from scwadd_espi.model import LocalTimeParameters

if TYPE_CHECKING:
    # zoneinfo imports sysconfig (a tenth of a short conversion): imported only when a zone is
    # named, which most conversions (the document's LocalTimeParameters) never do.
    from zoneinfo import ZoneInfo

OP_DAY_OF_MONTH = 0
OP_WEEKDAY_ON_OR_AFTER = 1
OP_FIRST = 2  # 2..6: first..fifth weekday of the month
OP_LAST = 7


@dataclass(frozen=True, slots=True)
class DstRule:
    month: int
    operator: int
    hour: int
    day_of_week: int = 0  # 1 Monday ... 7 Sunday
    day_of_month: int = 0
    seconds: int = 0

    def day_in(self, year: int) -> date:
        """The calendar day this rule fires on in ``year``."""
        if self.operator == OP_DAY_OF_MONTH:
            return date(year, self.month, self.day_of_month)
        wanted = self.day_of_week - 1  # Python: Monday is 0
        last_day = calendar.monthrange(year, self.month)[1]
        if self.operator == OP_WEEKDAY_ON_OR_AFTER:
            first = date(year, self.month, max(self.day_of_month, 1))
            return first + timedelta(days=(wanted - first.weekday()) % 7)
        if self.operator == OP_LAST:
            last = date(year, self.month, last_day)
            return last - timedelta(days=(last.weekday() - wanted) % 7)
        first = date(year, self.month, 1)
        first_match = first + timedelta(days=(wanted - first.weekday()) % 7)
        nth = first_match + timedelta(weeks=self.operator - OP_FIRST)
        if nth.month != self.month:  # "fifth Sunday" in a month that has four
            nth -= timedelta(weeks=1)
        return nth

    def wall_time_in(self, year: int) -> datetime:
        """Naive local wall-clock time of the change in ``year``."""
        day = self.day_in(year)
        return datetime(day.year, day.month, day.day) + timedelta(
            hours=self.hour, seconds=self.seconds
        )


def decode_dst_rule(value: int | str) -> DstRule:
    """Decode a rule from its integer or its hex text (``"360E2000"``)."""
    bits = int(value, 16) if isinstance(value, str) else value
    if not 0 <= bits <= 0xFFFFFFFF:
        raise ValueError(f"DST rule {value!r} is not a 32-bit value")
    rule = DstRule(
        month=(bits >> 28) & 0xF,
        operator=(bits >> 25) & 0x7,
        day_of_month=(bits >> 20) & 0x1F,
        day_of_week=(bits >> 17) & 0x7,
        hour=(bits >> 12) & 0x1F,
        seconds=bits & 0xFFF,
    )
    _check_rule(rule, value)
    return rule


def encode_dst_rule(rule: DstRule) -> int:
    _check_rule(rule, rule)
    return (
        (rule.month << 28)
        | (rule.operator << 25)
        | (rule.day_of_month << 20)
        | (rule.day_of_week << 17)
        | (rule.hour << 12)
        | rule.seconds
    )


def format_dst_rule(bits: int) -> str:
    """The 8 hex digits ESPI writes."""
    return f"{bits:08X}"


def _check_rule(rule: DstRule, shown: object) -> None:
    problems = []
    if not 1 <= rule.month <= 12:
        problems.append(f"month {rule.month}")
    if not 0 <= rule.hour <= 23:
        problems.append(f"hour {rule.hour}")
    if not 0 <= rule.seconds <= 3599:
        problems.append(f"seconds {rule.seconds}")
    by_day = rule.operator in (OP_DAY_OF_MONTH, OP_WEEKDAY_ON_OR_AFTER)
    if by_day and not 1 <= rule.day_of_month <= 31:
        problems.append(f"day of month {rule.day_of_month}")
    if rule.operator != OP_DAY_OF_MONTH and not 1 <= rule.day_of_week <= 7:
        problems.append(f"day of week {rule.day_of_week}")
    if problems:
        raise ValueError(f"DST rule {shown!r} is invalid: " + ", ".join(problems))


US_DST_START = 0x360E2000
US_DST_END = 0xB40E2000


class EspiTimeZone(tzinfo):
    """A fixed-rule zone: standard offset plus a DST offset between two yearly rules."""

    def __init__(self, params: LocalTimeParameters) -> None:
        self._std = timedelta(seconds=params.tz_offset)
        self._dst = timedelta(seconds=params.dst_offset)
        self._has_dst = params.dst_offset != 0 and params.dst_start_rule != 0
        self._start = decode_dst_rule(params.dst_start_rule) if self._has_dst else None
        self._end = decode_dst_rule(params.dst_end_rule) if self._has_dst else None
        self._params = params
        self._transitions: dict[int, tuple[datetime, datetime]] = {}

    def __repr__(self) -> str:
        return f"EspiTimeZone({self._params!r})"

    def __eq__(self, other: object) -> bool:
        return isinstance(other, EspiTimeZone) and other._params == self._params

    def __hash__(self) -> int:
        return hash(self._params)

    def _transitions_utc(self, year: int) -> tuple[datetime, datetime]:
        cached = self._transitions.get(year)
        if cached is not None:
            return cached
        assert self._start is not None and self._end is not None
        # The start rule is read on standard time, the end rule on daylight time (US convention).
        start = self._start.wall_time_in(year) - self._std
        end = self._end.wall_time_in(year) - self._std - self._dst
        pair = (start.replace(tzinfo=UTC), end.replace(tzinfo=UTC))
        self._transitions[year] = pair
        return pair

    def _is_dst_utc(self, moment: datetime) -> bool:
        if not self._has_dst:
            return False
        start, end = self._transitions_utc(moment.year)
        if start < end:
            return start <= moment < end
        return not end <= moment < start  # southern hemisphere: DST spans the new year

    def fromutc(self, dt: datetime) -> datetime:
        if dt.tzinfo is not self:
            raise ValueError("fromutc: dt.tzinfo is not self")
        utc = dt.replace(tzinfo=UTC)
        offset = self._std + (self._dst if self._is_dst_utc(utc) else timedelta(0))
        local = (utc + offset).replace(tzinfo=self)
        # On the repeated hour, the later (standard-time) instance is fold=1.
        if self._has_dst and not self._is_dst_utc(utc) and self._is_dst_utc(utc - self._dst):
            local = local.replace(fold=1)
        return local

    def utcoffset(self, dt: datetime | None) -> timedelta:
        if dt is None or not self._has_dst:
            return self._std
        naive = dt.replace(tzinfo=None)
        as_std = (naive - self._std).replace(tzinfo=UTC)
        as_dst = (naive - self._std - self._dst).replace(tzinfo=UTC)
        dst_fits = self._is_dst_utc(as_dst)
        std_fits = not self._is_dst_utc(as_std)
        if dst_fits and std_fits:  # repeated hour: fold chooses
            return self._std if dt.fold else self._std + self._dst
        if dst_fits:
            return self._std + self._dst
        if std_fits:
            return self._std
        # Skipped hour (spring forward): PEP 495 says use the offset before the change for fold=0.
        return self._std if not dt.fold else self._std + self._dst

    def dst(self, dt: datetime | None) -> timedelta:
        return self.utcoffset(dt) - self._std

    def tzname(self, dt: datetime | None) -> str:
        offset = self.utcoffset(dt)
        total = int(offset.total_seconds())
        sign = "+" if total >= 0 else "-"
        hours, rest = divmod(abs(total), 3600)
        return f"UTC{sign}{hours:02d}:{rest // 60:02d}"


@lru_cache(maxsize=64)
def espi_tzinfo(params: LocalTimeParameters) -> EspiTimeZone:
    return EspiTimeZone(params)


def tzinfo_for(params: LocalTimeParameters | None, override: str | None = None) -> tzinfo:
    """The zone to label local times in: an IANA ``override`` wins, then the document's rules,
    then UTC (a document without LocalTimeParameters says nothing about local time)."""
    if override:
        return iana_zone(override)
    if params is not None:
        if params.unusable is not None:
            raise ValueError(params.unusable)
        return espi_tzinfo(params)
    return UTC


def iana_zone(name: str) -> ZoneInfo:
    from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError) as error:
        raise ValueError(
            f"unknown time zone {name!r} (expected an IANA name like America/Los_Angeles)"
        ) from error


def local_time_parameters_for(zone: ZoneInfo, year: int) -> LocalTimeParameters:
    """LocalTimeParameters describing an IANA zone's rules in ``year`` (for writers and tests).

    Only zones whose DST changes fall on an nth or last weekday at a whole hour are representable;
    US zones are.
    """
    jan = datetime(year, 1, 15, 12, tzinfo=zone)
    jul = datetime(year, 7, 15, 12, tzinfo=zone)
    jan_off = jan.utcoffset() or timedelta(0)
    jul_off = jul.utcoffset() or timedelta(0)
    std, dst = min(jan_off, jul_off), abs(jul_off - jan_off)
    if dst == timedelta(0):
        return LocalTimeParameters(tz_offset=int(std.total_seconds()))
    changes: list[datetime] = []
    moment = datetime(year, 1, 1, tzinfo=UTC)
    previous = moment.astimezone(zone).utcoffset()
    while moment.year == year:
        moment += timedelta(hours=1)
        current = moment.astimezone(zone).utcoffset()
        if current != previous:
            changes.append(moment)
            previous = current
    rules = []
    for change in changes:
        before = (change - timedelta(seconds=1)).astimezone(zone)
        wall = change.astimezone(zone).replace(tzinfo=None) - (
            (change.astimezone(zone).utcoffset() or timedelta(0))
            - (before.utcoffset() or timedelta(0))
        )
        nth = (wall.day - 1) // 7
        last_day = calendar.monthrange(year, wall.month)[1]
        operator = OP_LAST if wall.day + 7 > last_day and nth >= 3 else OP_FIRST + nth
        rules.append(
            encode_dst_rule(
                DstRule(
                    month=wall.month,
                    operator=operator,
                    hour=wall.hour,
                    day_of_week=wall.isoweekday(),
                    seconds=wall.minute * 60,
                )
            )
        )
    start_rule, end_rule = rules if jul_off > jan_off else rules[::-1]
    return LocalTimeParameters(
        tz_offset=int(std.total_seconds()),
        dst_offset=int(dst.total_seconds()),
        dst_start_rule=start_rule,
        dst_end_rule=end_rule,
    )

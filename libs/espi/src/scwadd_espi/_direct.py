"""The direct path: the default layout written straight from the spool, a block at a time.

The general path (:func:`scwadd_espi.convert._write_rows`) sorts every reading in SQLite, groups
them by interval and formats each row in Python: exact for any input, but several times the cost
of parsing. Most real inputs need none of that: each usage point has one energy channel, its
blocks come in order, and a block is a day of equal intervals. For those, this path writes the
very same bytes without the sort and with the per-row work done by C loops:

- a usage point qualifies when its energy readings all come from one collection whose readings
  arrived in strictly increasing start order (so nothing to sort and no repeat to resolve);
- a block of such a point is *regular* when its starts step by its one duration, its UTC offset
  is the same throughout, every reading has a value, and the quality codes and tou are the same
  for all: then its rows differ only in the two dates and the value texts, so one ``%``
  template per block shape (cached) gives the block's text in one operation;
- any other block of a qualifying point is written row by row by the layout itself.

``tests/espi/test_direct.py`` checks that both paths write the same bytes and report the same.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Sequence
from decimal import Decimal
from itertools import chain, repeat
from operator import mul, neg, truediv
from typing import TYPE_CHECKING, Any

from scwadd_espi._clock import Clock, utc_text
from scwadd_espi.layouts import ZERO, LayoutWriter, Row, quality_text
from scwadd_espi.report import Gap, UsagePointReport, series_of

if TYPE_CHECKING:
    from scwadd_espi._spool import Spool

ROLE_DELIVERED, ROLE_RECEIVED, ROLE_NET = 0, 1, 2
MAX_GAPS_LISTED = 200
_DAY = 86400
# Float texts are exact only within these bounds (see value_texts).
_FLOAT_EXACT_DIGITS = 15
_FLOAT_EXACT_BELOW = 10**15
_TEMPLATES_KEPT = 512


def value_texts(values: Sequence[int], exponent: int) -> list[str] | None:
    """``decimal_text(Decimal(v).scaleb(exponent))`` of every value, computed in C loops; None
    when the values are outside the bounds where that is exact (the caller then uses Decimal).

    Why the float text is exact: with |v| < 10**15 the decimal v * 10**exponent has at most 15
    significant digits, and distinct decimals of at most 15 digits are distinct doubles (IEEE 754
    binary64 holds 15.95 decimal digits; 10**k is exact for k <= 22 and the division correctly
    rounded), so the shortest text that reads back as the double, ``repr``, is that decimal
    itself, without trailing zeros; it is never in exponent notation from 1e-4 to 1e16. Only the
    ``.0`` of whole numbers is removed."""
    if exponent >= 0:
        if exponent == 0:
            return list(map(str, values))
        return list(map(str, map(mul, values, repeat(10**exponent))))
    digits = -exponent
    if digits > _FLOAT_EXACT_DIGITS or not values:
        return None
    if max(map(abs, values)) >= _FLOAT_EXACT_BELOW:
        return None
    scaled = map(truediv, values, repeat(10**digits))
    texts = list(map(str.removesuffix, map(float.__repr__, scaled), repeat(".0")))
    # Below 1e-4 repr uses an exponent ("5e-05"); it cannot when no value has so many decimals.
    if digits > 4 and "e" in "".join(texts):
        return None
    return texts


def _quoted(text: str) -> str:
    """One CSV field as the csv module writes it, with ``%`` doubled for a ``%`` template."""
    if not text:
        return ""  # the csv module quotes an empty field only when it is a row's only field
    buffer = io.StringIO()
    csv.writer(buffer, lineterminator="").writerow((text,))
    return buffer.getvalue().replace("%", "%%")


def account(point: UsagePointReport, series_end: dict[int, int], start: int, duration: int) -> None:
    """The report's facts for one row written: its first start, gaps per series
    (:func:`~scwadd_espi.report.series_of`)."""
    point.rows += 1
    series = series_of(duration)
    previous_end = series_end.get(series)
    if previous_end is not None and start > previous_end:
        point.gap_count += 1
        point.gap_seconds += start - previous_end
        if len(point.gaps) < MAX_GAPS_LISTED:
            point.gaps.append(Gap(utc_text(previous_end), utc_text(start), start - previous_end))
    if previous_end is None and point.first_interval_start_utc is None:
        point.first_interval_start_utc = utc_text(start)
    end = start + duration
    if previous_end is None or end > previous_end:
        series_end[series] = end


class DirectPoint:
    """One usage point's rows from its one energy collection."""

    def __init__(
        self,
        point: UsagePointReport,
        key_id: int,
        role: int,
        exponent: int,
        channel: tuple[int | None, int | None, int],
        clock: Clock,
        writer: LayoutWriter,
        text: Any,
    ) -> None:
        self.point = point
        self.key_id = key_id
        self.role = role
        self.exponent = exponent
        # The channel's ReadingType tou and consumptionTier (a reading's own win) and row group.
        self.tou, self.tier, self.group = channel
        self.clock = clock
        self.writer = writer
        self.text = text
        self.series_end: dict[int, int] = {}
        self._templates: dict[tuple[Any, ...], str] = {}
        self._prefix = f"{_quoted(point.id)},{_quoted(point.service)},"
        self._unit = _quoted(point.unit)

    def write(self, spool: Spool) -> int:
        """Write every row; the number of rows written."""
        rows = 0
        for columns in spool.blocks_of(self.key_id):
            written = self._regular_block(columns)
            rows += written if written else self._rows(columns)
        if self.series_end:
            self.point.last_interval_end_utc = utc_text(max(self.series_end.values()))
        return rows

    def _steady_offset(self, first: int, last: int) -> int | None:
        """The UTC offset, when it is the same from ``first`` to ``last``."""
        clock = self.clock
        offset = clock.offset(first)
        for day in range(first // _DAY, last // _DAY + 1):
            # The clock caches per UTC day; a day's two ends differ when its offset changes.
            if clock.offset(day * _DAY) != offset or clock.offset(day * _DAY + _DAY - 1) != offset:
                return None
        return offset

    def _regular_block(self, columns: tuple[tuple[Any, ...], ...]) -> int:
        """Write a regular block (see the module docstring) in one operation; the rows written,
        0 when the block is not regular and nothing was written."""
        starts, durations, values, _costs, qualities, tous, tiers = columns[:7]
        count = len(starts)
        first, duration = starts[0], durations[0]
        if (
            durations.count(duration) != count
            or qualities.count(qualities[0]) != count
            or tous.count(tous[0]) != count
            or tiers.count(tiers[0]) != count
            or None in values
            or starts != tuple(range(first, first + count * duration, duration))
        ):
            return 0
        offset = self._steady_offset(first, starts[-1])
        if offset is None:
            return 0
        texts = value_texts(values, self.exponent)
        if texts is None:
            return 0
        slots: tuple[list[str], ...]
        if self.role == ROLE_DELIVERED:
            slots = (texts, texts)
        elif self.role == ROLE_RECEIVED:
            negated = value_texts(list(map(neg, values)), self.exponent)
            if negated is None:
                return 0
            slots = (texts, negated)
        else:
            slots = (texts,)
        tou = self.tou if tous[0] is None else tous[0]
        tier = self.tier if tiers[0] is None else tiers[0]
        shape = (first % _DAY, offset, duration, count, qualities[0], tou, tier)
        template = self._templates.get(shape)
        if template is None:
            template = self._template(shape)
        local = _dates(self.clock, first + offset, duration, count)
        utc = _dates(self.clock, first, duration, count)
        rows = zip(local, utc, *slots, strict=True)
        self.text.write(template % tuple(chain.from_iterable(rows)))
        # The report, as if each row had been accounted: no gap inside a regular block.
        account(self.point, self.series_end, first, duration)
        self.point.rows += count - 1
        series = series_of(duration)
        self.series_end[series] = max(self.series_end[series], first + count * duration)
        return count

    def _template(self, shape: tuple[Any, ...]) -> str:
        """The ``%`` template of a regular block's rows: a local date, a UTC date and the value
        texts to fill in per row."""
        first, offset, duration, count, qualities, tou, tier = shape
        offset_text = self.clock.offset_text(offset)
        values = {ROLE_DELIVERED: "%s,,%s", ROLE_RECEIVED: ",%s,%s", ROLE_NET: ",,%s"}[self.role]
        code_text = quality_text(",".join(map(str, qualities)) if qualities else "")
        suffix = (
            f",{self._unit},{_quoted(code_text)},{'' if tou is None else tou},"
            f"{'' if tier is None else tier},{self.group}\r\n"
        )
        rows = []
        for index in range(count):
            start = first + index * duration
            local = (start + offset) % _DAY
            utc = start % _DAY
            rows.append(
                f"{self._prefix}%sT{_hms(local)}{offset_text},%sT{_hms(utc)}Z,{duration},"
                f"{values}{suffix}"
            )
        template = "".join(rows)
        if len(self._templates) >= _TEMPLATES_KEPT:  # shapes come from the input: bounded
            self._templates.clear()
        self._templates[shape] = template
        return template

    def _rows(self, columns: tuple[tuple[Any, ...], ...]) -> int:
        """The general path's rows for one block, through the layout; the rows written."""
        starts, durations, values, costs, qualities, tous, tiers = columns[:7]
        role, exponent, point = self.role, self.exponent, self.point
        for start, duration, value, cost, codes, tou, tier in zip(
            starts, durations, values, costs, qualities, tous, tiers, strict=True
        ):
            scaled = None if value is None else Decimal(value).scaleb(exponent)
            if scaled is None:
                point.rows_without_value += 1
            delivered = scaled if role == ROLE_DELIVERED else None
            received = scaled if role == ROLE_RECEIVED else None
            if role == ROLE_NET:
                net = scaled
            elif scaled is None:
                net = None
            else:
                net = (delivered or ZERO) - (received or ZERO)
            self.writer.row(
                Row(
                    point=point,
                    clock=self.clock,
                    start=start,
                    duration=duration,
                    delivered=delivered,
                    received=received,
                    net=net,
                    has_received_channel=role == ROLE_RECEIVED,
                    cost=cost,
                    quality=quality_text(",".join(map(str, codes)) if codes else ""),
                    tou=self.tou if tou is None else tou,
                    consumption_tier=self.tier if tier is None else tier,
                    channel=self.group,
                    unknown=scaled is None,
                )
            )
            account(point, self.series_end, start, duration)
        return len(starts)


def _hms(second_of_day: int) -> str:
    hour, rest = divmod(second_of_day, 3600)
    return f"{hour:02d}:{rest // 60:02d}:{rest % 60:02d}"


def _dates(clock: Clock, first: int, step: int, count: int) -> list[str]:
    """The date texts of ``first + i * step`` for i < count: one list repeat per day."""
    texts: list[str] = []
    index = 0
    day = first // _DAY
    while index < count:
        # The first index on the next day: the smallest i with first + i * step >= next midnight.
        following = min(count, -(-((day + 1) * _DAY - first) // step))
        texts += [clock.date_text(day)] * (following - index)
        index = following
        day += 1
    return texts

"""The CSV layouts: ``default``, ``pge`` and ``scwadd``, documented in ``docs/csv.md``.

A layout writer gets one :class:`Row` per usage point and interval, in order, and writes it
in its columns; :data:`LAYOUT_CLASSES` maps a layout's name to its writer.
"""

from __future__ import annotations

import csv
from collections.abc import Sequence
from decimal import Decimal
from functools import lru_cache
from typing import IO, Literal, NamedTuple

from scwadd_espi._clock import UTC_CLOCK, Clock
from scwadd_espi.model import Quality, ServiceKind
from scwadd_espi.report import UsagePointReport

ZERO = Decimal(0)

Layout = Literal["default", "pge", "scwadd"]
LAYOUTS: tuple[str, ...] = ("default", "pge", "scwadd")

DEFAULT_COLUMNS = (
    "usage_point_id",
    "service",
    "interval_start_local",
    "interval_start_utc",
    "duration_seconds",
    "delivered",
    "received",
    "net",
    "unit",
    "quality",
    "tou",
    "consumption_tier",
    "channel",
)
PGE_COLUMNS_TEMPLATE = ("TYPE", "DATE", "START TIME", "END TIME", "USAGE ({unit})", "COST", "NOTES")


def decimal_text(value: Decimal | None) -> str:
    if value is None:
        return ""
    if value == 0:
        return "0"
    return format(value.normalize(), "f")


def service_name(kind: int | None) -> str:
    if kind is None:
        return "electricity"
    try:
        return ServiceKind(kind).name.lower()
    except ValueError:
        return f"service kind {kind}"


@lru_cache(maxsize=4096)
def quality_text(qualities: str) -> str:
    if not qualities:
        return ""
    names = []
    for code in qualities.split(","):
        try:
            names.append(Quality(int(code)).name.lower())
        except ValueError:
            names.append(code)
    return ";".join(names)


class Row(NamedTuple):
    point: UsagePointReport
    clock: Clock
    start: int
    duration: int
    delivered: Decimal | None
    received: Decimal | None
    net: Decimal | None
    has_received_channel: bool
    cost: int | None
    quality: str
    tou: int | None
    consumption_tier: int | None = None
    #: The row group within the usage point (1-based): one tier, at most one channel per column.
    channel: int = 1
    #: A reading of the row has no value (espi.xsd: value is optional): its energy is unknown,
    #: so no layout writes a conventional 0 or a sum for it.
    unknown: bool = False


def _sum(values: Sequence[Decimal | None]) -> Decimal | None:
    present = [v for v in values if v is not None]
    return sum(present, ZERO) if present else None


def combined(rows: Sequence[Row]) -> Row:
    """One row for an interval that several channel groups of a usage point cover (time-of-use
    tiers in separate MeterReadings, two meters): the exact sums, for layouts that have one
    row per interval. Cost is summed too; quality is kept when all agree, else listed."""
    if len(rows) == 1:
        return rows[0]
    first = rows[0]
    unknown = any(r.unknown for r in rows)
    costs = [r.cost for r in rows if r.cost is not None]
    qualities = list(dict.fromkeys(q for r in rows for q in r.quality.split(";") if q))
    return first._replace(
        # One group's unknown energy makes the interval's unknown: a partial sum would pass for
        # it. A net channel's known value stays.
        delivered=None if unknown else _sum([r.delivered for r in rows]),
        received=None if unknown else _sum([r.received for r in rows]),
        net=None if any(r.net is None for r in rows) else _sum([r.net for r in rows]),
        unknown=unknown,
        cost=sum(costs) if costs else None,
        quality=";".join(qualities),
        tou=None,
        consumption_tier=None,
    )


class LayoutWriter:
    def __init__(self, out: IO[str], customer_name: str | None) -> None:
        self.csv = csv.writer(out, lineterminator="\r\n")
        self.customer_name = customer_name

    def begin(self, points: Sequence[UsagePointReport]) -> None:
        pass

    def begin_point(self, point: UsagePointReport) -> None:
        pass

    def rows(self, rows: Sequence[Row]) -> int:
        """Write the rows of one interval of one usage point (one per channel group, in group
        order); returns how many CSV rows that made. Layouts with one row per interval sum the
        groups (see :func:`combined`)."""
        self.row(combined(rows))
        return 1

    def row(self, row: Row) -> None:
        raise NotImplementedError


class _DefaultLayout(LayoutWriter):
    """One row per interval and channel group: tiers and parallel meters each keep their row."""

    def begin(self, points: Sequence[UsagePointReport]) -> None:
        self.csv.writerow(DEFAULT_COLUMNS)

    def rows(self, rows: Sequence[Row]) -> int:
        for row in rows:
            self.row(row)
        return len(rows)

    def row(self, row: Row) -> None:
        received = row.received
        if received is None and row.has_received_channel and not row.unknown:
            received = ZERO
        self.csv.writerow(
            (
                row.point.id,
                row.point.service,
                row.clock.local_iso(row.start),
                UTC_CLOCK.utc_iso(row.start),
                row.duration,
                decimal_text(row.delivered),
                decimal_text(received),
                decimal_text(row.net),
                row.point.unit,
                row.quality,
                "" if row.tou is None else row.tou,
                "" if row.consumption_tier is None else row.consumption_tier,
                row.channel,
            )
        )


class _ScwaddLayout(LayoutWriter):
    """The original tool's four columns, made correct."""

    def begin(self, points: Sequence[UsagePointReport]) -> None:
        units = sorted({p.unit for p in points if p.unit}) or ["kWh"]
        unit = units[0] if len(units) == 1 else " or ".join(units) + ": see the usage point"
        self.csv.writerow(
            (
                "SA_UUID",
                "Interval Timestamp",
                f"Delivered From Grid Value ({unit})",
                f"Back To Grid Value ({unit})",
            )
        )

    def row(self, row: Row) -> None:
        unknown = row.unknown
        self.csv.writerow(
            (
                row.point.id,
                row.clock.local_iso(row.start),
                # No reading of a channel is a 0 here (the original's layout has no blank),
                # but an unknown row (a reading without a value) stays blank.
                decimal_text(row.delivered if row.delivered is not None or unknown else ZERO),
                decimal_text(row.received if row.received is not None or unknown else ZERO),
            )
        )


_CENT = Decimal("0.01")


class _PgeLayout(LayoutWriter):
    """PG&E's "Green Button Download My Data" CSV: account lines, a blank line, the columns.
    One such section per usage point."""

    def __init__(self, out: IO[str], customer_name: str | None) -> None:
        super().__init__(out, customer_name)
        self._sections = 0

    def begin_point(self, point: UsagePointReport) -> None:
        if self._sections:
            self.csv.writerow(())
        self._sections += 1
        self.csv.writerow(("Name", self.customer_name or ""))
        self.csv.writerow(("Address", ""))
        self.csv.writerow(("Account Number", ""))
        self.csv.writerow(("Service", f"Service {self._sections} ({point.id})"))
        self.csv.writerow(())
        unit = point.unit or "kWh"
        self.csv.writerow(tuple(c.format(unit=unit) for c in PGE_COLUMNS_TEMPLATE))

    def row(self, row: Row) -> None:
        clock = row.clock
        date_text, hour, minute, _second, offset = clock.wall(row.start)
        _end_date, end_hour, end_minute, _s, _o = clock.wall(row.start + row.duration - 60)
        usage = row.net  # None: a reading without a value, written blank (not a 0)
        service = row.point.service
        if service == "gas":
            kind = "Natural gas usage"
        elif service == "electricity":
            kind = "Electric usage"
        else:
            kind = f"{service.capitalize()} usage"
        cost = ""
        if row.cost is not None:
            dollars = Decimal(row.cost).scaleb(-5)
            cents = dollars.quantize(_CENT)
            text = format(cents if dollars == cents else dollars.normalize(), "f")
            cost = f"-${text[1:]}" if text.startswith("-") else f"${text}"
        notes = ""
        if clock.repeated(row.start):
            notes = f"repeated hour, UTC offset {clock.offset_text(offset)}"
        self.csv.writerow(
            (
                kind,
                date_text,
                f"{hour:02d}:{minute:02d}",
                f"{end_hour:02d}:{end_minute:02d}",
                decimal_text(usage),
                cost,
                notes,
            )
        )


LAYOUT_CLASSES: dict[str, type[LayoutWriter]] = {
    "default": _DefaultLayout,
    "pge": _PgeLayout,
    "scwadd": _ScwaddLayout,
}

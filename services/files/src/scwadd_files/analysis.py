"""What the console shows about one export, computed from the CSV in the ``default`` layout.

Every figure is derived from the CSV's own cells with :class:`~decimal.Decimal`, so a total on
the page is the sum a spreadsheet makes of the downloaded file (``docs/csv.md`` for the
columns). Local dates and hours are read from ``interval_start_local`` as written, so the
fall-back day's repeated hour stays two hours (told apart by the UTC offset) and the
spring-forward day has 23.
"""

from __future__ import annotations

import csv
import io
from collections import defaultdict
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from decimal import Decimal, InvalidOperation
from typing import Any

ELECTRIC_UNIT = "kWh"
GAS_UNIT = "therms"
REQUIRED_COLUMNS = (
    "usage_point_id",
    "service",
    "interval_start_local",
    "duration_seconds",
    "delivered",
    "received",
    "unit",
    "quality",
)


class NotDefaultLayout(ValueError):
    """The CSV is not in the ``default`` layout (its header lacks a needed column)."""


def decimal_text(value: Decimal | None) -> str | None:
    """``Decimal('1.4490')`` → ``'1.449'``, as the CSV writes numbers; None stays None."""
    if value is None:
        return None
    if value == 0:
        return "0"
    return format(value.normalize(), "f")


def _number(cell: str) -> Decimal | None:
    if cell == "":
        return None
    try:
        return Decimal(cell)
    except InvalidOperation:
        raise ValueError(f"not a number in the CSV: {cell[:20]!r}") from None


@dataclass(frozen=True)
class Row:
    usage_point_id: str
    service: str
    start_local: str  # 2024-11-03T01:15:00-08:00
    seconds: int
    delivered: Decimal | None
    received: Decimal | None
    unit: str
    estimated: bool


def read_rows(data: bytes) -> Iterator[Row]:
    """The default layout's rows; raises :class:`NotDefaultLayout` for another header."""
    reader = csv.DictReader(io.StringIO(data.decode("utf-8-sig"), newline=""))
    missing = [c for c in REQUIRED_COLUMNS if c not in (reader.fieldnames or [])]
    if missing:
        raise NotDefaultLayout(f"the CSV has no column {missing[0]!r}")
    for record in reader:
        yield Row(
            usage_point_id=record["usage_point_id"],
            service=record["service"],
            start_local=record["interval_start_local"],
            seconds=int(record["duration_seconds"]),
            delivered=_number(record["delivered"]),
            received=_number(record["received"]),
            unit=record["unit"],
            estimated="estimated" in record["quality"],
        )


@dataclass
class Summary:
    """One export in numbers (decimal strings in the CSV's units)."""

    usage_points: list[dict[str, str]] = field(default_factory=list)
    rows: int = 0
    delivered_kwh: str | None = None
    received_kwh: str | None = None
    therms: str | None = None
    peak_kwh: str | None = None
    peak_start: str | None = None
    peak_seconds: int | None = None
    peak_usage_point: str | None = None
    estimated_rows: int = 0

    @property
    def estimated_share(self) -> float | None:
        return self.estimated_rows / self.rows if self.rows else None

    @property
    def services(self) -> list[str]:
        return sorted({p["service"] for p in self.usage_points})


@dataclass
class Analysis:
    summary: Summary
    # Per local date: electricity delivered and received (kWh), gas (therms).
    daily: list[dict[str, Any]]
    # Electricity delivered by day (rows) and slot of the day (columns, minutes since midnight).
    heatmap: dict[str, Any]
    # The average day by month: mean electricity delivered per slot of the day.
    profile: dict[str, Any]


def _add(a: Decimal | None, b: Decimal | None) -> Decimal | None:
    if b is None:
        return a
    return b if a is None else a + b


def analyse(rows: Iterable[Row]) -> Analysis:
    """Totals, peak, estimated share and the three charts' series, in one pass over the rows."""
    summary = Summary()
    seen_points: dict[str, str] = {}
    delivered: Decimal | None = None
    received: Decimal | None = None
    therms: Decimal | None = None
    peak: Row | None = None
    day_delivered: dict[str, Decimal] = defaultdict(Decimal)
    day_received: dict[str, Decimal | None] = {}
    day_gas: dict[str, Decimal | None] = {}
    days: set[str] = set()
    # (date, minute of day) → kWh, for electricity; the slot is the shortest interval seen.
    cells: dict[tuple[str, int], Decimal] = defaultdict(Decimal)
    slot_seconds = 0
    for row in rows:
        summary.rows += 1
        if row.estimated:
            summary.estimated_rows += 1
        seen_points.setdefault(row.usage_point_id, row.service)
        date = row.start_local[:10]
        days.add(date)
        if row.unit == ELECTRIC_UNIT:
            delivered = _add(delivered, row.delivered)
            received = _add(received, row.received)
            if row.delivered is not None:
                day_delivered[date] += row.delivered
                minute = int(row.start_local[11:13]) * 60 + int(row.start_local[14:16])
                cells[(date, minute)] += row.delivered
                slot_seconds = min(slot_seconds or row.seconds, row.seconds)
                if peak is None or row.delivered > (peak.delivered or Decimal(0)):
                    peak = row
            day_received[date] = _add(day_received.get(date), row.received)
        elif row.unit == GAS_UNIT:
            therms = _add(therms, row.delivered)
            day_gas[date] = _add(day_gas.get(date), row.delivered)
    summary.usage_points = [{"id": k, "service": v} for k, v in seen_points.items()]
    summary.delivered_kwh = decimal_text(delivered)
    summary.received_kwh = decimal_text(received)
    summary.therms = decimal_text(therms)
    if peak is not None:
        summary.peak_kwh = decimal_text(peak.delivered)
        summary.peak_start = peak.start_local
        summary.peak_seconds = peak.seconds
        summary.peak_usage_point = peak.usage_point_id
    ordered_days = sorted(days)
    daily = [
        {
            "date": d,
            "delivered_kwh": decimal_text(day_delivered[d]) if d in day_delivered else None,
            "received_kwh": decimal_text(day_received.get(d)),
            "therms": decimal_text(day_gas.get(d)),
        }
        for d in ordered_days
    ]
    heatmap, profile = _shapes(cells, slot_seconds)
    return Analysis(summary, daily, heatmap, profile)


def _shapes(
    cells: dict[tuple[str, int], Decimal], slot_seconds: int
) -> tuple[dict[str, Any], dict[str, Any]]:
    if not cells:
        empty: dict[str, Any] = {"slots": [], "values": []}
        return {**empty, "days": []}, {**empty, "months": []}
    step = max(slot_seconds // 60, 1)
    slots = list(range(0, 24 * 60, step))
    electric_days = sorted({d for d, _ in cells})
    row_of = {day: index for index, day in enumerate(electric_days)}
    values: list[list[float | None]] = [[None] * len(slots) for _ in electric_days]
    sums: dict[tuple[str, int], Decimal] = defaultdict(Decimal)
    # Intervals shorter than the slot (rare mixes) are summed into it.
    for (day, minute), value in cells.items():
        sums[(day, minute // step)] += value
    for (day, slot), value in sums.items():
        values[row_of[day]][slot] = float(value)
    heatmap = {"days": electric_days, "slots": slots, "slot_minutes": step, "values": values}
    by_month: dict[str, list[list[float | None]]] = defaultdict(list)
    for day, line in zip(electric_days, values, strict=True):
        by_month[day[:7]].append(line)
    months = sorted(by_month)
    profile_values: list[list[float | None]] = []
    for month in months:
        lines = by_month[month]
        averages: list[float | None] = []
        for index in range(len(slots)):
            present = [v for line in lines if (v := line[index]) is not None]
            averages.append(round(sum(present) / len(present), 6) if present else None)
        profile_values.append(averages)
    profile = {"months": months, "slots": slots, "slot_minutes": step, "values": profile_values}
    return heatmap, profile


def rollup_csv(rows: Iterable[Row], period: str) -> bytes:
    """Hourly (``period="hourly"``) or daily sums per usage point, as CSV.

    Columns: usage_point_id, service, hour_start_local or date, delivered, received, unit,
    intervals, estimated_intervals. A local hour keeps its UTC offset, so the fall-back day's
    two 01:00 hours are two rows. Empty delivered/received when no interval had a value.
    """
    if period not in ("hourly", "daily"):
        raise ValueError(f"unknown roll-up {period!r}")
    groups: dict[tuple[str, str, str, str], list[Any]] = {}
    for row in rows:
        if period == "daily":
            key = row.start_local[:10]
        else:
            key = row.start_local[:13] + ":00:00" + row.start_local[19:]
        group = groups.setdefault(
            (row.usage_point_id, row.service, key, row.unit), [None, None, 0, 0]
        )
        group[0] = _add(group[0], row.delivered)
        group[1] = _add(group[1], row.received)
        group[2] += 1
        group[3] += int(row.estimated)
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\r\n")
    writer.writerow(
        [
            "usage_point_id",
            "service",
            "hour_start_local" if period == "hourly" else "date",
            "delivered",
            "received",
            "unit",
            "intervals",
            "estimated_intervals",
        ]
    )
    for (point, service, key, unit), (d, r, n, e) in groups.items():
        writer.writerow(
            [point, service, key, decimal_text(d) or "", decimal_text(r) or "", unit, n, e]
        )
    return out.getvalue().encode()

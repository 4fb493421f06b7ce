"""A job's bills: ``<export>.bills.csv``, the bills' reconciliation against the intervals, and the
customer's details, for the manifest (``docs/csv.md``, *bills.csv*).

The bills are the ESPI UsageSummaries in the job's raw documents (read by
:func:`scwadd_espi.bills.iter_bills`); the customer details come from its RetailCustomer
documents (:func:`scwadd_espi.bills.read_customer`). Both are customer data: they go to the
exports bucket and the manifest, never to a log line.

**Reconciliation**, per bill: the interval energy of the bill's usage point summed over the
billing period (readings starting in ``[start, end)``, each reading once however many documents
repeat it) against the billed consumption (``overallConsumptionLastPeriod``). The interval energy
is net, delivered minus received (or the net channel when the documents have one), as PG&E bills
net usage for solar (NEM) customers and as the ``pge`` CSV layout shows it. A difference over
:data:`TOLERANCE_PERCENT` of the interval energy is a data-quality warning with both figures;
a period the intervals do not cover completely is reported as such, not as a discrepancy.
"""

from __future__ import annotations

import csv
import io
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal
from typing import Any

from scwadd_espi.bills import Bill, iter_bills, quality_name, read_customer
from scwadd_espi.layouts import decimal_text
from scwadd_espi.model import Commodity, FlowDirection
from scwadd_espi.readings import iter_readings

#: A bill whose consumption differs from the intervals by more than this is a warning (issue #13).
TOLERANCE_PERCENT = Decimal(1)
#: Gas readings start a second after local midnight (PG&E); coverage allows that much slack.
COVERAGE_SLACK_SECONDS = 1

BILLS_COLUMNS = (
    "usage_point_id",
    "service",
    "billing_period_start_local",
    "billing_period_end_local",
    "billing_period_start_utc",
    "billing_period_end_utc",
    "row_type",
    "billed_consumption",
    "unit",
    "bill_amount",
    "cost_additional",
    "currency",
    "detail_note",
    "detail_item_kind",
    "detail_amount",
    "tariff",
    "tariff_riders",
    "read_cycle",
    "quality",
)


def money_text(value: Decimal | None) -> str:
    """Dollars exactly, with at least the cents: ``12.5`` → ``12.50``, ``0.03012`` as it is."""
    if value is None:
        return ""
    exact = value.normalize()
    if exact.as_tuple().exponent > -2:  # type: ignore[operator]
        exact = exact.quantize(Decimal("0.01"))
    return format(exact, "f")


def _iso(when: datetime) -> str:
    return when.isoformat().replace("+00:00", "Z") if when.utcoffset() == 0 else when.isoformat()


def _service(bill: Bill) -> str:
    if bill.commodity == Commodity.NATURAL_GAS:
        return "gas"
    if bill.commodity in (
        Commodity.ELECTRICITY_SECONDARY_METERED,
        Commodity.ELECTRICITY_PRIMARY_METERED,
    ):
        return "electricity"
    if bill.consumption is not None and bill.consumption.unit == "therms":
        return "gas"
    return "electricity" if bill.consumption and bill.consumption.unit == "kWh" else ""


@dataclass
class _Series:
    """A usage point's distinct readings: (start, duration) → net energy, per unit."""

    net: dict[tuple[int, int], Decimal] = field(default_factory=dict)
    covered: dict[tuple[int, int], bool] = field(default_factory=dict)
    unit: str = ""


@dataclass(frozen=True)
class BillsExport:
    """``csv`` (None when the documents hold no bill) and the manifest's ``bills`` section."""

    csv: bytes | None
    manifest: dict[str, Any]


def interval_series(documents: Sequence[tuple[str, bytes]]) -> dict[str, _Series]:
    """Every usage point's net interval energy per (start, duration), each reading once."""
    seen: set[tuple[str, str, int, int]] = set()
    delivered: dict[str, dict[tuple[int, int], Decimal]] = defaultdict(dict)
    received: dict[str, dict[tuple[int, int], Decimal]] = defaultdict(dict)
    netted: dict[str, dict[tuple[int, int], Decimal]] = defaultdict(dict)
    # Slots where a reading carries no value (espi.xsd: value is optional): their energy is
    # unknown, so they count as not covered rather than as a difference made with a zero.
    # A repeat of the reading with a value (another document) makes it known.
    valueless: dict[tuple[str, str, int, int], bool] = {}  # key → of a net channel
    units: dict[str, str] = {}
    for name, data in documents:
        for reading in iter_readings(data, name=name):
            channel = reading.channel
            start = int(reading.start.timestamp())
            key = (channel.usage_point_id, channel.meter_reading, start, reading.duration)
            if reading.value is None:
                valueless[key] = channel.flow_direction == FlowDirection.NET
            if key in seen or reading.value is None:
                continue
            seen.add(key)
            point = channel.usage_point_id
            units.setdefault(point, channel.unit)
            slot = (start, reading.duration)
            target = {
                FlowDirection.REVERSE: received,
                FlowDirection.NET: netted,
            }.get(channel.flow_direction or FlowDirection.FORWARD, delivered)  # type: ignore[call-overload]
            series = target[point]
            # Several channels of one direction (tiers, meters) add up.
            series[slot] = series.get(slot, Decimal(0)) + reading.value
    # Per point: unknown slots of the delivered / received channels, and of the net channels.
    unknown: dict[str, set[tuple[int, int]]] = defaultdict(set)
    unknown_net: dict[str, set[tuple[int, int]]] = defaultdict(set)
    for key, of_net in valueless.items():
        if key not in seen:
            point, _meter_reading, start, duration = key
            (unknown_net if of_net else unknown)[point].add((start, duration))
    result: dict[str, _Series] = {}
    for point in set(delivered) | set(netted) | set(received):
        series = _Series(unit=units.get(point, ""))
        if netted[point]:
            series.net = {
                slot: value
                for slot, value in netted[point].items()
                if slot not in unknown_net[point]
            }
        else:
            for slot in (set(delivered[point]) | set(received[point])) - unknown[point]:
                series.net[slot] = delivered[point].get(slot, Decimal(0)) - received[point].get(
                    slot, Decimal(0)
                )
        result[point] = series
    return result


def reconcile(bill: Bill, series: _Series | None) -> dict[str, Any]:
    """One bill against the intervals (see the module docstring): the figures and a ``status``
    of ``ok``, ``discrepancy``, ``incomplete_intervals``, ``no_intervals``, ``unit_mismatch`` or
    ``no_billed_consumption``; ``warning`` is a sentence for a person when there is one."""
    start = int(bill.period_start.timestamp())
    end = start + bill.period_duration
    facts: dict[str, Any] = {
        "usage_point_id": bill.usage_point_id,
        "period_start_utc": _iso(bill.period_start),
        "period_end_utc": _iso(bill.period_end),
        "period_start_local": _iso(bill.local(bill.period_start)),
        "period_end_local": _iso(bill.local(bill.period_end)),
        "billed": decimal_text(bill.consumption.value) if bill.consumption else None,
        "unit": bill.consumption.unit if bill.consumption else None,
        "interval": None,
        "difference": None,
        "difference_percent": None,
        "interval_coverage_seconds": 0,
        "warning": None,
    }
    if bill.consumption is None:
        facts["status"] = "no_billed_consumption"
        return facts
    if series is None:
        facts["status"] = "no_intervals"
        return facts
    if series.unit != bill.consumption.unit:
        facts["status"] = "unit_mismatch"
        facts["warning"] = (
            f"usage point {bill.usage_point_id}, billing period {facts['period_start_local']} to "
            f"{facts['period_end_local']}: billed in {bill.consumption.unit}, the intervals are in "
            f"{series.unit}"
        )
        return facts
    total = Decimal(0)
    covered = 0
    for (slot_start, duration), value in series.net.items():
        if start <= slot_start < end:
            total += value
            covered += duration
    billed = bill.consumption.value
    difference = billed - total
    facts["interval"] = decimal_text(total)
    facts["difference"] = decimal_text(difference)
    facts["interval_coverage_seconds"] = covered
    if total != 0:
        percent = (difference / abs(total) * 100).quantize(Decimal("0.01"))
        facts["difference_percent"] = decimal_text(percent)
    else:
        percent = Decimal(0) if difference == 0 else Decimal(100)
    if covered + COVERAGE_SLACK_SECONDS < bill.period_duration:
        facts["status"] = "incomplete_intervals"
        return facts
    if abs(percent) > TOLERANCE_PERCENT:
        facts["status"] = "discrepancy"
        facts["warning"] = (
            f"usage point {bill.usage_point_id}, billing period {facts['period_start_local']} to "
            f"{facts['period_end_local']}: billed {facts['billed']} {bill.consumption.unit}, "
            f"intervals sum to {facts['interval']} {bill.consumption.unit} "
            f"({facts['difference_percent'] or 'n/a'}% difference, over "
            f"{decimal_text(TOLERANCE_PERCENT)}%)"
        )
        return facts
    facts["status"] = "ok"
    return facts


def bills_csv(bills: Sequence[Bill]) -> bytes:
    """The bills as ``bills.csv`` (``docs/csv.md``): one ``bill`` row per billing period, then
    one ``cost_detail`` row per cost detail line of it."""
    out = io.StringIO(newline="")
    writer = csv.writer(out, lineterminator="\r\n")
    writer.writerow(BILLS_COLUMNS)
    for bill in bills:
        common = [
            bill.usage_point_id or "",
            _service(bill),
            _iso(bill.local(bill.period_start)),
            _iso(bill.local(bill.period_end)),
            _iso(bill.period_start),
            _iso(bill.period_end),
        ]
        tariff = [
            bill.tariff_profile or "",
            ";".join(bill.tariff_riders),
            bill.read_cycle or "",
            quality_name(bill.quality),
        ]
        writer.writerow(
            [
                *common,
                "bill",
                decimal_text(bill.consumption.value) if bill.consumption else "",
                bill.consumption.unit if bill.consumption else "",
                money_text(bill.bill_amount),
                money_text(bill.cost_additional),
                bill.currency,
                "",
                "",
                "",
                *tariff,
            ]
        )
        for line in bill.cost_lines:
            writer.writerow(
                [
                    *common,
                    "cost_detail",
                    "",
                    "",
                    "",
                    "",
                    bill.currency,
                    line.note,
                    line.item_kind_name,
                    money_text(line.amount),
                    *tariff,
                ]
            )
    return out.getvalue().encode("utf-8")


def build_bills(documents: Sequence[tuple[str, bytes]]) -> BillsExport:
    """The bills, their reconciliation and the customer details of one job's raw documents.
    Raises :class:`~scwadd_espi.parser.EspiParseError` for a malformed document."""
    names = [name for name, _ in documents]
    bills = list(iter_bills([data for _, data in documents], names=names))
    customer = read_customer([data for _, data in documents], names=names)
    manifest: dict[str, Any] = {}
    if customer.name or customer.addresses or customer.agreements:
        manifest["customer"] = customer.to_dict()
    if not bills:
        manifest["bills"] = {"count": 0}
        return BillsExport(csv=None, manifest=manifest)
    series = interval_series(documents)
    periods = [reconcile(bill, series.get(bill.usage_point_id or "")) for bill in bills]
    warnings = [p["warning"] for p in periods if p["warning"]]
    data = bills_csv(bills)
    total = sum((b.bill_amount for b in bills if b.bill_amount is not None), Decimal(0))
    manifest["bills"] = {
        "count": len(bills),
        "usage_points": sorted({b.usage_point_id or "" for b in bills}),
        "first_period_start_utc": _iso(bills[0].period_start),
        "last_period_end_utc": _iso(max(b.period_end for b in bills)),
        "total_bill_amount": money_text(total),
        "currency": ";".join(sorted({b.currency for b in bills if b.currency})),
        "tariffs": sorted({b.tariff_profile for b in bills if b.tariff_profile}),
    }
    manifest["reconciliation"] = {
        "tolerance_percent": decimal_text(TOLERANCE_PERCENT),
        "basis": "net interval energy (delivered - received) over each billing period",
        "periods": periods,
        "discrepancies": sum(1 for p in periods if p["status"] == "discrepancy"),
        "warnings": warnings,
    }
    return BillsExport(csv=data, manifest=manifest)

"""The sandbox customers' bills: one ESPI UsageSummary per billing period, from their readings.

A customer's meters are read on its **read cycle**: cycle ``n`` (1-21, from the customer's id)
reads on day ``n`` of each month, so a billing period runs from Pacific midnight of day ``n`` of
one month to day ``n`` of the next (28 to 31 days; the periods over the March and November DST
changes are an hour shorter or longer). Only whole periods inside a requested range are served.

Per period and UsagePoint (ESPI UsageSummary):

- ``overallConsumptionLastPeriod``: the interval energy of the period in the ReadingType's unit
  and multiplier: delivered (flowDirection 1) minus received (19) for a solar (NEM) UsagePoint,
  as PG&E bills net usage; delivered otherwise. The fault ``billing.discrepancy_percent`` skews
  it (see :mod:`scwadd_sandbox.faults`).
- with function block 16 only: ``billLastPeriod`` = the period's energy charges (the readings'
  ``cost``, solar export credited) + ``costAdditionalLastPeriod``, the sum of the
  ``costAdditionalDetailLastPeriod`` lines: the daily Base Services Charge (itemKind 4), the
  California Climate Credit in April and October (electric) or April (gas) (itemKind 7), and the
  Utility Users' Tax on energy and base charge (itemKind 5). Amounts in 1e-5 dollars.
- ``tariffProfile`` by UsagePoint (``E-TOU-C``, ``HAG5A``, gas ``G1``), ``readCycle``, a
  ``NEM2`` tariff rider on solar UsagePoints, ``qualityOfReading`` 17 (validated), or 8
  (estimated) when an estimated reading lies in the period.
"""

from __future__ import annotations

import datetime as dt
import hashlib
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from scwadd_espi.model import (
    DateTimeInterval,
    LineItem,
    SummaryMeasurement,
    TariffRiderRef,
    UsageSummary,
)

from scwadd_sandbox import data
from scwadd_sandbox.faults import BillingFaults

CURRENCY_USD = 840
READ_CYCLES = 21
QUALITY_ESTIMATED = 8

ITEM_ADMINISTRATIVE_FEE = 4
ITEM_TAX = 5
ITEM_DELIVERY_CREDIT = 7

#: Base Services Charge per day, 1e-5 dollars (PG&E's residential order of magnitude).
BASE_CHARGE_PER_DAY = {data.KIND_ELECTRICITY: 39_493, data.KIND_GAS: 16_438}
#: California Climate Credit, 1e-5 dollars, by month (negative: a credit).
CLIMATE_CREDIT = {
    data.KIND_ELECTRICITY: {4: -5_823_000, 10: -5_823_000},
    data.KIND_GAS: {4: -5_029_000},
}
#: Utility Users' Tax, as a fraction (exact: parts per 10,000).
TAX_PER_10000 = 750
NEM_EFFECTIVE = int(dt.datetime(2021, 6, 1, tzinfo=data.PACIFIC).timestamp())


def read_cycle(customer: data.Customer) -> int:
    """The customer's read cycle, 1-21: its meters are read (and its bill cut) on that day."""
    digest = hashlib.sha256(f"readcycle:{customer.retail_customer_id}".encode()).digest()
    return digest[0] % READ_CYCLES + 1


def tariff(customer: data.Customer, point: data.ServicePoint) -> str:
    """The UsagePoint's rate schedule: ``G1`` (gas), ``HAG5A`` for the hourly electric profile
    (PG&E's code shape as its feeds carry it), ``E-TOU-C`` otherwise."""
    if point.kind == data.KIND_GAS:
        return "G1"
    if point.meters[0].spec.interval_length == 3600 and not point.solar:
        return "HAG5A"
    return "E-TOU-C"


def billing_periods(cycle: int, start: int, end: int) -> Iterator[tuple[int, int]]:
    """(start, end) epoch seconds of every whole billing period of read cycle ``cycle`` inside
    [start, end): Pacific midnight of day ``cycle`` of a month to the same day of the next."""
    local = dt.datetime.fromtimestamp(start, data.PACIFIC)
    year, month = local.year, local.month
    if local.day > cycle or (local.day == cycle and (local.hour, local.minute) > (0, 0)):
        year, month = (year + 1, 1) if month == 12 else (year, month + 1)
    while True:
        first = int(dt.datetime(year, month, cycle, tzinfo=data.PACIFIC).timestamp())
        year, month = (year + 1, 1) if month == 12 else (year, month + 1)
        following = int(dt.datetime(year, month, cycle, tzinfo=data.PACIFIC).timestamp())
        if following > end:
            return
        if first >= start:
            yield first, following


def has_period(customer: data.Customer, start: int, end: int) -> bool:
    return next(billing_periods(read_cycle(customer), start, end), None) is not None


@dataclass(frozen=True)
class PeriodFacts:
    """What a period's readings add up to (raw integers, as the documents carry them)."""

    delivered: int
    received: int
    energy_cost: int
    estimated: bool


def period_facts(seed: int, point: data.ServicePoint, first: int, following: int) -> PeriodFacts:
    delivered = received = cost = 0
    estimated = False
    for meter in point.meters:
        for r in data.readings(seed, point, meter, first, following):
            if meter.spec.flow_direction == data.FLOW_REVERSE:
                received += r.value
            else:
                delivered += r.value
            cost += r.cost
            estimated = estimated or r.quality == QUALITY_ESTIMATED
    return PeriodFacts(delivered, received, cost, estimated)


def usage_summaries(
    seed: int,
    customer: data.Customer,
    point: data.ServicePoint,
    start: int,
    end: int,
    with_cost: bool = True,
    faults: BillingFaults | None = None,
) -> list[UsageSummary]:
    """One UsageSummary per whole billing period of ``point`` in [start, end); costs only when
    ``with_cost`` (function block 16); ``faults`` may skew the billed consumption."""
    spec = point.meters[0].spec
    cycle = read_cycle(customer)
    skew = faults.skew_for(point.usage_point_id) if faults is not None else 0.0
    summaries = []
    for first, following in billing_periods(cycle, start, end):
        facts = period_facts(seed, point, first, following)
        consumption = facts.delivered - facts.received
        if skew:
            consumption = round(consumption * (1 + skew / 100))
        lines = _cost_lines(point.kind, first, following, facts.energy_cost) if with_cost else ()
        additional = sum(item.amount or 0 for item in lines)
        summaries.append(
            UsageSummary(
                status_time_stamp=following,
                billing_period=DateTimeInterval(first, following - first),
                bill_last_period=facts.energy_cost + additional if with_cost else None,
                cost_additional_last_period=additional if with_cost else None,
                cost_additional_detail_last_period=lines,
                currency=CURRENCY_USD,
                overall_consumption_last_period=SummaryMeasurement(
                    power_of_ten_multiplier=spec.power_of_ten_multiplier,
                    time_stamp=following,
                    uom=spec.uom,
                    value=consumption,
                ),
                quality_of_reading=QUALITY_ESTIMATED if facts.estimated else data.QUALITY_VALIDATED,
                commodity=spec.commodity,
                tariff_profile=tariff(customer, point),
                read_cycle=str(cycle),
                tariff_rider_refs=(
                    (TariffRiderRef("NEM2", "enrolled", NEM_EFFECTIVE),) if point.solar else ()
                ),
            )
        )
    return summaries


def _cost_lines(kind: int, first: int, following: int, energy_cost: int) -> tuple[LineItem, ...]:
    days = round((following - first) / data.DAY)  # 23- and 25-hour days count as days
    base = BASE_CHARGE_PER_DAY[kind] * days
    lines = [
        LineItem(
            note=f"Base Services Charge ({days} days)",
            item_kind=ITEM_ADMINISTRATIVE_FEE,
            amount=base,
            unit_cost=BASE_CHARGE_PER_DAY[kind],
            item_period=DateTimeInterval(first, following - first),
        )
    ]
    month = dt.datetime.fromtimestamp(following - 1, data.PACIFIC).month
    credit = CLIMATE_CREDIT[kind].get(month)
    if credit is not None:
        lines.append(
            LineItem(
                note="California Climate Credit", item_kind=ITEM_DELIVERY_CREDIT, amount=credit
            )
        )
    taxable = max(energy_cost + base, 0)
    lines.append(
        LineItem(
            note="Utility Users' Tax (7.5%)",
            item_kind=ITEM_TAX,
            amount=taxable * TAX_PER_10000 // 10_000,
        )
    )
    return tuple(lines)


def summary_json(usage_point_id: str, summary: UsageSummary) -> dict[str, Any]:
    """A served UsageSummary as the admin API's ground truth: the integers the document holds."""
    period = summary.billing_period
    consumption = summary.overall_consumption_last_period
    assert period is not None and consumption is not None
    return {
        "usage_point_id": usage_point_id,
        "start": period.start,
        "duration": period.duration,
        "consumption": consumption.value,
        "uom": consumption.uom,
        "power_of_ten_multiplier": consumption.power_of_ten_multiplier,
        "bill_last_period": summary.bill_last_period,
        "cost_additional_last_period": summary.cost_additional_last_period,
        "cost_lines": [
            {"note": item.note, "item_kind": item.item_kind, "amount": item.amount}
            for item in summary.cost_additional_detail_last_period
        ],
        "currency": summary.currency,
        "tariff_profile": summary.tariff_profile,
        "tariff_riders": [r.rider_type for r in summary.tariff_rider_refs],
        "read_cycle": summary.read_cycle,
        "quality_of_reading": summary.quality_of_reading,
    }

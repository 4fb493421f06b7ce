"""Bills and customer details as typed records: ESPI UsageSummary and RetailCustomer documents.

``iter_bills(sources)`` yields one :class:`Bill` per ESPI ``UsageSummary`` (the schema's
"summary of usage for a billing period") found in the documents, sorted by usage point and billing
period: the period in UTC (local time from the usage point's LocalTimeParameters when the
documents carry them), the billed consumption (``overallConsumptionLastPeriod``: raw value x
10^powerOfTenMultiplier, in the display unit, exactly), the amounts in dollars exactly (ESPI's
``billLastPeriod``, ``costAdditionalLastPeriod`` and each ``costAdditionalDetailLastPeriod``
``amount`` are hundred-thousandths of the currency: ``12345678`` is ``123.45678``), tariff
(``tariffProfile``, ``tariffRiderRefs``), ``readCycle`` and ``qualityOfReading``.

``read_customer(sources)`` reads the customer-namespace resources of a ``Batch/RetailCustomer``
answer (``http://naesb.org/espi/customer``): the ``Customer``'s name, each
``CustomerAgreement`` and each ``ServiceLocation`` (``mainAddress/streetDetail/addressGeneral``)
with the UsagePoint it links.

Older PG&E UsageSummary documents carry their times in epoch milliseconds; the parser reads them
(see :meth:`scwadd_espi._elements._Reader.usage_summary`), so a bill's times are the same either
way. Both functions read with the engine's hostile-input-safe parser and raise
:class:`~scwadd_espi.parser.EspiParseError` naming the document and line for bad input.
"""

from __future__ import annotations

import io
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, tzinfo
from decimal import Decimal
from pathlib import Path
from typing import IO

from scwadd_espi.localtime import tzinfo_for
from scwadd_espi.model import (
    CustomerAgreement,
    IntervalBlock,
    LineItem,
    Quality,
    RetailCustomer,
    ServiceLocation,
    SummaryMeasurement,
    UsageSummary,
    display_unit,
)
from scwadd_espi.parser import ParsedEntry, iter_entries, source_name
from scwadd_espi.resolve import Resolver, href_path, usage_point_id

BillSource = str | Path | bytes | IO[bytes]

#: ESPI amounts (billLastPeriod, LineItem.amount, ...) are hundred-thousandths of the currency.
AMOUNT_EXPONENT = -5

#: ISO 4217 numeric codes (ESPI ``Currency``) a person reads as letters.
CURRENCIES = {840: "USD", 124: "CAD", 978: "EUR", 826: "GBP", 484: "MXN", 36: "AUD"}

#: ESPI ``ItemKind`` (LineItem.itemKind).
ITEM_KINDS = {
    1: "energy_generation_fee",
    2: "energy_delivery_fee",
    3: "energy_usage_fee",
    4: "administrative_fee",
    5: "tax",
    6: "energy_generation_credit",
    7: "energy_delivery_credit",
    8: "administrative_credit",
    9: "payment",
    10: "information",
}


def dollars(amount: int | None) -> Decimal | None:
    """An ESPI amount (hundred-thousandths of the currency) in currency units, exactly:
    ``dollars(12345678) == Decimal("123.45678")``."""
    return None if amount is None else Decimal(amount).scaleb(AMOUNT_EXPONENT)


def quality_name(code: int | None) -> str:
    """ESPI ``QualityOfReading`` as a name (``17`` → ``validated``); empty for None."""
    if code is None:
        return ""
    try:
        return Quality(code).name.lower()
    except ValueError:
        return str(code)


@dataclass(frozen=True, slots=True)
class Measurement:
    """An ESPI ``SummaryMeasurement`` read exactly: ``value`` in ``unit`` (Wh → kWh)."""

    value: Decimal
    unit: str
    uom: int | None
    power_of_ten_multiplier: int | None

    @classmethod
    def of(cls, raw: SummaryMeasurement | None) -> Measurement | None:
        if raw is None or raw.value is None:
            return None
        unit, shift = display_unit(raw.uom)
        exact = Decimal(raw.value).scaleb((raw.power_of_ten_multiplier or 0) + shift)
        return cls(
            value=exact.normalize() if exact != 0 else Decimal(0),
            unit=unit,
            uom=raw.uom,
            power_of_ten_multiplier=raw.power_of_ten_multiplier,
        )


@dataclass(frozen=True, slots=True)
class CostLine:
    """One ``costAdditionalDetailLastPeriod`` (ESPI LineItem): ``amount`` in currency units
    exactly, ``item_kind`` ESPI's ItemKind code and its name, ``unit_cost`` and ``rounding`` in
    currency units, ``measurement`` what the line charges for."""

    note: str
    item_kind: int
    amount: Decimal | None
    rounding: Decimal | None = None
    unit_cost: Decimal | None = None
    measurement: Measurement | None = None
    date_time: datetime | None = None

    @property
    def item_kind_name(self) -> str:
        return ITEM_KINDS.get(self.item_kind, f"item kind {self.item_kind}")

    @classmethod
    def of(cls, item: LineItem) -> CostLine:
        return cls(
            note=item.note,
            item_kind=item.item_kind,
            amount=dollars(item.amount),
            rounding=dollars(item.rounding),
            unit_cost=dollars(item.unit_cost),
            measurement=Measurement.of(item.measurement),
            date_time=_utc(item.date_time),
        )


@dataclass(frozen=True, slots=True)
class Bill:
    """One billing period of one usage point (an ESPI UsageSummary).

    ``period_start`` is UTC; ``period_duration`` seconds; ``zone`` the usage point's local time
    (None when the documents give no LocalTimeParameters). ``consumption`` is
    ``overallConsumptionLastPeriod`` exactly, in ``consumption.unit``. Amounts are in currency
    units (dollars at PG&E), exactly. ``quality`` is ``qualityOfReading``.
    """

    usage_point_id: str | None
    period_start: datetime
    period_duration: int
    status_time: datetime
    consumption: Measurement | None
    bill_amount: Decimal | None
    bill_to_date: Decimal | None
    cost_additional: Decimal | None
    cost_lines: tuple[CostLine, ...]
    currency: str
    tariff_profile: str | None
    tariff_riders: tuple[str, ...]
    read_cycle: str | None
    quality: int | None
    commodity: int | None
    billing_charge_source: str | None = None
    zone: tzinfo | None = field(default=None, compare=False)
    summary: UsageSummary | None = field(default=None, compare=False, repr=False)

    @property
    def period_end(self) -> datetime:
        return datetime.fromtimestamp(self.period_start.timestamp() + self.period_duration, UTC)

    def local(self, when: datetime) -> datetime:
        """``when`` in the usage point's local time (UTC when unknown)."""
        return when.astimezone(self.zone or UTC)


def iter_bills(
    sources: BillSource | Sequence[BillSource], *, names: Sequence[str] | None = None
) -> Iterator[Bill]:
    """Every UsageSummary with a ``billingPeriod`` in ``sources`` (documents of one customer:
    UsageSummary feeds, Batch feeds carrying them, or bare UsageSummary documents) as a
    :class:`Bill`, sorted by usage point then period start. Repeats (the same usage point and
    period in two documents) are yielded once, the latest ``statusTimeStamp`` winning.

    A UsageSummary without ``billingPeriod`` is no bill (ESPI allows it for "current day"
    summaries) and is skipped. Raises :class:`~scwadd_espi.parser.EspiParseError` for malformed
    documents."""
    resolver = Resolver()
    found: dict[tuple[str | None, int, int], tuple[UsageSummary, str | None]] = {}
    for entry in _entries(sources, names):
        if isinstance(entry.obj, IntervalBlock):
            continue
        resolver.add(entry)
        if not isinstance(entry.obj, UsageSummary) or entry.obj.billing_period is None:
            continue
        point_path = _usage_point_path(entry)
        summary = entry.obj
        period = summary.billing_period
        assert period is not None
        key = (usage_point_id(point_path) if point_path else None, period.start, period.duration)
        previous = found.get(key)
        if previous is None or previous[0].status_time_stamp <= summary.status_time_stamp:
            found[key] = (summary, point_path)
    for key in sorted(found, key=lambda k: (k[0] or "", k[1], k[2])):
        summary, point_path = found[key]
        local = resolver.local_time_for(point_path if point_path in resolver.usage_points else None)
        zone = None
        if local is not None and local.unusable is None:
            zone = tzinfo_for(local)
        yield _bill(key[0], summary, zone)


def _bill(point: str | None, s: UsageSummary, zone: tzinfo | None) -> Bill:
    period = s.billing_period
    assert period is not None
    return Bill(
        usage_point_id=point,
        period_start=datetime.fromtimestamp(period.start, UTC),
        period_duration=period.duration,
        status_time=datetime.fromtimestamp(s.status_time_stamp, UTC),
        consumption=Measurement.of(s.overall_consumption_last_period),
        bill_amount=dollars(s.bill_last_period),
        bill_to_date=dollars(s.bill_to_date),
        cost_additional=dollars(s.cost_additional_last_period),
        cost_lines=tuple(CostLine.of(item) for item in s.cost_additional_detail_last_period),
        currency=CURRENCIES.get(s.currency, str(s.currency)) if s.currency is not None else "",
        tariff_profile=s.tariff_profile,
        tariff_riders=tuple(
            r.rider_type for r in s.tariff_rider_refs if r.enrollment_status != "unenrolled"
        ),
        read_cycle=s.read_cycle,
        quality=s.quality_of_reading,
        commodity=s.commodity,
        billing_charge_source=s.billing_charge_source,
        zone=zone,
        summary=s,
    )


def _usage_point_path(entry: ParsedEntry) -> str | None:
    """``.../UsagePoint/{up}`` from the summary's self href (``.../UsageSummary/{id}``) or, failing
    that, its up href (``.../UsageSummary``)."""
    for href, strip in ((entry.self_href, 2), (entry.up_href, 1)):
        if not href:
            continue
        path = href_path(href)
        for _ in range(strip):
            path = path.rstrip("/").rsplit("/", 1)[0]
        if path.rstrip("/").rsplit("/", 2)[-2:-1] == ["UsagePoint"]:
            return path
    return None


# RetailCustomer --------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class ServiceAddress:
    """A ServiceLocation and the UsagePoint it links (None when it links none)."""

    usage_point_id: str | None
    location: ServiceLocation


@dataclass(frozen=True, slots=True)
class CustomerDetails:
    """What a RetailCustomer answer says about the customer: ``name`` (``Customer/customerName``),
    ``agreements`` (CustomerAgreement per UsagePoint) and ``addresses`` (ServiceLocation per
    UsagePoint). Customer data: never log it."""

    name: str | None = None
    agreements: tuple[CustomerAgreement, ...] = ()
    addresses: tuple[ServiceAddress, ...] = ()

    def to_dict(self) -> dict[str, object]:
        return {
            "name": self.name,
            "agreements": [
                {"agreement_id": a.agreement_id, "kind": a.kind, "sign_date": a.sign_date}
                for a in self.agreements
            ],
            "service_addresses": [
                {
                    "usage_point_id": a.usage_point_id,
                    "street": a.location.street,
                    "town": a.location.town,
                    "state": a.location.state,
                    "postal_code": a.location.postal_code,
                    "address": a.location.one_line(),
                }
                for a in self.addresses
            ],
        }


def read_customer(
    sources: BillSource | Sequence[BillSource], *, names: Sequence[str] | None = None
) -> CustomerDetails:
    """The customer details in ``sources`` (Batch/RetailCustomer answers, or any documents: the
    customer-namespace entries are picked out). A ServiceLocation's UsagePoint is the
    ``related`` link naming ``.../UsagePoint/{id}``. Repeated locations are kept once."""
    name = None
    agreements: list[CustomerAgreement] = []
    addresses: list[ServiceAddress] = []
    for entry in _entries(sources, names):
        obj = entry.obj
        if isinstance(obj, RetailCustomer) and obj.name and name is None:
            name = obj.name
        elif isinstance(obj, CustomerAgreement) and obj not in agreements:
            agreements.append(obj)
        elif isinstance(obj, ServiceLocation):
            point = next(
                (
                    usage_point_id(href_path(h))
                    for h in entry.related
                    if "/UsagePoint/" in href_path(h)
                ),
                None,
            )
            address = ServiceAddress(point, obj)
            if address not in addresses:
                addresses.append(address)
    return CustomerDetails(name=name, agreements=tuple(agreements), addresses=tuple(addresses))


def _entries(
    sources: BillSource | Sequence[BillSource], names: Sequence[str] | None
) -> Iterable[ParsedEntry]:
    if isinstance(sources, str | Path | bytes) or hasattr(sources, "read"):
        listed: list[BillSource] = [sources]  # type: ignore[list-item]
    else:
        listed = list(sources)  # type: ignore[arg-type]
    for index, source in enumerate(listed):
        label = names[index] if names is not None else None
        if isinstance(source, bytes):
            yield from iter_entries(io.BytesIO(source), name=label or "<bytes>")
        else:
            yield from iter_entries(source, name=label or source_name(source))


def _utc(epoch: int | None) -> datetime | None:
    return None if epoch is None else datetime.fromtimestamp(epoch, UTC)

"""The ESPI (Green Button) data model shared by the parser, the writer and the CSV layouts.

Plain frozen dataclasses, one per ESPI object, holding the values exactly as the XML carries
them: times are integer epoch seconds (UTC), readings are raw integers (``value`` x
10**powerOfTenMultiplier in the ReadingType's ``uom``), costs are integers in
hundred-thousandths of the currency unit. Nothing is scaled or converted here except by the
explicit helpers at the bottom (:func:`scaled_value`, :func:`display_value`), which use exact
:class:`~decimal.Decimal` arithmetic.

Objects:
    :class:`UsagePoint`, :class:`MeterReading`, :class:`ReadingType`, :class:`IntervalBlock`
    (with :class:`IntervalReading`), :class:`LocalTimeParameters`, :class:`UsageSummary`
    (with :class:`SummaryMeasurement`, :class:`LineItem`, :class:`TariffRiderRef`),
    :class:`RetailCustomer`, :class:`CustomerAgreement`, :class:`ServiceLocation`,
    :class:`Authorization`, :class:`BatchList`, :class:`ServiceStatus`.

:class:`Entry` is the Atom envelope around one object: its id, its ``self`` / ``up`` / ``related``
link hrefs, published / updated times and the object itself.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from decimal import Decimal
from enum import IntEnum
from typing import NamedTuple

ESPI_NS = "http://naesb.org/espi"
ATOM_NS = "http://www.w3.org/2005/Atom"
CUSTOMER_NS = "http://naesb.org/espi/customer"


class ServiceKind(IntEnum):
    """``ServiceCategory/kind``."""

    ELECTRICITY = 0
    GAS = 1
    WATER = 2
    TIME = 3
    HEAT = 4
    REFUSE = 5
    SEWERAGE = 6
    RATES = 7
    TV_LICENCE = 8
    INTERNET = 9


class FlowDirection(IntEnum):
    """``ReadingType/flowDirection`` values this project acts on."""

    NONE = 0
    FORWARD = 1  # delivered to the customer
    NET = 4
    REVERSE = 19  # received from the customer, e.g. solar export


class Commodity(IntEnum):
    NONE = 0
    ELECTRICITY_SECONDARY_METERED = 1
    ELECTRICITY_PRIMARY_METERED = 2
    COMMUNICATION = 3
    AIR = 4
    INSULATIVE_GAS = 5
    INSULATIVE_OIL = 6
    NATURAL_GAS = 7
    PROPANE = 8
    POTABLE_WATER = 9


class UnitOfMeasure(IntEnum):
    """The ``uom`` codes Green Button data uses in practice."""

    W = 38
    M3 = 42
    WH = 72
    VARH = 73
    FT3 = 119
    THERM = 169


class AuthorizationStatus(IntEnum):
    REVOKED = 0
    ACTIVE = 1
    DENIED = 2


class Quality(IntEnum):
    """``ReadingQuality/quality`` (QualityOfReading)."""

    VALID = 0
    MANUALLY_EDITED = 7
    ESTIMATED_USING_REFERENCE_DAY = 8
    ESTIMATED_USING_LINEAR_INTERPOLATION = 9
    QUESTIONABLE = 10
    DERIVED = 11
    PROJECTED = 12
    MIXED = 13
    RAW = 14
    NORMALIZED_FOR_WEATHER = 15
    OTHER = 16
    VALIDATED = 17
    VERIFIED = 18
    REVENUE_QUALITY = 19


@dataclass(frozen=True, slots=True)
class DateTimeInterval:
    """``start`` (epoch seconds, UTC) and ``duration`` (seconds)."""

    start: int
    duration: int

    @property
    def end(self) -> int:
        return self.start + self.duration


@dataclass(frozen=True, slots=True)
class UsagePoint:
    kind: int | None = ServiceKind.ELECTRICITY
    status: int | None = None
    role_flags: str | None = None  # hexBinary, e.g. "01"


@dataclass(frozen=True, slots=True)
class MeterReading:
    """Carries no data of its own: its ReadingType and IntervalBlocks hang off its links."""


@dataclass(frozen=True, slots=True)
class RationalNumber:
    numerator: int | None = None
    denominator: int | None = None


@dataclass(frozen=True, slots=True)
class ReadingType:
    """Every ReadingType field of the ESPI schema, in schema order."""

    accumulation_behaviour: int | None = None
    commodity: int | None = None
    consumption_tier: int | None = None
    currency: int | None = None
    data_qualifier: int | None = None
    default_quality: int | None = None
    flow_direction: int | None = None
    interval_length: int | None = None
    kind: int | None = None
    phase: int | None = None
    power_of_ten_multiplier: int | None = None
    time_attribute: int | None = None
    tou: int | None = None
    uom: int | None = None
    cpp: int | None = None
    interharmonic: RationalNumber | None = None
    measuring_period: int | None = None
    argument: RationalNumber | None = None


class IntervalReading(NamedTuple):
    """One reading. ``value`` is raw: multiply by 10**powerOfTenMultiplier of its ReadingType.

    A named tuple rather than a dataclass: a two-year feed holds ~70,000 of them and tuples are
    several times cheaper to create.
    """

    start: int
    duration: int
    value: int | None
    cost: int | None = None
    qualities: tuple[int, ...] = ()
    tou: int | None = None
    consumption_tier: int | None = None
    cpp: int | None = None

    @property
    def end(self) -> int:
        return self.start + self.duration


@dataclass(frozen=True, slots=True)
class IntervalBlock:
    interval: DateTimeInterval | None
    readings: Sequence[IntervalReading] = ()


@dataclass(frozen=True, slots=True)
class LocalTimeParameters:
    """Offsets in seconds; DST rules as the 32-bit ESPI bitfields (see :mod:`.localtime`)."""

    tz_offset: int
    dst_offset: int = 0
    dst_start_rule: int = 0
    dst_end_rule: int = 0
    #: Why these parameters cannot be used (where and what), when the document's could not be
    #: read; :func:`~scwadd_espi.localtime.tzinfo_for` then refuses them unless given a zone.
    unusable: str | None = None


@dataclass(frozen=True, slots=True)
class SummaryMeasurement:
    power_of_ten_multiplier: int | None = None
    time_stamp: int | None = None
    uom: int | None = None
    value: int | None = None
    reading_type_ref: str | None = None


@dataclass(frozen=True, slots=True)
class LineItem:
    """One ``costAdditionalDetailLastPeriod`` line."""

    note: str
    item_kind: int
    amount: int | None = None
    rounding: int | None = None
    date_time: int | None = None
    measurement: SummaryMeasurement | None = None
    unit_cost: int | None = None
    item_period: DateTimeInterval | None = None


@dataclass(frozen=True, slots=True)
class TariffRiderRef:
    """One ``tariffRiderRefs/tariffRiderRef``: a rate option on the base tariff (e.g. ``NEM2``).

    ``enrollment_status`` is ESPI's EnrollmentStatus (``unenrolled``, ``enrolled``,
    ``enrolledPending``); ``effective_date`` epoch seconds."""

    rider_type: str
    enrollment_status: str
    effective_date: int | None = None


@dataclass(frozen=True, slots=True)
class UsageSummary:
    """Every UsageSummary element of the ESPI schema (``espi.xsd`` complexType UsageSummary),
    in schema order. Amounts are hundred-thousandths of the currency; times epoch seconds."""

    status_time_stamp: int
    billing_period: DateTimeInterval | None = None
    bill_last_period: int | None = None
    bill_to_date: int | None = None
    cost_additional_last_period: int | None = None
    cost_additional_detail_last_period: tuple[LineItem, ...] = ()
    currency: int | None = None
    overall_consumption_last_period: SummaryMeasurement | None = None
    current_billing_period_overall_consumption: SummaryMeasurement | None = None
    current_day_last_year_net_consumption: SummaryMeasurement | None = None
    current_day_net_consumption: SummaryMeasurement | None = None
    current_day_overall_consumption: SummaryMeasurement | None = None
    peak_demand: SummaryMeasurement | None = None
    previous_day_last_year_overall_consumption: SummaryMeasurement | None = None
    previous_day_net_consumption: SummaryMeasurement | None = None
    previous_day_overall_consumption: SummaryMeasurement | None = None
    quality_of_reading: int | None = None
    ratchet_demand: SummaryMeasurement | None = None
    ratchet_demand_period: DateTimeInterval | None = None
    commodity: int | None = None
    tariff_profile: str | None = None
    read_cycle: str | None = None
    tariff_rider_refs: tuple[TariffRiderRef, ...] = ()
    #: ``billingChargeSource/agencyName``: who bills the charges (e.g. a CCA).
    billing_charge_source: str | None = None


@dataclass(frozen=True, slots=True)
class RetailCustomer:
    """The customer's name (``Customer/customerName`` in the customer namespace)."""

    name: str | None


@dataclass(frozen=True, slots=True)
class CustomerAgreement:
    """``CustomerAgreement`` (customer namespace): one service agreement; at PG&E one per
    UsagePoint. ``sign_date`` epoch seconds."""

    agreement_id: str | None = None
    sign_date: int | None = None
    kind: str | None = None  # the Document ``type``, e.g. "electric"


@dataclass(frozen=True, slots=True)
class ServiceLocation:
    """``ServiceLocation`` (customer namespace): where a UsagePoint is. ``street`` is
    ``mainAddress/streetDetail/addressGeneral`` (else the street parts joined), ``town`` and
    ``state`` come from ``townDetail``."""

    street: str | None = None
    town: str | None = None
    state: str | None = None
    postal_code: str | None = None

    def one_line(self) -> str:
        """``12 Alder St, Oakland, CA 94610`` (the parts present)."""
        region = " ".join(p for p in (self.state, self.postal_code) if p)
        return ", ".join(p for p in (self.street, self.town, region) if p)


@dataclass(frozen=True, slots=True)
class Authorization:
    """An ESPI Authorization. Tokens are deliberately absent: they never belong in documents."""

    status: int
    expires_at: int
    scope: str
    resource_uri: str
    authorization_uri: str
    token_type: str = "Bearer"  # noqa: S105 - the OAuth token kind, not a secret
    authorized_period: DateTimeInterval | None = None
    published_period: DateTimeInterval | None = None
    grant_type: str | None = None
    error: str | None = None
    error_description: str | None = None
    customer_resource_uri: str | None = None


@dataclass(frozen=True, slots=True)
class BatchList:
    resources: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class ServiceStatus:
    current_status: int  # 1 normal, 0 unavailable


EspiObject = (
    UsagePoint
    | MeterReading
    | ReadingType
    | IntervalBlock
    | LocalTimeParameters
    | UsageSummary
    | RetailCustomer
    | CustomerAgreement
    | ServiceLocation
    | Authorization
    | BatchList
    | ServiceStatus
)


def utc_now() -> datetime:
    return datetime.now(UTC).replace(microsecond=0)


@dataclass(frozen=True, slots=True)
class Entry:
    """An Atom entry: the envelope that places one ESPI object in the resource tree.

    ``self_href`` names the object; ``up_href`` its collection; ``related`` its children and the
    objects it refers to (a MeterReading's ReadingType and IntervalBlock collection, a
    UsagePoint's MeterReading collection and LocalTimeParameters).
    """

    content: EspiObject
    self_href: str
    id: str
    up_href: str | None = None
    related: tuple[str, ...] = ()
    title: str | None = None
    published: datetime = field(default_factory=utc_now)
    updated: datetime = field(default_factory=utc_now)


# Exact scaling ---------------------------------------------------------------------------------


def scaled_value(raw: int, power_of_ten_multiplier: int | None) -> Decimal:
    """``raw`` x 10**multiplier, exactly: ``scaled_value(1449000, -3) == Decimal("1449")``."""
    return Decimal(raw).scaleb(power_of_ten_multiplier or 0)


# Per-unit: the unit the CSV speaks and the power of ten that takes the ESPI base unit there.
_DISPLAY_UNITS: dict[int, tuple[str, int]] = {
    UnitOfMeasure.WH: ("kWh", -3),
    UnitOfMeasure.W: ("kW", -3),
    UnitOfMeasure.VARH: ("kVArh", -3),
    UnitOfMeasure.THERM: ("therms", 0),
    UnitOfMeasure.FT3: ("ft3", 0),
    UnitOfMeasure.M3: ("m3", 0),
}


def display_unit(uom: int | None) -> tuple[str, int]:
    """The unit a person reads (kWh, therms, ...) and the power of ten from the ESPI unit to it."""
    if uom is None:
        return ("", 0)
    return _DISPLAY_UNITS.get(uom, (f"uom{uom}", 0))


def display_value(raw: int, reading_type: ReadingType) -> Decimal:
    """A raw reading in the unit :func:`display_unit` names, exactly (1449000, -3, Wh → 1.449)."""
    _unit, shift = display_unit(reading_type.uom)
    exact = Decimal(raw).scaleb((reading_type.power_of_ten_multiplier or 0) + shift)
    return exact.normalize() if exact != 0 else Decimal(0)

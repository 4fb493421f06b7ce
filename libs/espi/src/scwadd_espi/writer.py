"""A streaming ESPI (Green Button) XML writer.

Documents are written with :class:`lxml.etree.xmlfile`, one entry at a time, so a feed of any size
is written in constant memory as long as its entries come from an iterator. Every document this
module writes validates against the NAESB ESPI 4.0 schema (``espi.xsd``; customer data against
``customer.xsd``): elements are emitted in schema order.

Two styles:

``"generic"`` (default)
    Default namespaces (Atom on the feed, ESPI on each ``content`` object), ``urn:uuid`` ids,
    relative hrefs under ``/espi/1_1/resource``, ReadingType and LocalTimeParameters as top-level
    resources (``ReadingType/{id}``) in entries of their own, like the Green Button Alliance sample.
``"pge"``
    PG&E's shapes: prefixes ``ns0`` (ESPI) and ``ns1`` (Atom), opaque base64 resource ids,
    hrefs under ``https://api.pge.com/GreenButtonConnect/espi/1_1/resource`` such as
    ``Subscription/{sub}/UsagePoint/{up}/MeterReading/{mr}/IntervalBlock/{start}``, IntervalBlock
    ids that are their start epoch, and the ReadingType nested under its MeterReading
    (``.../MeterReading/{mr}/ReadingType/{rt}``, linked ``related`` from the MeterReading, written
    right after it in the same feed).

ESPI times are always integer epoch seconds; ``times_in_ms=True`` writes Authorization and
UsageSummary times in milliseconds, as older PG&E documents do (the parser accepts both).

API (stable; extend, don't break):

``EspiWriter(out, *, style="generic", feed_id=None, title=None, self_href=None, updated=None,
times_in_ms=False)``
    Context manager writing an Atom feed to ``out`` (a path or a binary file object);
    ``write(entry)`` streams one :class:`~scwadd_espi.model.Entry`.
``write_entry_document(out, entry, *, style="generic", times_in_ms=False)``
    A document whose root is a single Atom entry.
``write_object_document(out, obj, *, style="generic", times_in_ms=False)``
    A bare ESPI document (e.g. a BatchList notification or ServiceStatus).
``object_element(obj, *, style="generic", times_in_ms=False) -> etree._Element``
    One ESPI object as an element (for callers assembling their own documents).
``to_bytes(obj_or_entry, *, style="generic", times_in_ms=False) -> bytes``
    Convenience: a bare object or a single entry as a complete document.
``ResourcePaths(style, base=None)``
    The hrefs of each resource in a style (``usage_point(sub, up)``, ``meter_reading(...)``, ...).
``UsagePointData``, ``MeterReadingData``, ``usage_entries(subscription_id, usage_points, *,
style, published, updated)``, ``write_usage_feed(out, subscription_id, usage_points, *, style,
...)``
    The whole resource tree of a subscription as entries with every link set, in either style;
    IntervalBlocks are drawn lazily from each MeterReadingData's iterable.
``opaque_id(seed) -> str``
    A stable, URL-safe, base64-looking id for PG&E-style documents.
"""

from __future__ import annotations

import base64
import contextlib
import hashlib
import io
import uuid
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from types import TracebackType
from typing import IO, Any, Literal

from lxml import etree

from scwadd_espi.localtime import format_dst_rule
from scwadd_espi.model import (
    ATOM_NS,
    CUSTOMER_NS,
    ESPI_NS,
    Authorization,
    BatchList,
    CustomerAgreement,
    DateTimeInterval,
    Entry,
    EspiObject,
    IntervalBlock,
    IntervalReading,
    LineItem,
    LocalTimeParameters,
    MeterReading,
    RationalNumber,
    ReadingType,
    RetailCustomer,
    ServiceLocation,
    ServiceStatus,
    SummaryMeasurement,
    UsagePoint,
    UsageSummary,
    utc_now,
)

Style = Literal["generic", "pge"]
Output = str | Path | IO[bytes]

PGE_BASE = "https://api.pge.com/GreenButtonConnect/espi/1_1/resource"
GENERIC_BASE = "/espi/1_1/resource"

_NSMAPS: dict[str, dict[str, dict[str | None, str]]] = {
    "pge": {
        "atom": {"ns0": ESPI_NS, "ns1": ATOM_NS},
        "espi": {"ns0": ESPI_NS},
        "customer": {"ns2": CUSTOMER_NS},
    },
    "generic": {
        "atom": {None: ATOM_NS},
        "espi": {None: ESPI_NS},
        "customer": {None: CUSTOMER_NS},
    },
}


def _check_style(style: str) -> None:
    if style not in _NSMAPS:
        raise ValueError(f"unknown ESPI style {style!r}: expected 'generic' or 'pge'")


def _atom(name: str) -> str:
    return f"{{{ATOM_NS}}}{name}"


def atom_time(moment: datetime) -> str:
    """Atom ``published`` / ``updated`` text: UTC, second precision, ``Z``."""
    if moment.tzinfo is None:
        raise ValueError("Atom times must be timezone-aware")
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def opaque_id(seed: str) -> str:
    """A stable id that looks like PG&E's: base64 text that means nothing to the reader."""
    digest = hashlib.sha256(seed.encode()).digest()[:15]
    return base64.urlsafe_b64encode(digest).decode()


def uuid_urn(seed: str) -> str:
    return f"urn:uuid:{uuid.uuid5(uuid.NAMESPACE_URL, seed)}"


# One ESPI object → one element -----------------------------------------------------------------


class _Builder:
    """Appends ESPI children in schema order; ``None`` values are simply left out."""

    def __init__(self, ns: str, times_in_ms: bool = False) -> None:
        self.ns = ns
        self.times_in_ms = times_in_ms

    def q(self, name: str) -> str:
        return f"{{{self.ns}}}{name}"

    def text(self, parent: etree._Element, name: str, value: object) -> None:
        if value is not None:
            etree.SubElement(parent, self.q(name)).text = str(value)

    def time(self, parent: etree._Element, name: str, value: int | None, ms: bool = False) -> None:
        if value is not None:
            self.text(parent, name, value * 1000 if ms else value)

    def interval(
        self, parent: etree._Element, name: str, span: DateTimeInterval | None, ms: bool = False
    ) -> None:
        if span is None:
            return
        element = etree.SubElement(parent, self.q(name))
        self.text(element, "duration", span.duration)
        self.time(element, "start", span.start, ms)

    def rational(self, parent: etree._Element, name: str, value: RationalNumber | None) -> None:
        if value is None:
            return
        element = etree.SubElement(parent, self.q(name))
        self.text(element, "numerator", value.numerator)
        self.text(element, "denominator", value.denominator)

    def summary(self, parent: etree._Element, name: str, m: SummaryMeasurement | None) -> None:
        if m is None:
            return
        element = etree.SubElement(parent, self.q(name))
        self.text(element, "powerOfTenMultiplier", m.power_of_ten_multiplier)
        self.time(element, "timeStamp", m.time_stamp, self.times_in_ms)
        self.text(element, "uom", m.uom)
        self.text(element, "value", m.value)
        self.text(element, "readingTypeRef", m.reading_type_ref)


def object_element(
    obj: EspiObject, *, style: Style = "generic", times_in_ms: bool = False
) -> etree._Element:
    """One ESPI object as an element, children in schema order."""
    _check_style(style)
    nsmaps = _NSMAPS[style]
    if isinstance(obj, RetailCustomer):
        b = _Builder(CUSTOMER_NS)
        root = etree.Element(b.q("Customer"), nsmap=nsmaps["customer"])
        b.text(root, "customerName", obj.name)
        return root
    if isinstance(obj, CustomerAgreement | ServiceLocation):
        return _customer_object(obj, nsmaps["customer"])
    b = _Builder(ESPI_NS, times_in_ms)
    root = etree.Element(b.q(type(obj).__name__), nsmap=nsmaps["espi"])
    if isinstance(obj, UsagePoint):
        b.text(root, "roleFlags", obj.role_flags)
        if obj.kind is not None:
            b.text(etree.SubElement(root, b.q("ServiceCategory")), "kind", int(obj.kind))
        b.text(root, "status", obj.status)
    elif isinstance(obj, MeterReading):
        pass
    elif isinstance(obj, ReadingType):
        _reading_type(b, root, obj)
    elif isinstance(obj, IntervalBlock):
        b.interval(root, "interval", obj.interval)
        for reading in obj.readings:
            _interval_reading(b, root, reading)
    elif isinstance(obj, LocalTimeParameters):
        b.text(root, "dstEndRule", format_dst_rule(obj.dst_end_rule))
        b.text(root, "dstOffset", obj.dst_offset)
        b.text(root, "dstStartRule", format_dst_rule(obj.dst_start_rule))
        b.text(root, "tzOffset", obj.tz_offset)
    elif isinstance(obj, UsageSummary):
        _usage_summary(b, root, obj)
    elif isinstance(obj, Authorization):
        _authorization(b, root, obj)
    elif isinstance(obj, BatchList):
        for resource in obj.resources:
            b.text(root, "resources", resource)
    elif isinstance(obj, ServiceStatus):
        b.text(root, "currentStatus", obj.current_status)
    else:  # pragma: no cover - the type union is closed
        raise TypeError(f"not an ESPI object: {obj!r}")
    return root


def _customer_object(
    obj: CustomerAgreement | ServiceLocation, nsmap: dict[str | None, str]
) -> etree._Element:
    """A CustomerAgreement or ServiceLocation in customer.xsd's element order."""
    b = _Builder(CUSTOMER_NS)
    if isinstance(obj, CustomerAgreement):
        root = etree.Element(b.q("CustomerAgreement"), nsmap=nsmap)
        b.text(root, "type", obj.kind)
        b.text(root, "signDate", obj.sign_date)
        b.text(root, "agreementId", obj.agreement_id)
        return root
    root = etree.Element(b.q("ServiceLocation"), nsmap=nsmap)
    address = etree.SubElement(root, b.q("mainAddress"))
    if obj.street is not None:
        b.text(etree.SubElement(address, b.q("streetDetail")), "addressGeneral", obj.street)
    if obj.town is not None or obj.state is not None:
        town = etree.SubElement(address, b.q("townDetail"))
        b.text(town, "name", obj.town)
        b.text(town, "stateOrProvince", obj.state)
    b.text(address, "postalCode", obj.postal_code)
    return root


def _reading_type(b: _Builder, root: etree._Element, rt: ReadingType) -> None:
    b.text(root, "accumulationBehaviour", rt.accumulation_behaviour)
    b.text(root, "commodity", rt.commodity)
    b.text(root, "consumptionTier", rt.consumption_tier)
    b.text(root, "currency", rt.currency)
    b.text(root, "dataQualifier", rt.data_qualifier)
    b.text(root, "defaultQuality", rt.default_quality)
    b.text(root, "flowDirection", rt.flow_direction)
    b.text(root, "intervalLength", rt.interval_length)
    b.text(root, "kind", rt.kind)
    b.text(root, "phase", rt.phase)
    b.text(root, "powerOfTenMultiplier", rt.power_of_ten_multiplier)
    b.text(root, "timeAttribute", rt.time_attribute)
    b.text(root, "tou", rt.tou)
    b.text(root, "uom", rt.uom)
    b.text(root, "cpp", rt.cpp)
    b.rational(root, "interharmonic", rt.interharmonic)
    b.text(root, "measuringPeriod", rt.measuring_period)
    b.rational(root, "argument", rt.argument)


def _interval_reading(b: _Builder, parent: etree._Element, reading: IntervalReading) -> None:
    element = etree.SubElement(parent, b.q("IntervalReading"))
    b.text(element, "cost", reading.cost)
    for quality in reading.qualities:
        b.text(etree.SubElement(element, b.q("ReadingQuality")), "quality", quality)
    b.interval(element, "timePeriod", DateTimeInterval(reading.start, reading.duration))
    b.text(element, "value", reading.value)
    b.text(element, "consumptionTier", reading.consumption_tier)
    b.text(element, "tou", reading.tou)
    b.text(element, "cpp", reading.cpp)


def _line_item(b: _Builder, parent: etree._Element, item: LineItem) -> None:
    element = etree.SubElement(parent, b.q("costAdditionalDetailLastPeriod"))
    b.text(element, "amount", item.amount)
    b.text(element, "rounding", item.rounding)
    b.time(element, "dateTime", item.date_time, b.times_in_ms)
    b.text(element, "note", item.note)
    b.summary(element, "measurement", item.measurement)
    b.text(element, "itemKind", item.item_kind)
    b.text(element, "unitCost", item.unit_cost)
    b.interval(element, "itemPeriod", item.item_period, b.times_in_ms)


def _usage_summary(b: _Builder, root: etree._Element, s: UsageSummary) -> None:
    ms = b.times_in_ms
    b.interval(root, "billingPeriod", s.billing_period, ms)
    b.text(root, "billLastPeriod", s.bill_last_period)
    b.text(root, "billToDate", s.bill_to_date)
    b.text(root, "costAdditionalLastPeriod", s.cost_additional_last_period)
    for item in s.cost_additional_detail_last_period:
        _line_item(b, root, item)
    b.text(root, "currency", s.currency)
    for name, measurement in (
        ("overallConsumptionLastPeriod", s.overall_consumption_last_period),
        ("currentBillingPeriodOverAllConsumption", s.current_billing_period_overall_consumption),
        ("currentDayLastYearNetConsumption", s.current_day_last_year_net_consumption),
        ("currentDayNetConsumption", s.current_day_net_consumption),
        ("currentDayOverallConsumption", s.current_day_overall_consumption),
        ("peakDemand", s.peak_demand),
        ("previousDayLastYearOverallConsumption", s.previous_day_last_year_overall_consumption),
        ("previousDayNetConsumption", s.previous_day_net_consumption),
        ("previousDayOverallConsumption", s.previous_day_overall_consumption),
    ):
        b.summary(root, name, measurement)
    b.text(root, "qualityOfReading", s.quality_of_reading)
    b.summary(root, "ratchetDemand", s.ratchet_demand)
    b.interval(root, "ratchetDemandPeriod", s.ratchet_demand_period, ms)
    b.time(root, "statusTimeStamp", s.status_time_stamp, ms)
    b.text(root, "commodity", s.commodity)
    b.text(root, "tariffProfile", s.tariff_profile)
    b.text(root, "readCycle", s.read_cycle)
    if s.tariff_rider_refs:
        refs = etree.SubElement(root, b.q("tariffRiderRefs"))
        for rider in s.tariff_rider_refs:
            ref = etree.SubElement(refs, b.q("tariffRiderRef"))
            b.text(ref, "riderType", rider.rider_type)
            b.text(ref, "enrollmentStatus", rider.enrollment_status)
            b.time(ref, "effectiveDate", rider.effective_date or 0, ms)
    if s.billing_charge_source is not None:
        source = etree.SubElement(root, b.q("billingChargeSource"))
        b.text(source, "agencyName", s.billing_charge_source)


def _authorization(b: _Builder, root: etree._Element, a: Authorization) -> None:
    ms = b.times_in_ms
    b.interval(root, "authorizedPeriod", a.authorized_period, ms)
    b.interval(root, "publishedPeriod", a.published_period, ms)
    b.text(root, "status", a.status)
    b.time(root, "expires_at", a.expires_at, ms)
    b.text(root, "grant_type", a.grant_type)
    b.text(root, "scope", a.scope)
    b.text(root, "token_type", a.token_type)
    b.text(root, "error", a.error)
    b.text(root, "error_description", a.error_description)
    b.text(root, "resourceURI", a.resource_uri)
    b.text(root, "authorizationURI", a.authorization_uri)
    b.text(root, "customerResourceURI", a.customer_resource_uri)


# Documents ---------------------------------------------------------------------------------------


def _text_element(xf: Any, name: str, text: str) -> None:
    with xf.element(_atom(name)):
        xf.write(text)


def _link(xf: Any, rel: str, href: str) -> None:
    with xf.element(_atom("link"), href=href, rel=rel):
        pass


def _write_entry(
    xf: Any, entry: Entry, style: Style, times_in_ms: bool, nsmap: dict[str | None, str] | None
) -> None:
    attrs: dict[str, Any] = {"nsmap": nsmap} if nsmap else {}
    with xf.element(_atom("entry"), **attrs):
        _text_element(xf, "id", entry.id)
        _link(xf, "self", entry.self_href)
        if entry.up_href:
            _link(xf, "up", entry.up_href)
        for href in entry.related:
            _link(xf, "related", href)
        _text_element(xf, "title", entry.title or "")
        with xf.element(_atom("content")):
            xf.write(object_element(entry.content, style=style, times_in_ms=times_in_ms))
        _text_element(xf, "published", atom_time(entry.published))
        _text_element(xf, "updated", atom_time(entry.updated))


class EspiWriter:
    """Streams an Atom feed of ESPI entries to a path or a binary file object.

    >>> with EspiWriter(buffer, style="pge", self_href=...) as feed:
    ...     for entry in entries:
    ...         feed.write(entry)
    """

    def __init__(
        self,
        out: Output,
        *,
        style: Style = "generic",
        feed_id: str | None = None,
        title: str | None = None,
        self_href: str | None = None,
        updated: datetime | None = None,
        times_in_ms: bool = False,
    ) -> None:
        _check_style(style)
        self._out = str(out) if isinstance(out, Path) else out
        self.style: Style = style
        self._feed_id = feed_id or f"urn:uuid:{uuid.uuid4()}"
        self._title = title
        self._self_href = self_href
        self._updated = updated or utc_now()
        self._times_in_ms = times_in_ms
        self._stack: contextlib.ExitStack | None = None
        self._xf: Any = None
        self.entries_written = 0

    def __enter__(self) -> EspiWriter:
        stack = contextlib.ExitStack()
        try:
            self._xf = stack.enter_context(etree.xmlfile(self._out, encoding="utf-8"))
            self._xf.write_declaration()
            stack.enter_context(self._xf.element(_atom("feed"), nsmap=_NSMAPS[self.style]["atom"]))
            _text_element(self._xf, "id", self._feed_id)
            _text_element(self._xf, "title", self._title or "Green Button Data")
            _text_element(self._xf, "updated", atom_time(self._updated))
            if self._self_href:
                _link(self._xf, "self", self._self_href)
        except BaseException:
            stack.close()
            raise
        self._stack = stack
        return self

    def write(self, entry: Entry) -> None:
        if self._xf is None:
            raise RuntimeError("EspiWriter.write outside its `with` block")
        _write_entry(self._xf, entry, self.style, self._times_in_ms, None)
        self.entries_written += 1

    def write_all(self, entries: Iterable[Entry]) -> None:
        for entry in entries:
            self.write(entry)

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        stack, self._stack, self._xf = self._stack, None, None
        if stack is not None:
            stack.__exit__(exc_type, exc, tb)


def write_entry_document(
    out: Output, entry: Entry, *, style: Style = "generic", times_in_ms: bool = False
) -> None:
    """A document whose root element is one Atom entry."""
    _check_style(style)
    with etree.xmlfile(str(out) if isinstance(out, Path) else out, encoding="utf-8") as xf:
        xf.write_declaration()
        _write_entry(xf, entry, style, times_in_ms, _NSMAPS[style]["atom"])


def write_object_document(
    out: Output, obj: EspiObject, *, style: Style = "generic", times_in_ms: bool = False
) -> None:
    """A bare ESPI document: the object is the root element."""
    with etree.xmlfile(str(out) if isinstance(out, Path) else out, encoding="utf-8") as xf:
        xf.write_declaration()
        xf.write(object_element(obj, style=style, times_in_ms=times_in_ms))


def to_bytes(
    item: EspiObject | Entry, *, style: Style = "generic", times_in_ms: bool = False
) -> bytes:
    buffer = io.BytesIO()
    if isinstance(item, Entry):
        write_entry_document(buffer, item, style=style, times_in_ms=times_in_ms)
    else:
        write_object_document(buffer, item, style=style, times_in_ms=times_in_ms)
    return buffer.getvalue()


# The resource tree of a subscription ------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class ResourcePaths:
    """Where each resource lives in a style. ``base`` defaults to PG&E's API or the generic root."""

    style: Style = "generic"
    base: str | None = None

    @property
    def root(self) -> str:
        if self.base is not None:
            return self.base.rstrip("/")
        return PGE_BASE if self.style == "pge" else GENERIC_BASE

    def subscription(self, sub: str) -> str:
        return f"{self.root}/Subscription/{sub}"

    def batch_subscription(self, sub: str) -> str:
        return f"{self.root}/Batch/Subscription/{sub}"

    def batch_usage_point(self, sub: str, up: str) -> str:
        return f"{self.root}/Batch/Subscription/{sub}/UsagePoint/{up}"

    def usage_points(self, sub: str) -> str:
        return f"{self.subscription(sub)}/UsagePoint"

    def usage_point(self, sub: str, up: str) -> str:
        return f"{self.usage_points(sub)}/{up}"

    def meter_readings(self, sub: str, up: str) -> str:
        return f"{self.usage_point(sub, up)}/MeterReading"

    def meter_reading(self, sub: str, up: str, mr: str) -> str:
        return f"{self.meter_readings(sub, up)}/{mr}"

    def interval_blocks(self, sub: str, up: str, mr: str) -> str:
        return f"{self.meter_reading(sub, up, mr)}/IntervalBlock"

    def interval_block(self, sub: str, up: str, mr: str, block: str) -> str:
        return f"{self.interval_blocks(sub, up, mr)}/{block}"

    def reading_types(self, sub: str, up: str, mr: str) -> str:
        if self.style == "pge":
            return f"{self.meter_reading(sub, up, mr)}/ReadingType"
        return f"{self.root}/ReadingType"

    def reading_type(self, sub: str, up: str, mr: str, rt: str) -> str:
        return f"{self.reading_types(sub, up, mr)}/{rt}"

    def local_time_parameters(self, ltp: str) -> str:
        return f"{self.root}/LocalTimeParameters/{ltp}"

    def usage_summaries(self, sub: str, up: str) -> str:
        return f"{self.usage_point(sub, up)}/UsageSummary"

    def usage_summary(self, sub: str, up: str, summary: str) -> str:
        return f"{self.usage_summaries(sub, up)}/{summary}"

    def retail_customer(self, customer: str) -> str:
        return f"{self.root}/RetailCustomer/{customer}"

    def authorization(self, auth: str) -> str:
        return f"{self.root}/Authorization/{auth}"


@dataclass
class MeterReadingData:
    """One MeterReading: its id, its ReadingType and its IntervalBlocks (any iterable: a
    generator keeps a huge feed out of memory)."""

    id: str
    reading_type: ReadingType
    blocks: Iterable[IntervalBlock]
    reading_type_id: str | None = None
    title: str | None = None


@dataclass
class UsagePointData:
    id: str
    usage_point: UsagePoint
    meter_readings: Sequence[MeterReadingData]
    local_time: LocalTimeParameters | None = None
    local_time_id: str = "1"
    usage_summaries: Sequence[UsageSummary] = field(default_factory=tuple)
    title: str | None = None


def usage_entries(
    subscription_id: str,
    usage_points: Iterable[UsagePointData],
    *,
    style: Style = "generic",
    published: datetime | None = None,
    updated: datetime | None = None,
    paths: ResourcePaths | None = None,
) -> Iterator[Entry]:
    """Every entry of a subscription's usage feed, links set, in the order the style writes."""
    _check_style(style)
    paths = paths or ResourcePaths(style)
    published = published or utc_now()
    updated = updated or published
    sub = subscription_id
    make_id = _entry_id_maker(style)
    written_ltp: set[str] = set()

    def entry(
        content: EspiObject,
        self_href: str,
        up: str,
        related: tuple[str, ...] = (),
        title: str | None = None,
    ) -> Entry:
        return Entry(
            content=content,
            self_href=self_href,
            id=make_id(self_href),
            up_href=up,
            related=related,
            title=title,
            published=published,
            updated=updated,
        )

    for point in usage_points:
        up = point.id
        ltp_href = paths.local_time_parameters(point.local_time_id)
        related = [paths.meter_readings(sub, up)]
        if point.usage_summaries:
            related.append(paths.usage_summaries(sub, up))
        if point.local_time is not None:
            related.append(ltp_href)
        yield entry(
            point.usage_point,
            paths.usage_point(sub, up),
            paths.usage_points(sub),
            tuple(related),
            point.title,
        )
        if point.local_time is not None and ltp_href not in written_ltp:
            written_ltp.add(ltp_href)
            yield entry(
                point.local_time,
                ltp_href,
                ltp_href.rsplit("/", 1)[0],
                title="Local time parameters",
            )
        for meter in point.meter_readings:
            rt_id = meter.reading_type_id or (
                opaque_id(f"rt:{up}:{meter.id}") if style == "pge" else f"{up}-{meter.id}"
            )
            rt_href = paths.reading_type(sub, up, meter.id, rt_id)
            blocks_href = paths.interval_blocks(sub, up, meter.id)
            yield entry(
                MeterReading(),
                paths.meter_reading(sub, up, meter.id),
                paths.meter_readings(sub, up),
                (blocks_href, rt_href),
                meter.title,
            )
            yield entry(
                meter.reading_type,
                rt_href,
                paths.reading_types(sub, up, meter.id),
                title="Type of Meter Reading Data",
            )
            for block in meter.blocks:
                block_id = str(block.interval.start) if block.interval else opaque_id(repr(block))
                yield entry(block, paths.interval_block(sub, up, meter.id, block_id), blocks_href)
        for index, summary in enumerate(point.usage_summaries, start=1):
            yield entry(
                summary,
                paths.usage_summary(sub, up, str(index)),
                paths.usage_summaries(sub, up),
                title="Usage summary",
            )


def _entry_id_maker(style: Style) -> Any:
    if style == "pge":
        return lambda href: uuid_urn(href).upper().replace("URN:UUID:", "urn:uuid:")
    return uuid_urn


def write_usage_feed(
    out: Output,
    subscription_id: str,
    usage_points: Iterable[UsagePointData],
    *,
    style: Style = "generic",
    published: datetime | None = None,
    updated: datetime | None = None,
    paths: ResourcePaths | None = None,
    self_href: str | None = None,
    title: str | None = None,
) -> int:
    """Write a subscription's usage feed; returns the number of entries written."""
    paths = paths or ResourcePaths(style)
    published = published or utc_now()
    with EspiWriter(
        out,
        style=style,
        feed_id=uuid_urn(f"feed:{subscription_id}:{atom_time(published)}"),
        title=title,
        self_href=self_href or paths.batch_subscription(subscription_id),
        updated=updated or published,
    ) as feed:
        feed.write_all(
            usage_entries(
                subscription_id,
                usage_points,
                style=style,
                published=published,
                updated=updated,
                paths=paths,
            )
        )
        return feed.entries_written

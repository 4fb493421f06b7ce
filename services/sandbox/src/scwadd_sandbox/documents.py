"""Every ESPI document the sandbox serves, written by the shared ESPI writer in PG&E's style."""

from __future__ import annotations

import dataclasses
import datetime as dt
import io
import itertools
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any, Final

from lxml import etree
from scwadd_espi.model import (
    ATOM_NS,
    CUSTOMER_NS,
    ESPI_NS,
    Authorization,
    BatchList,
    DateTimeInterval,
    Entry,
    IntervalBlock,
    IntervalReading,
    LocalTimeParameters,
    MeterReading,
    ReadingType,
    RetailCustomer,
    ServiceStatus,
    UsagePoint,
    UsageSummary,
)
from scwadd_espi.writer import (
    MeterReadingData,
    ResourcePaths,
    UsagePointData,
    atom_time,
    object_element,
    to_bytes,
    usage_entries,
    uuid_urn,
)

from scwadd_sandbox import billing, data
from scwadd_sandbox.config import Registration
from scwadd_sandbox.faults import BillingFaults
from scwadd_sandbox.state import (
    CLIENT_SCOPE,
    FB_COST,
    FB_USAGE_SUMMARY,
    FB_USAGE_SUMMARY_COST,
    SHARE_CHOICES,
    USAGE_FBS,
    AuthorizationRecord,
)

STYLE: Final = "pge"
# PG&E's Pacific time: UTC-8, DST +1 h from the 2nd Sunday of March to the 1st Sunday of November.
PACIFIC_TIME = LocalTimeParameters(
    tz_offset=-28800, dst_offset=3600, dst_start_rule=0x360E2000, dst_end_rule=0xB40E2000
)
LOCAL_TIME_ID = "1"
ACCUMULATION_DELTA = 4
KIND_ENERGY = 12
CURRENCY_USD = 840
DATA_QUALIFIER_NORMAL = 12


def resource_paths(espi_base: str) -> ResourcePaths:
    return ResourcePaths(STYLE, base=espi_base)


def reading_type(spec: data.ReadingSpec) -> ReadingType:
    return ReadingType(
        accumulation_behaviour=ACCUMULATION_DELTA,
        commodity=spec.commodity,
        currency=CURRENCY_USD,
        data_qualifier=DATA_QUALIFIER_NORMAL,
        flow_direction=spec.flow_direction,
        interval_length=spec.interval_length,
        kind=KIND_ENERGY,
        power_of_ten_multiplier=spec.power_of_ten_multiplier,
        time_attribute=0,
        uom=spec.uom,
    )


def blocks(
    seed: int,
    point: data.ServicePoint,
    meter: data.Meter,
    start: int,
    end: int,
    with_cost: bool = True,
) -> Iterator[IntervalBlock]:
    """One IntervalBlock per Pacific day holding the readings that start in [start, end);
    readings carry ``cost`` only when ``with_cost`` (function block 12 granted)."""
    day_readings: list[IntervalReading] = []
    day = None
    for item in data.readings(seed, point, meter, start, end):
        item_day = data.pacific_midnight(item.start)
        if day is not None and item_day != day:
            yield _block(day_readings)
            day_readings = []
        day = item_day
        day_readings.append(
            IntervalReading(
                start=item.start,
                duration=item.duration,
                value=item.value,
                cost=item.cost if with_cost else None,
                qualities=(item.quality,),
                tou=item.tou,
            )
        )
    if day_readings:
        yield _block(day_readings)


def _block(readings: Sequence[IntervalReading]) -> IntervalBlock:
    first, last = readings[0], readings[-1]
    return IntervalBlock(
        interval=DateTimeInterval(first.start, last.end - first.start), readings=tuple(readings)
    )


def usage_point_data(
    seed: int,
    point: data.ServicePoint,
    start: int,
    end: int,
    meters: Sequence[data.Meter] | None = None,
    with_cost: bool = True,
) -> UsagePointData:
    chosen = point.meters if meters is None else meters
    return UsagePointData(
        id=point.usage_point_id,
        usage_point=UsagePoint(kind=point.kind, status=1, role_flags="01"),
        meter_readings=[
            MeterReadingData(
                id=meter.meter_reading_id,
                reading_type=reading_type(meter.spec),
                blocks=blocks(seed, point, meter, start, end, with_cost),
                reading_type_id=meter.spec.reading_type_id,
                title=_meter_title(meter.spec),
            )
            for meter in chosen
        ],
        local_time=PACIFIC_TIME,
        local_time_id=LOCAL_TIME_ID,
        title=point.address,
    )


def usage_summaries(
    seed: int,
    record: AuthorizationRecord,
    point: data.ServicePoint,
    start: int,
    end: int,
    faults: BillingFaults | None = None,
) -> list[UsageSummary]:
    """The UsageSummaries ``record`` may read for ``point`` over [start, end) (see
    :mod:`scwadd_sandbox.billing`): none without function block 15 or 16, costs only with 16."""
    if not record.grants(FB_USAGE_SUMMARY, FB_USAGE_SUMMARY_COST):
        return []
    with_cost = record.grants(FB_USAGE_SUMMARY_COST)
    return billing.usage_summaries(seed, record.customer, point, start, end, with_cost, faults)


def usage_summary_feed(
    espi_base: str,
    seed: int,
    record: AuthorizationRecord,
    point: data.ServicePoint,
    start: int,
    end: int,
    faults: BillingFaults | None = None,
) -> bytes:
    paths = resource_paths(espi_base)
    point_data = usage_point_data(seed, point, 0, 0, meters=())
    point_data.usage_summaries = usage_summaries(seed, record, point, start, end, faults)
    entries = [
        entry
        for entry in usage_entries(
            record.subscription_id,
            [point_data],
            style=STYLE,
            published=_published(record),
            paths=paths,
        )
        if isinstance(entry.content, UsageSummary)
    ]
    href = paths.usage_summaries(record.subscription_id, point.usage_point_id)
    return feed(entries, href, "UsageSummary Feed")


def _meter_title(spec: data.ReadingSpec) -> str:
    what = "Gas" if spec.uom == data.UOM_THERM else "Electricity"
    direction = "received" if spec.flow_direction == data.FLOW_REVERSE else "delivered"
    return f"{what} {direction}"


def _published(record: AuthorizationRecord) -> dt.datetime:
    return dt.datetime.fromtimestamp(record.created_at, dt.UTC)


def _entries(
    espi_base: str,
    seed: int,
    record: AuthorizationRecord,
    points: Sequence[data.ServicePoint],
    start: int,
    end: int,
    meters: Sequence[data.Meter] | None = None,
    summaries: BillingFaults | None = None,
) -> Iterator[Entry]:
    """The entries of ``points`` over [start, end); with ``summaries`` (a Batch answer: the
    billing faults in force) also the UsageSummaries of the whole billing periods in the range,
    when the grant includes them."""
    paths = resource_paths(espi_base)
    trees = []
    for point in points:
        tree = usage_point_data(seed, point, start, end, meters, record.grants(FB_COST))
        if summaries is not None:
            tree.usage_summaries = usage_summaries(seed, record, point, start, end, summaries)
        trees.append(tree)
    entries = usage_entries(
        record.subscription_id,
        trees,
        style=STYLE,
        published=_published(record),
        updated=dt.datetime.now(dt.UTC).replace(microsecond=0),
        paths=paths,
    )
    for entry in entries:
        if isinstance(entry.content, IntervalBlock) and entry.content.interval is not None:
            # A day's readings are updated once, when the day ends (what updated-min/max select).
            ended = data.day_updated(entry.content.interval.start)
            entry = dataclasses.replace(entry, updated=dt.datetime.fromtimestamp(ended, dt.UTC))
        elif isinstance(entry.content, UsagePoint):
            # PG&E's UsagePoint links its UsageSummary collection (and LocalTimeParameters/1).
            up_id = entry.self_href.rsplit("/", 1)[1]
            collection = paths.usage_summaries(record.subscription_id, up_id)
            granted = record.grants(FB_USAGE_SUMMARY, FB_USAGE_SUMMARY_COST)
            if granted and collection not in entry.related:
                entry = dataclasses.replace(entry, related=(*entry.related, collection))
        yield entry


PROGRAM_ID_MAPPINGS_ID = "1"


def program_id_mappings_href(espi_base: str) -> str:
    return f"{resource_paths(espi_base).root}/ProgramIdMappings/{PROGRAM_ID_MAPPINGS_ID}"


def program_id_mappings_element() -> etree._Element:
    """``ProgramIdMappings``: what each ``tou`` code of the readings means (ESPI extension)."""
    root = etree.Element(f"{{{ESPI_NS}}}ProgramIdMappings", nsmap={"ns0": ESPI_NS})
    for code, name in sorted(data.TOU_NAMES.items()):
        mapping = etree.SubElement(root, f"{{{ESPI_NS}}}programIdMapping")
        for tag, text in (
            ("tOUorCPPorConsumptionTier", "tou"),
            ("code", str(code)),
            ("name", name),
        ):
            etree.SubElement(mapping, f"{{{ESPI_NS}}}{tag}").text = text
    return root


def program_id_mappings_entry(espi_base: str) -> RawEntry:
    href = program_id_mappings_href(espi_base)
    return RawEntry(
        element=program_id_mappings_element(),
        self_href=href,
        id=uuid_urn(href).upper().replace("URN:UUID:", "urn:uuid:"),
        up_href=href.rsplit("/", 1)[0],
        title="Program Id Mappings",
    )


def program_id_mappings_document(espi_base: str) -> bytes:
    return feed(
        [program_id_mappings_entry(espi_base)],
        program_id_mappings_href(espi_base),
        "ProgramIdMappings Feed",
    )


@dataclass(frozen=True)
class RawEntry:
    """An Atom entry whose content is an element built here: ESPI resources the shared model
    does not carry (ProgramIdMappings, CustomerAgreement, ServiceLocation)."""

    element: etree._Element
    self_href: str
    id: str
    up_href: str | None = None
    related: tuple[str, ...] = ()
    title: str | None = None
    published: dt.datetime = field(default_factory=lambda: dt.datetime.now(dt.UTC))
    updated: dt.datetime = field(default_factory=lambda: dt.datetime.now(dt.UTC))


AnyEntry = Entry | RawEntry
_NSMAP: dict[str | None, str] = {"ns0": ESPI_NS, "ns1": ATOM_NS}


def _atom(name: str) -> str:
    return f"{{{ATOM_NS}}}{name}"


def _write_entry(xf: Any, entry: AnyEntry, times_in_ms: bool) -> None:
    """One Atom entry in PG&E's order: id, links, title, content, published, updated."""
    with xf.element(_atom("entry")):
        _text(xf, "id", entry.id)
        _link(xf, "self", entry.self_href)
        if entry.up_href:
            _link(xf, "up", entry.up_href)
        for href in entry.related:
            _link(xf, "related", href)
        _text(xf, "title", entry.title or "")
        with xf.element(_atom("content")):
            if isinstance(entry, RawEntry):
                xf.write(entry.element)
            else:
                xf.write(object_element(entry.content, style=STYLE, times_in_ms=times_in_ms))
        _text(xf, "published", atom_time(entry.published))
        _text(xf, "updated", atom_time(entry.updated))


def _text(xf: Any, name: str, text: str) -> None:
    with xf.element(_atom(name)):
        xf.write(text)


def _link(xf: Any, rel: str, href: str) -> None:
    with xf.element(_atom("link"), href=href, rel=rel):
        pass


def feed(
    entries: Iterable[AnyEntry],
    self_href: str,
    title: str,
    times_in_ms: bool = False,
) -> bytes:
    """An Atom feed in PG&E's style (``ns0`` ESPI, ``ns1`` Atom), written entry by entry."""
    buffer = io.BytesIO()
    now = dt.datetime.now(dt.UTC)
    with etree.xmlfile(buffer, encoding="utf-8") as xf:
        xf.write_declaration()
        with xf.element(_atom("feed"), nsmap=_NSMAP):
            _text(xf, "id", uuid_urn(f"{self_href}:{now.isoformat()}"))
            _text(xf, "title", title)
            _text(xf, "updated", atom_time(now))
            _link(xf, "self", self_href)
            for entry in entries:
                _write_entry(xf, entry, times_in_ms)
    return buffer.getvalue()


def usage_feed(
    espi_base: str,
    seed: int,
    record: AuthorizationRecord,
    points: Sequence[data.ServicePoint],
    start: int,
    end: int,
    self_href: str,
    billing_faults: BillingFaults | None = None,
) -> bytes:
    """The whole usage tree of ``points`` with readings in [start, end): a Batch answer, with the
    UsageSummaries of the whole billing periods in the range when granted (FB 15/16). A feed
    with electric readings starts with the ProgramIdMappings entry that explains their tou codes."""
    entries: Iterable[AnyEntry] = _entries(
        espi_base, seed, record, points, start, end, summaries=billing_faults or BillingFaults()
    )
    if any(point.kind == data.KIND_ELECTRICITY for point in points):
        entries = itertools.chain([program_id_mappings_entry(espi_base)], entries)
    return feed(entries, self_href, "Green Button Usage Feed")


def bulk_feed(
    espi_base: str,
    seed: int,
    parts: Sequence[tuple[AuthorizationRecord, tuple[int, int]]],
    self_href: str,
    billing_faults: BillingFaults | None = None,
) -> bytes:
    """A Bulk answer: the usage trees of several subscriptions, each over its own range (with
    their UsageSummaries where granted)."""
    faults = billing_faults or BillingFaults()
    entries: Iterable[AnyEntry] = itertools.chain.from_iterable(
        _entries(espi_base, seed, record, record.customer.service_points, *span, summaries=faults)
        for record, span in parts
    )
    electric = any(
        point.kind == data.KIND_ELECTRICITY
        for record, _span in parts
        for point in record.customer.service_points
    )
    if electric:
        entries = itertools.chain([program_id_mappings_entry(espi_base)], entries)
    return feed(entries, self_href, "Green Button Bulk Feed")


def usage_point_feed(
    espi_base: str, seed: int, record: AuthorizationRecord, points: Sequence[data.ServicePoint]
) -> bytes:
    """Subscription/{id}/UsagePoint: the UsagePoint entries alone."""
    paths = resource_paths(espi_base)
    entries = [
        entry
        for entry in _entries(espi_base, seed, record, points, 0, 0)
        if isinstance(entry.content, UsagePoint)
    ]
    return feed(entries, paths.usage_points(record.subscription_id), "UsagePoint Feed")


def single_usage_point(
    espi_base: str, seed: int, record: AuthorizationRecord, point: data.ServicePoint
) -> bytes:
    entry = next(
        entry
        for entry in _entries(espi_base, seed, record, [point], 0, 0)
        if isinstance(entry.content, UsagePoint)
    )
    return to_bytes(entry, style=STYLE)


def meter_reading_feed(
    espi_base: str, seed: int, record: AuthorizationRecord, point: data.ServicePoint
) -> bytes:
    paths = resource_paths(espi_base)
    entries = [
        entry
        for entry in _entries(espi_base, seed, record, [point], 0, 0)
        if isinstance(entry.content, MeterReading | ReadingType)
    ]
    href = paths.meter_readings(record.subscription_id, point.usage_point_id)
    return feed(entries, href, "MeterReading Feed")


def single_meter_reading(
    espi_base: str,
    seed: int,
    record: AuthorizationRecord,
    point: data.ServicePoint,
    meter: data.Meter,
) -> bytes:
    entry = next(
        entry
        for entry in _entries(espi_base, seed, record, [point], 0, 0, [meter])
        if isinstance(entry.content, MeterReading)
    )
    return to_bytes(entry, style=STYLE)


def interval_block_feed(
    espi_base: str,
    seed: int,
    record: AuthorizationRecord,
    point: data.ServicePoint,
    meter: data.Meter,
    start: int,
    end: int,
) -> bytes:
    paths = resource_paths(espi_base)
    entries = (
        entry
        for entry in _entries(espi_base, seed, record, [point], start, end, [meter])
        if isinstance(entry.content, IntervalBlock)
    )
    href = paths.interval_blocks(
        record.subscription_id, point.usage_point_id, meter.meter_reading_id
    )
    return feed(entries, href, "IntervalBlock Feed")


def reading_type_entry(
    espi_base: str,
    seed: int,
    record: AuthorizationRecord,
    point: data.ServicePoint,
    meter: data.Meter,
) -> bytes:
    entry = next(
        entry
        for entry in _entries(espi_base, seed, record, [point], 0, 0, [meter])
        if isinstance(entry.content, ReadingType)
    )
    return to_bytes(entry, style=STYLE)


def local_time_entry(espi_base: str) -> bytes:
    href = resource_paths(espi_base).local_time_parameters(LOCAL_TIME_ID)
    entry = Entry(
        content=PACIFIC_TIME,
        self_href=href,
        id=uuid_urn(href),
        up_href=href.rsplit("/", 1)[0],
        title="DST For North America",
    )
    return to_bytes(entry, style=STYLE)


def _customer_element(tag: str) -> etree._Element:
    return etree.Element(f"{{{CUSTOMER_NS}}}{tag}", nsmap={"ns2": CUSTOMER_NS})


def _sub(parent: etree._Element, *path: str, text: str | None = None) -> etree._Element:
    element = parent
    for tag in path:
        element = etree.SubElement(element, f"{{{CUSTOMER_NS}}}{tag}")
    if text is not None:
        element.text = text
    return element


def customer_agreement_element(point: data.ServicePoint, signed: int) -> etree._Element:
    """One service agreement per UsagePoint (PG&E's SA): its id and when it was signed."""
    root = _customer_element("CustomerAgreement")
    _sub(root, "type", text="gas" if point.kind == data.KIND_GAS else "electric")
    _sub(root, "signDate", text=str(signed))
    _sub(root, "agreementId", text=point.usage_point_id)
    return root


def service_location_element(customer: data.Customer, point: data.ServicePoint) -> etree._Element:
    """Where a UsagePoint is: ``mainAddress/streetDetail/addressGeneral``, as PG&E's clients read
    it, with the town and ZIP code."""
    root = _customer_element("ServiceLocation")
    address = _sub(root, "mainAddress")
    _sub(address, "streetDetail", "addressGeneral", text=point.address)
    town = _sub(address, "townDetail")
    _sub(town, "name", text=customer.city)
    _sub(town, "stateOrProvince", text="CA")
    _sub(address, "postalCode", text=customer.postal_code)
    return root


def local_time_feed(espi_base: str) -> bytes:
    """The LocalTimeParameters collection: PG&E has one, ``LocalTimeParameters/1``."""
    href = resource_paths(espi_base).local_time_parameters(LOCAL_TIME_ID)
    entry = Entry(
        content=PACIFIC_TIME,
        self_href=href,
        id=uuid_urn(href),
        up_href=href.rsplit("/", 1)[0],
        title="DST For North America",
    )
    return feed([entry], href.rsplit("/", 1)[0], "LocalTimeParameters Feed")


SAMPLE_SUBSCRIPTION_ID = "1000001"
SAMPLE_DAYS = 7


def sample_feed(
    espi_base: str, seed: int, customer: data.Customer, data_end: int, self_href: str
) -> bytes:
    """DownloadSampleData: the last week of ``customer``'s data under a sample subscription id,
    the same shapes as any Batch answer."""
    start = data.pacific_midnight_days_before(data_end, SAMPLE_DAYS)
    sample = AuthorizationRecord(
        authorization_id="0",
        subscription_id=SAMPLE_SUBSCRIPTION_ID,
        client_id="",
        customer=customer,
        scope="",
        history_seconds=data_end - start,
        created_at=start,
        expires_at=data_end,
        function_blocks=USAGE_FBS | SHARE_CHOICES["all"][1],
    )
    return usage_feed(espi_base, seed, sample, customer.service_points, start, data_end, self_href)


def retail_customer_feed(espi_base: str, record: AuthorizationRecord, self_href: str) -> bytes:
    """Batch/RetailCustomer: the Customer (its name), then a CustomerAgreement and a
    ServiceLocation per UsagePoint, in the customer namespace, each linking its UsagePoint."""
    paths = resource_paths(espi_base)
    customer = record.customer
    href = paths.retail_customer(customer.retail_customer_id)
    published = _published(record)
    entries: list[AnyEntry] = [
        Entry(
            content=RetailCustomer(name=customer.name),
            self_href=href,
            id=uuid_urn(href),
            up_href=href.rsplit("/", 1)[0],
            title="Retail Customer",
            published=published,
        )
    ]
    account = f"{href}/CustomerAccount/{customer.retail_customer_id}"
    for point in customer.service_points:
        usage_point = paths.usage_point(record.subscription_id, point.usage_point_id)
        agreement = f"{account}/CustomerAgreement/{point.usage_point_id}"
        location = f"{href}/ServiceLocation/{point.usage_point_id}"
        entries.append(
            RawEntry(
                element=customer_agreement_element(point, record.created_at),
                self_href=agreement,
                id=uuid_urn(agreement),
                up_href=agreement.rsplit("/", 1)[0],
                related=(location, usage_point),
                title="Customer Agreement",
                published=published,
            )
        )
        entries.append(
            RawEntry(
                element=service_location_element(customer, point),
                self_href=location,
                id=uuid_urn(location),
                up_href=location.rsplit("/", 1)[0],
                related=(usage_point,),
                title="Service Location",
                published=published,
            )
        )
    return feed(entries, self_href, "Retail Customer Feed")


def authorization_object(espi_base: str, record: AuthorizationRecord) -> Authorization:
    paths = resource_paths(espi_base)
    return Authorization(
        status=1 if record.active else 0,
        expires_at=record.expires_at,
        scope=record.scope,
        resource_uri=paths.batch_subscription(record.subscription_id),
        authorization_uri=paths.authorization(record.authorization_id),
        authorized_period=DateTimeInterval(
            record.created_at, record.expires_at - record.created_at
        ),
        published_period=DateTimeInterval(
            record.created_at - record.history_seconds, record.history_seconds
        ),
        grant_type="authorization_code",
    )


def _authorization_entry(espi_base: str, record: AuthorizationRecord) -> Entry:
    href = resource_paths(espi_base).authorization(record.authorization_id)
    return Entry(
        content=authorization_object(espi_base, record),
        self_href=href,
        id=uuid_urn(href),
        up_href=href.rsplit("/", 1)[0],
        title="Authorization",
        published=_published(record),
    )


def authorization_entry(
    espi_base: str, record: AuthorizationRecord, times_in_ms: bool = False
) -> bytes:
    """``times_in_ms``: epoch milliseconds, as older PG&E Authorization documents carry them."""
    entry = _authorization_entry(espi_base, record)
    return to_bytes(entry, style=STYLE, times_in_ms=times_in_ms)


def _client_authorization_entry(espi_base: str, registration: Registration) -> Entry:
    """The third party's own Authorization (client_credentials): its resourceURI is its Bulk."""
    paths = resource_paths(espi_base)
    href = paths.authorization(registration.client_authorization_id)
    return Entry(
        content=Authorization(
            status=1,
            # The registration does not expire: a year from now, like a customer's grant.
            expires_at=int(dt.datetime.now(dt.UTC).timestamp()) + 365 * 86400,
            scope=CLIENT_SCOPE,
            resource_uri=f"{paths.root}/Batch/Bulk/{registration.bulk_id}",
            authorization_uri=href,
            grant_type="client_credentials",
        ),
        self_href=href,
        id=uuid_urn(href),
        up_href=href.rsplit("/", 1)[0],
        title="Authorization",
    )


def client_authorization_entry(
    espi_base: str, registration: Registration, times_in_ms: bool = False
) -> bytes:
    entry = _client_authorization_entry(espi_base, registration)
    return to_bytes(entry, style=STYLE, times_in_ms=times_in_ms)


def authorization_feed(
    espi_base: str,
    registration: Registration,
    records: Sequence[AuthorizationRecord],
    times_in_ms: bool = False,
) -> bytes:
    """The third party's own Authorization (with its Bulk resourceURI), then its customers'."""
    href = resource_paths(espi_base).root + "/Authorization"
    entries = [
        _client_authorization_entry(espi_base, registration),
        *(_authorization_entry(espi_base, r) for r in records),
    ]
    return feed(entries, href, "Authorization Feed", times_in_ms)


def service_status(status: int = 1) -> bytes:
    return to_bytes(ServiceStatus(current_status=status), style=STYLE)


def batch_list(resources: Sequence[str]) -> bytes:
    return to_bytes(BatchList(resources=tuple(resources)), style=STYLE)

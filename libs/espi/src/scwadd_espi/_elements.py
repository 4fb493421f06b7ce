"""ESPI elements to model objects: the part of the parser both readers share.

:class:`_Reader` turns a parsed ``<entry>`` (or a bare ESPI root) into a :class:`ParsedEntry`
holding model objects, with errors naming the source, line, column and what was expected.
The streaming reader (:mod:`scwadd_espi.parser`) and the split reader
(:mod:`scwadd_espi._split`) both hand it their elements; nothing here imports either of them,
so the parser, the split reader and the reading scan form no import circle.
"""

from __future__ import annotations

import codecs
import re
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from functools import partial
from itertools import repeat
from pathlib import Path
from typing import IO, Any, cast

from lxml import etree

from scwadd_espi.model import (
    ATOM_NS,
    CUSTOMER_NS,
    ESPI_NS,
    Authorization,
    BatchList,
    CustomerAgreement,
    DateTimeInterval,
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
    TariffRiderRef,
    UsagePoint,
    UsageSummary,
)

#: Deepest nesting accepted below an entry (or below a bare document's root). The deepest
#: legitimate path, content/UsageSummary/costAdditionalDetailLastPeriod/measurement/value, is 5.
MAX_NESTING = 10

Source = str | Path | IO[bytes]


_ESPI_NAMESPACES = (ESPI_NS, CUSTOMER_NS, "")
_ATOM = f"{{{ATOM_NS}}}"
_ESPI = f"{{{ESPI_NS}}}"
_DST_RULE = re.compile(r"[0-9A-Fa-f]{8}")
# Times beyond this are milliseconds (10**11 seconds is the year 5138).
_MILLISECONDS_THRESHOLD = 10**11
# Children espi.xsd allows at most once: an IntervalReading's (ReadingQuality alone repeats, and
# Object's extension, which is not read), a DateTimeInterval's and a ReadingQuality's.
_READING_SINGLES = frozenset({"cost", "timePeriod", "value", "consumptionTier", "tou", "cpp"})
_INTERVAL_SINGLES = frozenset({"duration", "start"})
_QUALITY_SINGLES = frozenset({"quality"})
# A duration this long (31.7 years) is no period in seconds; in a document whose start is in
# milliseconds it is read as milliseconds (a month is 2.6 * 10**9 ms).
_MILLISECOND_DURATION = 10**9


class EspiParseError(ValueError):
    """Bad input: names the source, the line and column, and what was expected."""

    def __init__(self, source: str, line: int | None, column: int | None, message: str) -> None:
        self.source = source
        self.line = line
        self.column = column
        self.message = message
        where = source
        if line is not None:
            where += f":{line}"
            if column is not None:
                where += f":{column}"
        super().__init__(f"{where}: {message}")


@dataclass(frozen=True, slots=True)
class ParsedEntry:
    """One ESPI object and its place in the resource tree.

    ``published`` / ``updated`` are epoch seconds (None for a bare document). ``nested`` holds
    ESPI objects found inside this one's content (a ReadingType inside a MeterReading). An
    entry whose content holds several IntervalBlocks gives one ParsedEntry per block, with the
    same links and line.
    """

    obj: EspiObject
    self_href: str | None = None
    up_href: str | None = None
    related: tuple[str, ...] = ()
    id: str | None = None
    title: str | None = None
    published: int | None = None
    updated: int | None = None
    line: int | None = None
    nested: tuple[EspiObject, ...] = field(default=())
    #: What was read leniently (an Atom date without a UTC offset), for the conversion report.
    notes: tuple[str, ...] = ()


def source_name(source: Source) -> str:
    if isinstance(source, str | Path):
        return str(source)
    return str(getattr(source, "name", "<stream>"))


_DECLARED_ENCODING = re.compile(rb"<\?xml[^>]*?encoding\s*=\s*[\"']([A-Za-z0-9._-]+)[\"']")


def declares_utf8(head: bytes) -> bool:
    """Whether a document starting with ``head`` is UTF-8: no UTF-16 byte order mark, and UTF-8
    (or ASCII, a subset) declared or nothing declared."""
    if head.startswith((codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE)):
        return False
    offset = len(codecs.BOM_UTF8) if head.startswith(codecs.BOM_UTF8) else 0
    declared = _DECLARED_ENCODING.match(head, offset)
    return declared is None or declared.group(1).lower() in (
        b"utf-8",
        b"utf8",
        b"us-ascii",
        b"ascii",
    )


# Element helpers -------------------------------------------------------------------------------


def _local(element: etree._Element) -> str:
    tag = element.tag
    if not isinstance(tag, str):
        return ""
    return tag.rpartition("}")[2]


def _namespace(element: etree._Element) -> str:
    tag = element.tag
    if not isinstance(tag, str) or not tag.startswith("{"):
        return ""
    return tag[1 : tag.index("}")]


def _is_atom(element: etree._Element, name: str) -> bool:
    return _local(element) == name and _namespace(element) in (ATOM_NS, "")


class _RepeatedChildren(dict[str, etree._Element]):
    """:meth:`_Reader.children` of an element with a repeated child name: reading that name
    raises :class:`EspiParseError` at its second occurrence; the other names read as usual."""

    def __init__(
        self,
        found: dict[str, etree._Element],
        seconds: dict[str, etree._Element],
        reader: _Reader,
        parent: str,
    ) -> None:
        super().__init__(found)
        self._seconds = seconds
        self._reader = reader
        self._parent = parent

    def _refuse_repeated(self, name: str) -> None:
        second = self._seconds.get(name)
        if second is not None:
            raise self._reader.error(
                second,
                f"{self._parent} holds a second <{name}>: expected at most one (ESPI's schema "
                "allows one; reading the first would drop the other)",
            )

    def get(self, name: str, default: Any = None) -> Any:  # type: ignore[override]
        self._refuse_repeated(name)
        return super().get(name, default)

    def __getitem__(self, name: str) -> etree._Element:
        self._refuse_repeated(name)
        return super().__getitem__(name)


class _Reader:
    """Per-source context for turning elements into model objects with precise errors."""

    def __init__(self, name: str, path: str | None) -> None:
        self.name = name
        self.path = path
        # Lines before the fragment being read (the split reader parses one entry at a time).
        self.line_offset = 0

    def line_of(self, element: etree._Element) -> int | None:
        line = element.sourceline
        return None if line is None else line + self.line_offset

    def error(self, element: etree._Element | None, message: str) -> EspiParseError:
        line = self.line_of(element) if element is not None else None
        column = self._column(element, line) if element is not None else None
        return EspiParseError(self.name, line, column, message)

    def _column(self, element: etree._Element, line: int | None) -> int | None:
        """lxml keeps no column for elements: find the tag on its line (only when failing)."""
        if line is None or self.path is None:
            return None
        try:
            with open(self.path, encoding="utf-8", errors="replace") as handle:
                for number, text in enumerate(handle, start=1):
                    if number == line:
                        match = re.search(rf"<(?:[\w.-]+:)?{re.escape(_local(element))}\b", text)
                        return match.start() + 1 if match else 1
        except OSError:
            return None
        return None

    def children(self, element: etree._Element) -> dict[str, etree._Element]:
        """Local name to the ESPI child of that name. A name that occurs twice is refused when
        it is read (:class:`_RepeatedChildren`): each one this reader reads is single in
        espi.xsd / customer.xsd, and taking the first would silently drop the others. Names
        that repeat by the schema (IntervalReading, costAdditionalDetailLastPeriod) are read
        by iterating the element, never through this map."""
        found: dict[str, etree._Element] = {}
        seconds: dict[str, etree._Element] | None = None
        for child in element:
            if isinstance(child.tag, str) and _namespace(child) in _ESPI_NAMESPACES:
                name = _local(child)
                if name not in found:
                    found[name] = child
                elif seconds is None:
                    seconds = {name: child}
                else:
                    seconds.setdefault(name, child)
        if seconds is None:
            return found
        return _RepeatedChildren(found, seconds, self, _local(element))

    def single_children(
        self, element: etree._Element, singles: frozenset[str], what: str, rule: str
    ) -> dict[str, etree._Element]:
        """:meth:`children` (local name to the first ESPI child of that name), refusing a second
        child of a name in ``singles``: the schema allows one at most (``rule`` says where), and
        reading the first would silently drop the others.

        Raises :class:`EspiParseError` at the repeated child, naming it and ``what`` holds it."""
        found: dict[str, etree._Element] = {}
        for child in element:
            if isinstance(child.tag, str) and _namespace(child) in _ESPI_NAMESPACES:
                name = _local(child)
                if name not in found:
                    found[name] = child
                elif name in singles:
                    raise self.error(child, f"{what} holds a second <{name}>: {rule}")
        return found

    def integer(self, element: etree._Element, what: str) -> int:
        text = (element.text or "").strip()
        try:
            return int(text)
        except ValueError:
            raise self.error(
                element, f"<{_local(element)}> of {what} must be an integer, found {text!r}"
            ) from None

    def opt_int(self, kids: dict[str, etree._Element], name: str, what: str) -> int | None:
        element = kids.get(name)
        return None if element is None else self.integer(element, what)

    def req_int(
        self, parent: etree._Element, kids: dict[str, etree._Element], name: str, what: str
    ) -> int:
        element = kids.get(name)
        if element is None:
            raise self.error(parent, f"{what} needs a <{name}> element")
        return self.integer(element, what)

    def opt_text(self, kids: dict[str, etree._Element], name: str) -> str | None:
        element = kids.get(name)
        if element is None:
            return None
        return (element.text or "").strip()

    def interval(
        self, kids: dict[str, etree._Element], name: str, what: str, ms_aware: bool = False
    ) -> DateTimeInterval | None:
        element = kids.get(name)
        if element is None:
            return None
        inner = self.children(element)
        start = self.req_int(element, inner, "start", f"{what} {name}")
        duration = self.req_int(element, inner, "duration", f"{what} {name}")
        if ms_aware and abs(start) >= _MILLISECONDS_THRESHOLD:
            start //= 1000
            # Durations stay in seconds (UInt32 cannot hold a year in ms), unless no period in
            # seconds could be that long while the start shows the document writes milliseconds.
            if duration >= _MILLISECOND_DURATION and duration % 1000 == 0:
                duration //= 1000
        return DateTimeInterval(start=start, duration=duration)

    def time(self, kids: dict[str, etree._Element], name: str, what: str) -> int | None:
        value = self.opt_int(kids, name, what)
        if value is not None and abs(value) >= _MILLISECONDS_THRESHOLD:
            return value // 1000
        return value

    def rational(self, kids: dict[str, etree._Element], name: str) -> RationalNumber | None:
        element = kids.get(name)
        if element is None:
            return None
        inner = self.children(element)
        return RationalNumber(
            numerator=self.opt_int(inner, "numerator", name),
            denominator=self.opt_int(inner, "denominator", name),
        )

    def summary(self, kids: dict[str, etree._Element], name: str) -> SummaryMeasurement | None:
        element = kids.get(name)
        if element is None:
            return None
        inner = self.children(element)
        return SummaryMeasurement(
            power_of_ten_multiplier=self.opt_int(inner, "powerOfTenMultiplier", name),
            time_stamp=self.time(inner, "timeStamp", name),
            uom=self.opt_int(inner, "uom", name),
            value=self.opt_int(inner, "value", name),
            reading_type_ref=self.opt_text(inner, "readingTypeRef"),
        )

    # One parse function per ESPI object ---------------------------------------------------------

    def usage_point(self, element: etree._Element) -> UsagePoint:
        kids = self.children(element)
        kind = None
        category = kids.get("ServiceCategory")
        if category is not None:
            kind = self.opt_int(self.children(category), "kind", "ServiceCategory")
        return UsagePoint(
            kind=kind,
            status=self.opt_int(kids, "status", "UsagePoint"),
            role_flags=self.opt_text(kids, "roleFlags"),
        )

    def reading_type(self, element: etree._Element) -> ReadingType:
        kids = self.children(element)
        what = "ReadingType"
        return ReadingType(
            accumulation_behaviour=self.opt_int(kids, "accumulationBehaviour", what),
            commodity=self.opt_int(kids, "commodity", what),
            consumption_tier=self.opt_int(kids, "consumptionTier", what),
            currency=self.opt_int(kids, "currency", what),
            data_qualifier=self.opt_int(kids, "dataQualifier", what),
            default_quality=self.opt_int(kids, "defaultQuality", what),
            flow_direction=self.opt_int(kids, "flowDirection", what),
            interval_length=self.opt_int(kids, "intervalLength", what),
            kind=self.opt_int(kids, "kind", what),
            phase=self.opt_int(kids, "phase", what),
            power_of_ten_multiplier=self.opt_int(kids, "powerOfTenMultiplier", what),
            time_attribute=self.opt_int(kids, "timeAttribute", what),
            tou=self.opt_int(kids, "tou", what),
            uom=self.opt_int(kids, "uom", what),
            cpp=self.opt_int(kids, "cpp", what),
            interharmonic=self.rational(kids, "interharmonic"),
            measuring_period=self.opt_int(kids, "measuringPeriod", what),
            argument=self.rational(kids, "argument"),
        )

    def interval_reading(self, element: etree._Element) -> IntervalReading:
        """One IntervalReading. Raises :class:`EspiParseError` for a missing timePeriod, start or
        duration, a non-integer, a ReadingQuality without its quality, and a repeated child
        espi.xsd allows once (a second value, cost, timePeriod, start, duration, tou,
        consumptionTier or cpp, a second quality in one ReadingQuality): one reading cannot
        hold two values, and keeping the first would silently drop the other."""
        kids = self.single_children(
            element,
            _READING_SINGLES,
            "IntervalReading",
            "expected at most one (espi.xsd IntervalReading: only ReadingQuality repeats)",
        )
        period = kids.get("timePeriod")
        if period is None:
            raise self.error(element, "IntervalReading needs a <timePeriod> (start, duration)")
        what = "IntervalReading timePeriod"
        times = self.single_children(
            period, _INTERVAL_SINGLES, what, "expected one (espi.xsd DateTimeInterval)"
        )
        start = self.req_int(period, times, "start", what)
        duration = self.req_int(period, times, "duration", what)
        qualities = []
        for child in element:
            if _local(child) == "ReadingQuality" and _namespace(child) in _ESPI_NAMESPACES:
                inner = self.single_children(
                    child,
                    _QUALITY_SINGLES,
                    "ReadingQuality",
                    "expected one (espi.xsd ReadingQuality: each code is a ReadingQuality "
                    "of its own)",
                )
                qualities.append(self.req_int(child, inner, "quality", "ReadingQuality"))
        return IntervalReading(
            start=start,
            duration=duration,
            value=self.opt_int(kids, "value", "IntervalReading"),
            cost=self.opt_int(kids, "cost", "IntervalReading"),
            qualities=tuple(qualities),
            tou=self.opt_int(kids, "tou", "IntervalReading"),
            consumption_tier=self.opt_int(kids, "consumptionTier", "IntervalReading"),
            cpp=self.opt_int(kids, "cpp", "IntervalReading"),
        )

    def interval_block(
        self, element: etree._Element, readings: Sequence[IntervalReading] | None = None
    ) -> IntervalBlock:
        """``readings``: the block's readings when they were read from the bytes already (the
        element then holds the rest of the block; see :mod:`._reading_scan`)."""
        if readings is not None:
            interval = self.interval(self.children(element), "interval", "IntervalBlock")
            return IntervalBlock(interval=interval, readings=readings)
        fast = _fast_block(element)
        if fast is not None:
            return fast
        kids = self.children(element)
        readings = [
            self.interval_reading(child)
            for child in element
            if _local(child) == "IntervalReading" and _namespace(child) in _ESPI_NAMESPACES
        ]
        return IntervalBlock(
            interval=self.interval(kids, "interval", "IntervalBlock"), readings=readings
        )

    def local_time(self, element: etree._Element) -> LocalTimeParameters:
        """LocalTimeParameters; ones that cannot be read (an empty element, a DST rule that is
        not ESPI's 8 hex digits, a non-integer offset) come back with ``unusable`` saying where
        and why, so a conversion fails on them only when it needs them and no ``--tz`` is given.
        """
        kids = self.children(element)
        what = "LocalTimeParameters"
        try:
            rules = []
            for name in ("dstStartRule", "dstEndRule"):
                text = self.opt_text(kids, name)
                if text is None:
                    rules.append(0)
                    continue
                if not _DST_RULE.fullmatch(text):
                    raise self.error(
                        kids[name],
                        f"<{name}> must be 8 hexadecimal digits (ESPI's 32-bit DstRuleType), "
                        f"found {text!r}",
                    )
                rules.append(int(text, 16))
            return LocalTimeParameters(
                tz_offset=self.req_int(element, kids, "tzOffset", what),
                dst_offset=self.opt_int(kids, "dstOffset", what) or 0,
                dst_start_rule=rules[0],
                dst_end_rule=rules[1],
            )
        except EspiParseError as error:
            return LocalTimeParameters(tz_offset=0, unusable=str(error))

    def usage_summary(self, element: etree._Element) -> UsageSummary:
        """Every element of ESPI's UsageSummary. Times in epoch milliseconds (older PG&E
        documents) are read as such where unambiguous: a time >= 10**11 (the year 5138 in
        seconds) is milliseconds; a period's duration is taken as milliseconds only when its
        start was and the duration (>= 10**9, 31 years in seconds) could be no billing period in
        seconds. Amounts stay integers in hundred-thousandths of the currency."""
        kids = self.children(element)
        what = "UsageSummary"
        items = []
        riders: list[TariffRiderRef] = []
        for child in element:
            if _namespace(child) not in _ESPI_NAMESPACES:
                continue
            name = _local(child)
            if name == "costAdditionalDetailLastPeriod":
                inner = self.children(child)
                if "itemKind" not in inner:
                    raise self.error(child, "costAdditionalDetailLastPeriod needs an <itemKind>")
                items.append(
                    LineItem(
                        note=self.opt_text(inner, "note") or "",
                        item_kind=self.req_int(child, inner, "itemKind", "LineItem"),
                        amount=self.opt_int(inner, "amount", "LineItem"),
                        rounding=self.opt_int(inner, "rounding", "LineItem"),
                        date_time=self.time(inner, "dateTime", "LineItem"),
                        measurement=self.summary(inner, "measurement"),
                        unit_cost=self.opt_int(inner, "unitCost", "LineItem"),
                        item_period=self.interval(inner, "itemPeriod", "LineItem", True),
                    )
                )
            elif name == "tariffRiderRefs":
                for ref in child:
                    if _local(ref) != "tariffRiderRef":
                        continue
                    inner = self.children(ref)
                    rider = self.opt_text(inner, "riderType")
                    if not rider:
                        raise self.error(ref, "tariffRiderRef needs a <riderType>")
                    riders.append(
                        TariffRiderRef(
                            rider_type=rider,
                            enrollment_status=self.opt_text(inner, "enrollmentStatus") or "",
                            effective_date=self.time(inner, "effectiveDate", "tariffRiderRef"),
                        )
                    )
        status = self.time(kids, "statusTimeStamp", what)
        if status is None:
            raise self.error(element, "UsageSummary needs a <statusTimeStamp>")
        source = kids.get("billingChargeSource")
        return UsageSummary(
            status_time_stamp=status,
            billing_period=self.interval(kids, "billingPeriod", what, ms_aware=True),
            bill_last_period=self.opt_int(kids, "billLastPeriod", what),
            bill_to_date=self.opt_int(kids, "billToDate", what),
            cost_additional_last_period=self.opt_int(kids, "costAdditionalLastPeriod", what),
            cost_additional_detail_last_period=tuple(items),
            currency=self.opt_int(kids, "currency", what),
            overall_consumption_last_period=self.summary(kids, "overallConsumptionLastPeriod"),
            current_billing_period_overall_consumption=self.summary(
                kids, "currentBillingPeriodOverAllConsumption"
            ),
            current_day_last_year_net_consumption=self.summary(
                kids, "currentDayLastYearNetConsumption"
            ),
            current_day_net_consumption=self.summary(kids, "currentDayNetConsumption"),
            current_day_overall_consumption=self.summary(kids, "currentDayOverallConsumption"),
            peak_demand=self.summary(kids, "peakDemand"),
            previous_day_last_year_overall_consumption=self.summary(
                kids, "previousDayLastYearOverallConsumption"
            ),
            previous_day_net_consumption=self.summary(kids, "previousDayNetConsumption"),
            previous_day_overall_consumption=self.summary(kids, "previousDayOverallConsumption"),
            quality_of_reading=self.opt_int(kids, "qualityOfReading", what),
            ratchet_demand=self.summary(kids, "ratchetDemand"),
            ratchet_demand_period=self.interval(kids, "ratchetDemandPeriod", what, ms_aware=True),
            commodity=self.opt_int(kids, "commodity", what),
            tariff_profile=self.opt_text(kids, "tariffProfile"),
            read_cycle=self.opt_text(kids, "readCycle"),
            tariff_rider_refs=tuple(riders),
            billing_charge_source=(
                self.opt_text(self.children(source), "agencyName") if source is not None else None
            ),
        )

    def retail_customer(self, element: etree._Element) -> RetailCustomer:
        kids = self.children(element)
        name = self.opt_text(kids, "customerName") or self.opt_text(kids, "name")
        organisation = kids.get("Organisation")
        if not name and organisation is not None:
            inner = self.children(organisation)
            name = self.opt_text(inner, "organisationName") or self.opt_text(inner, "name")
        return RetailCustomer(name=name or None)

    def customer_agreement(self, element: etree._Element) -> CustomerAgreement:
        """``CustomerAgreement`` (customer.xsd): ``agreementId``, ``signDate``, ``type``."""
        kids = self.children(element)
        return CustomerAgreement(
            agreement_id=self.opt_text(kids, "agreementId") or None,
            sign_date=self.time(kids, "signDate", "CustomerAgreement"),
            kind=self.opt_text(kids, "type") or None,
        )

    def service_location(self, element: etree._Element) -> ServiceLocation:
        """``ServiceLocation/mainAddress`` (customer.xsd StreetAddress): the street from
        ``streetDetail/addressGeneral`` (PG&E's shape), else its parts joined (number, prefix,
        name, type, suffix, suiteNumber); town and state from ``townDetail``."""
        address = self.children(element).get("mainAddress")
        if address is None:
            return ServiceLocation()
        parts = self.children(address)
        street = None
        detail = parts.get("streetDetail")
        if detail is not None:
            inner = self.children(detail)
            lines = [self.opt_text(inner, n) for n in ("addressGeneral", "addressGeneral2")]
            street = ", ".join(line for line in lines if line) or None
            if street is None:
                pieces = ("number", "prefix", "name", "type", "suffix", "suiteNumber")
                street = " ".join(p for p in (self.opt_text(inner, n) for n in pieces) if p)
        town = state = None
        town_detail = parts.get("townDetail")
        if town_detail is not None:
            inner = self.children(town_detail)
            town = self.opt_text(inner, "name") or None
            state = self.opt_text(inner, "stateOrProvince") or None
        return ServiceLocation(
            street=street or None,
            town=town,
            state=state,
            postal_code=self.opt_text(parts, "postalCode") or None,
        )

    def authorization(self, element: etree._Element) -> Authorization:
        kids = self.children(element)
        what = "Authorization"
        status = self.req_int(element, kids, "status", what)
        return Authorization(
            status=status,
            expires_at=self.time(kids, "expires_at", what) or 0,
            scope=self.opt_text(kids, "scope") or "",
            resource_uri=self.opt_text(kids, "resourceURI") or "",
            authorization_uri=self.opt_text(kids, "authorizationURI") or "",
            token_type=self.opt_text(kids, "token_type") or "Bearer",
            authorized_period=self.interval(kids, "authorizedPeriod", what, ms_aware=True),
            published_period=self.interval(kids, "publishedPeriod", what, ms_aware=True),
            grant_type=self.opt_text(kids, "grant_type"),
            error=self.opt_text(kids, "error"),
            error_description=self.opt_text(kids, "error_description"),
            customer_resource_uri=self.opt_text(kids, "customerResourceURI"),
        )

    def batch_list(self, element: etree._Element) -> BatchList:
        return BatchList(
            resources=tuple(
                (child.text or "").strip() for child in element if _local(child) == "resources"
            )
        )

    def service_status(self, element: etree._Element) -> ServiceStatus:
        kids = self.children(element)
        return ServiceStatus(
            current_status=self.req_int(element, kids, "currentStatus", "ServiceStatus")
        )

    def espi_object(self, element: etree._Element) -> EspiObject | None:
        """The model object for an ESPI element, None for ESPI resources this engine ignores
        (ElectricPowerQualitySummary, ApplicationInformation, ...)."""
        name = _local(element)
        namespace = _namespace(element)
        if namespace == CUSTOMER_NS or name in _CUSTOMER_PARSERS:
            parse_customer = _CUSTOMER_PARSERS.get(name)
            return parse_customer(self, element) if parse_customer is not None else None
        if namespace not in _ESPI_NAMESPACES:
            return None
        if name == "MeterReading":
            return MeterReading()
        parse = _OBJECT_PARSERS.get(name)
        return parse(self, element) if parse is not None else None


_CUSTOMER_PARSERS: dict[str, Callable[[_Reader, etree._Element], EspiObject]] = {
    "RetailCustomer": _Reader.retail_customer,
    "Customer": _Reader.retail_customer,
    "CustomerAgreement": _Reader.customer_agreement,
    "ServiceLocation": _Reader.service_location,
}

_OBJECT_PARSERS: dict[str, Callable[[_Reader, etree._Element], EspiObject]] = {
    "UsagePoint": _Reader.usage_point,
    "ReadingType": _Reader.reading_type,
    "IntervalBlock": _Reader.interval_block,
    "LocalTimeParameters": _Reader.local_time,
    "UsageSummary": _Reader.usage_summary,
    "ElectricPowerUsageSummary": _Reader.usage_summary,
    "Authorization": _Reader.authorization,
    "BatchList": _Reader.batch_list,
    "ServiceStatus": _Reader.service_status,
}


# The fast path for IntervalBlocks: a handful of compiled XPath queries per block, evaluated in C,
# instead of Python work per element. Any irregularity (a missing or repeated child, a reading
# without namespace, a non-integer) falls back to the element-by-element reader, which also
# produces the precise error.
def _xpath(expression: str) -> etree.XPath:
    return etree.XPath(expression, namespaces={"e": ESPI_NS}, smart_strings=False)


# Each query takes at most one text per reading (the first child of its name, as the element
# reader does), so a list as long as the block has readings has exactly one for each of them.
# Block-wide lists could not say whose a value is: ReadingQuality is 0..n per reading (espi.xsd),
# and two readings' two quality codes may be one reading's two. ``[1]`` also runs faster in
# libxml2 than taking every match. Only the value query tests the reading's name: once it has
# proven every child but the interval an ESPI IntervalReading, the others take any child
# (``*``, cheaper in libxml2), the interval holding only its start and duration.
_X_VALUE = _xpath("e:IntervalReading/e:value[1]/text()[1]")
_X_START = _xpath("*/e:timePeriod[1]/e:start[1]/text()[1]")
_X_DURATION = _xpath("*/e:timePeriod[1]/e:duration[1]/text()[1]")
_X_COST = _xpath("*/e:cost[1]/text()[1]")
_X_QUALITY = _xpath("*/e:ReadingQuality[1]/e:quality[1]/text()[1]")
_X_TOU = _xpath("*/e:tou[1]/text()[1]")
# Every element one and two levels below the block's children (the readings and the interval).
_X_ELEMENTS = _xpath("count(*/*) + count(*/*/*)")

_QUALITY_TUPLES: dict[str, tuple[int, ...]] = {str(code): (code,) for code in range(32)}
_new_reading = cast(
    "Callable[[tuple[Any, ...]], IntervalReading]", partial(tuple.__new__, IntervalReading)
)


def _fast_block(element: etree._Element) -> IntervalBlock | None:
    """The block read with a few XPath queries when its readings have the plain shape (a
    timePeriod and a value each, alike in carrying a ReadingQuality, cost and tou or not,
    nothing else); None sends it to the element-by-element reader."""
    # The interval, if any, comes first (espi.xsd IntervalBlock). Every other child must be an
    # ESPI IntervalReading: the value query proves it by finding a value in each.
    first = element[0] if len(element) else None
    has_interval = (
        first is not None and _local(first) == "interval" and _namespace(first) in _ESPI_NAMESPACES
    )
    count = len(element) - has_interval
    if count == 0:
        return None
    values = _X_VALUE(element)
    if len(values) != count:
        return None
    starts, durations = _X_START(element), _X_DURATION(element)
    if not len(starts) == len(durations) == count:
        return None
    qualities = _X_QUALITY(element)
    # The elements read so far are all distinct: per reading its timePeriod, start, duration
    # and value, a ReadingQuality and its quality per code, the interval's start and duration.
    # More elements below the readings are costs and tous, or the block is not plain: the
    # counts add up only when nothing is repeated (a second value, start or quality, a second
    # ReadingQuality) and nothing is left unread. Anything else goes to the element reader,
    # which reads it or refuses it with the precise error.
    extra = int(_X_ELEMENTS(element)) - 4 * count - 2 * len(qualities) - 2 * has_interval
    costs = _X_COST(element) if extra else []
    tous = _X_TOU(element) if extra else []
    if (
        len(costs) not in (0, count)
        or len(qualities) not in (0, count)
        or len(tous) not in (0, count)
        or extra != len(costs) + len(tous)
    ):
        return None
    try:
        interval = None
        if first is not None and has_interval:
            # Document order of <start>/<duration> is not fixed: read them by name. Nothing
            # else: the queries above took any child of the block for a reading.
            interval_kids = {
                _local(c): c
                for c in first
                if isinstance(c.tag, str) and _namespace(c) in _ESPI_NAMESPACES
            }
            if len(first) != 2 or set(interval_kids) != {"start", "duration"}:
                return None
            interval = DateTimeInterval(
                start=int(interval_kids["start"].text or ""),
                duration=int(interval_kids["duration"].text or ""),
            )
        ints = int
        nothing = repeat(None)
        cost_values: Iterable[int | None] = map(ints, costs) if costs else nothing
        tou_values: Iterable[int | None] = map(ints, tous) if tous else nothing
        # Durations and qualities rarely change within a block: convert them once then.
        same_duration = durations[0]
        duration_values: Iterable[int] = (
            repeat(ints(same_duration))
            if durations.count(same_duration) == count
            else map(ints, durations)
        )
        quality_values: Iterable[tuple[int, ...] | None]
        if qualities and qualities.count(qualities[0]) == count:
            quality_values = repeat(_QUALITY_TUPLES.get(qualities[0]) or (ints(qualities[0]),))
        elif qualities:
            quality_values = list(map(_QUALITY_TUPLES.get, qualities))
            if None in quality_values:  # a code beyond the table, or padded with spaces
                quality_values = [(ints(q),) for q in qualities]
        else:
            quality_values = repeat(())
        # Straight to tuple.__new__ over C-built tuples: twice as fast as the named tuple's own
        # constructor, and this line runs once per reading.
        readings = list(
            map(
                _new_reading,
                zip(
                    map(ints, starts),
                    duration_values,
                    map(ints, values),
                    cost_values,
                    quality_values,
                    tou_values,
                    nothing,
                    nothing,
                    strict=False,  # the repeat()s are endless; the starts were counted above
                ),
            )
        )
    except (ValueError, TypeError):
        return None
    return IntervalBlock(interval=interval, readings=readings)


# The entry loop ---------------------------------------------------------------------------------


_X_TOO_DEEP = _xpath("(" + "/".join(["*"] * (MAX_NESTING + 1)) + ")[1]")


def _check_depth(reader: _Reader, element: etree._Element) -> None:
    deep = _X_TOO_DEEP(element)
    if deep:
        raise reader.error(
            deep[0],
            f"elements nested more than {MAX_NESTING} levels below <{_local(element)}>: "
            "expected an ESPI entry (a depth bomb is refused)",
        )


def _epoch(
    text: str | None, reader: _Reader, element: etree._Element
) -> tuple[int | None, str | None]:
    """Epoch seconds of an Atom date, and a note when it had to be read leniently.

    Atom's schema (as Green Button ships it) types ``published`` / ``updated`` ``xs:dateTime``,
    which allows a time without a UTC offset; utilities also send a bare date (``2024-06-21``).
    Both are read as UTC, with a note: the engine only uses them to order repeated readings."""
    if not text or not text.strip():
        return None, None
    stripped = text.strip()
    try:
        moment = datetime.fromisoformat(stripped)
    except ValueError:
        raise reader.error(
            element,
            f"<{_local(element)}> must be an ISO 8601 date-time (xs:dateTime), found {stripped!r}",
        ) from None
    if moment.tzinfo is not None:
        return int(moment.timestamp()), None
    line = reader.line_of(element)
    where = f"{reader.name}:{line}" if line is not None else reader.name
    note = (
        f"{where}: Atom <{_local(element)}> {stripped!r} has no UTC offset: read as UTC "
        "(used only to order repeated readings)"
    )
    return int(moment.replace(tzinfo=UTC).timestamp()), note


def _entry(
    reader: _Reader, element: etree._Element, readings: Sequence[IntervalReading] | None = None
) -> list[ParsedEntry]:
    """The entry's objects and links: one :class:`ParsedEntry` per ESPI object of its content
    (several only for IntervalBlocks: real exports hold hundreds in one entry, each read in
    full); none for ESPI resources this engine ignores. ``readings`` are those of the first
    IntervalBlock when they were read from the bytes already (see :mod:`._reading_scan`).

    Raises :class:`EspiParseError` for an entry without exactly one ``<content>``, an empty
    content, or a content holding several objects that are not all IntervalBlocks (which
    could not be told apart: they share the entry's links)."""
    links: dict[str, list[str]] = {}
    contents: list[etree._Element] = []
    fields: dict[str, etree._Element] = {}
    for child in element:
        if not isinstance(child.tag, str) or _namespace(child) not in (ATOM_NS, ""):
            continue
        name = _local(child)
        if name == "link":
            href = child.get("href")
            if href:
                links.setdefault(child.get("rel", "alternate"), []).append(href)
        elif name == "content":
            contents.append(child)
        else:
            fields.setdefault(name, child)
    if not contents:
        raise reader.error(element, "an Atom <entry> needs a <content> holding one ESPI object")
    if len(contents) > 1:
        raise reader.error(
            contents[1],
            f"an Atom <entry> holds {len(contents)} <content> elements: expected one "
            "(RFC 4287 4.1.2)",
        )
    content = contents[0]
    objects = [child for child in content if isinstance(child.tag, str)]
    if not objects:
        raise reader.error(content, "<content> is empty: expected one ESPI object")
    names = [_local(o) for o in objects]
    if len(objects) > 1 and set(names) != {"IntervalBlock"}:
        counted = ", ".join(f"{names.count(n)} <{n}>" for n in dict.fromkeys(names))
        raise reader.error(
            objects[1],
            f"<content> holds {counted}: expected one ESPI object (only IntervalBlocks may "
            "repeat in one entry's content, as they carry no links of their own)",
        )
    parsed: list[EspiObject] = []
    for index, found in enumerate(objects):
        if index == 0 and readings is not None:
            obj: EspiObject | None = reader.interval_block(found, readings)
        else:
            obj = reader.espi_object(found)
        if obj is not None:
            parsed.append(obj)
    if not parsed:
        return []
    nested: list[EspiObject] = []
    if isinstance(parsed[0], MeterReading):
        inner_types = list(objects[0].iter(f"{_ESPI}ReadingType", "ReadingType"))
        if len(inner_types) > 1:
            raise reader.error(
                inner_types[1],
                f"a MeterReading holds {len(inner_types)} <ReadingType>s: expected one (a "
                "channel is one MeterReading with one ReadingType)",
            )
        nested.extend(reader.reading_type(inner) for inner in inner_types)

    def text_of(name: str) -> str | None:
        found = fields.get(name)
        return None if found is None else (found.text or "").strip()

    notes: list[str] = []
    times: list[int | None] = []
    for name in ("published", "updated"):
        field_element = fields.get(name)
        stamp, note = (
            (None, None)
            if field_element is None
            else _epoch(field_element.text, reader, field_element)
        )
        times.append(stamp)
        if note is not None:
            notes.append(note)
    return [
        ParsedEntry(
            obj=obj,
            self_href=next(iter(links.get("self", ())), None),
            up_href=next(iter(links.get("up", ())), None),
            related=tuple(links.get("related", ())),
            id=text_of("id"),
            title=text_of("title"),
            published=times[0],
            updated=times[1],
            line=reader.line_of(element),
            nested=tuple(nested),
            notes=tuple(notes),
        )
        for obj in parsed
    ]


def _syntax_message(message: str) -> str:
    message = message.strip()
    lowered = message.lower()
    if "entity" in lowered:
        return f"{message} (entities are not expanded: expected plain ESPI XML)"
    if "document is empty" in lowered or "start tag expected" in lowered:
        return f"{message}: expected an XML document (an Atom feed or an ESPI object)"
    return f"malformed XML: {message}"

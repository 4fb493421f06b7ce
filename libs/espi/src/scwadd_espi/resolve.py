"""Ties ESPI objects together through their Atom link hrefs, whatever order entries come in.

The resource tree is UsagePoint → MeterReading → (ReadingType, IntervalBlock...), and
UsagePoint → LocalTimeParameters. Feeds express it with ``self`` / ``up`` / ``related`` hrefs:

- an IntervalBlock's ``up`` is its MeterReading's IntervalBlock collection (which the MeterReading
  lists as ``related``), or failing that its ``self`` sits below the MeterReading's;
- a MeterReading's ReadingType is one of its ``related`` hrefs (``ReadingType/07`` in the Green
  Button sample, ``.../MeterReading/{id}/ReadingType/{id}`` at PG&E), or nested in its content;
- a MeterReading's ``up`` is its UsagePoint's MeterReading collection;
- a UsagePoint's LocalTimeParameters is one of its ``related`` hrefs.

Hrefs are compared by URL path (scheme, host, query and a trailing slash ignored, percent-escapes
decoded), so absolute PG&E hrefs and relative ones meet. The resolver only holds the small
metadata objects; readings never pass through it.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from urllib.parse import unquote, urlsplit

from scwadd_espi.model import (
    Authorization,
    BatchList,
    LocalTimeParameters,
    MeterReading,
    ReadingType,
    RetailCustomer,
    ServiceStatus,
    UsagePoint,
    UsageSummary,
)
from scwadd_espi.parser import ParsedEntry


def href_path(href: str) -> str:
    # Unquoted: PG&E's base64 ids end in "=", which one link may carry as "%3D" and another not.
    path = unquote(urlsplit(href.strip()).path)
    return path.rstrip("/") or href.strip()


def _parent(path: str) -> str:
    return path.rsplit("/", 1)[0] if "/" in path else ""


class UnresolvedError(LookupError):
    """The documents do not say which MeterReading, ReadingType or UsagePoint a thing belongs to."""


@dataclass(frozen=True, slots=True)
class Channel:
    """Everything a reading needs to be written: where it belongs and how to read its value."""

    meter_reading: str
    usage_point_id: str
    usage_point: str | None
    service_kind: int | None
    reading_type: ReadingType
    local_time: LocalTimeParameters | None


@dataclass
class Resolver:
    usage_points: dict[str, ParsedEntry] = field(default_factory=dict)
    meter_readings: dict[str, ParsedEntry] = field(default_factory=dict)
    reading_types: dict[str, ReadingType] = field(default_factory=dict)
    local_times: dict[str, LocalTimeParameters] = field(default_factory=dict)
    usage_summaries: list[tuple[str | None, UsageSummary]] = field(default_factory=list)
    customers: list[RetailCustomer] = field(default_factory=list)
    authorizations: list[Authorization] = field(default_factory=list)
    batch_lists: list[BatchList] = field(default_factory=list)
    service_statuses: list[ServiceStatus] = field(default_factory=list)
    _block_collections: dict[str, str] = field(default_factory=dict)
    _anonymous_usage_points: int = 0

    def add(self, entry: ParsedEntry) -> None:
        """Remember a metadata object (IntervalBlocks go to :meth:`block_key` instead)."""
        obj = entry.obj
        self_path = href_path(entry.self_href) if entry.self_href else None
        if isinstance(obj, UsagePoint):
            if self_path is None:
                self._anonymous_usage_points += 1
                self_path = f"#UsagePoint/{self._anonymous_usage_points}"
            self.usage_points[self_path] = entry
        elif isinstance(obj, MeterReading):
            if self_path is None:
                self_path = f"#MeterReading/{len(self.meter_readings) + 1}"
            self.meter_readings[self_path] = entry
            self._block_collections[f"{self_path}/IntervalBlock"] = self_path
            for href in entry.related:
                path = href_path(href)
                if path.endswith("/IntervalBlock"):
                    self._block_collections[path] = self_path
        elif isinstance(obj, ReadingType):
            if self_path is not None:
                self.reading_types[self_path] = obj
            else:
                self.reading_types[f"#ReadingType/{len(self.reading_types) + 1}"] = obj
        elif isinstance(obj, LocalTimeParameters):
            key = self_path or f"#LocalTimeParameters/{len(self.local_times) + 1}"
            self.local_times[key] = obj
        elif isinstance(obj, UsageSummary):
            up = _parent(_parent(self_path)) if self_path else None
            self.usage_summaries.append((up, obj))
        elif isinstance(obj, RetailCustomer):
            self.customers.append(obj)
        elif isinstance(obj, Authorization):
            self.authorizations.append(obj)
        elif isinstance(obj, BatchList):
            self.batch_lists.append(obj)
        elif isinstance(obj, ServiceStatus):
            self.service_statuses.append(obj)

    @staticmethod
    def block_key(entry: ParsedEntry) -> str | None:
        """The IntervalBlock collection a block belongs to, from its own links alone (its
        MeterReading may not have been read yet)."""
        if entry.up_href:
            return href_path(entry.up_href)
        if entry.self_href:
            return _parent(href_path(entry.self_href))
        return None

    def meter_reading_for(self, block_key: str | None) -> str:
        if block_key is None:
            if len(self.meter_readings) == 1:
                return next(iter(self.meter_readings))
            raise UnresolvedError(
                "an IntervalBlock has no self or up link, and the documents hold "
                f"{len(self.meter_readings)} MeterReadings: expected links naming its MeterReading"
            )
        found = self._block_collections.get(block_key)
        if found is not None:
            return found
        if block_key in self.meter_readings:  # an up link straight to the MeterReading
            return block_key
        raise UnresolvedError(
            f"no MeterReading lists the IntervalBlock collection {block_key}: expected a "
            "MeterReading entry whose self href is its parent or whose related links name it"
        )

    def reading_type_for(self, meter_reading: str) -> ReadingType:
        entry = self.meter_readings[meter_reading]
        for nested in entry.nested:
            if isinstance(nested, ReadingType):
                return nested
        for href in entry.related:
            found = self.reading_types.get(href_path(href))
            if found is not None:
                return found
        below = [rt for path, rt in self.reading_types.items() if path.startswith(meter_reading)]
        if len(below) == 1:
            return below[0]
        related = ", ".join(entry.related) or "none"
        raise UnresolvedError(
            f"MeterReading {meter_reading} has no ReadingType in the documents "
            f"(its related links: {related}): expected a ReadingType entry at one of them"
        )

    def usage_point_for(self, meter_reading: str) -> str | None:
        entry = self.meter_readings[meter_reading]
        candidates = []
        if entry.up_href:
            candidates.append(_parent(href_path(entry.up_href)))
        candidates.append(_parent(_parent(meter_reading)))
        for candidate in candidates:
            if candidate in self.usage_points:
                return candidate
        collection = href_path(entry.up_href) if entry.up_href else None
        for path, point in self.usage_points.items():
            if collection and collection in (href_path(h) for h in point.related):
                return path
            if meter_reading.startswith(path + "/"):
                return path
        if len(self.usage_points) == 1:
            return next(iter(self.usage_points))
        return None

    def local_time_for(self, usage_point: str | None) -> LocalTimeParameters | None:
        if usage_point is not None:
            for href in self.usage_points[usage_point].related:
                found = self.local_times.get(href_path(href))
                if found is not None:
                    return found
        distinct = set(self.local_times.values())
        if len(distinct) == 1:
            return distinct.pop()
        return None

    def customer_name(self) -> str | None:
        for customer in self.customers:
            if customer.name:
                return customer.name
        return None

    def channel(self, block_key: str | None) -> Channel:
        meter_reading = self.meter_reading_for(block_key)
        reading_type = self.reading_type_for(meter_reading)
        usage_point = self.usage_point_for(meter_reading)
        if usage_point is None:
            raise UnresolvedError(
                f"MeterReading {meter_reading} belongs to no UsagePoint in the documents: "
                "expected a UsagePoint entry whose MeterReading collection is its up link"
            )
        point_entry = self.usage_points[usage_point]
        point = point_entry.obj
        assert isinstance(point, UsagePoint)
        return Channel(
            meter_reading=meter_reading,
            usage_point_id=usage_point_id(usage_point),
            usage_point=usage_point,
            service_kind=point.kind,
            reading_type=reading_type,
            local_time=self.local_time_for(usage_point),
        )


def usage_point_id(path: str) -> str:
    """The id a person sees: the last segment of the UsagePoint's href (PG&E's real id)."""
    return path.rstrip("/").rsplit("/", 1)[-1].lstrip("#")

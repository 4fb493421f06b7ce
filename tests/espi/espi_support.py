"""Builders for the ESPI tests: documents are made in code, in PG&E's shape or the generic one,
and every one of them is checked against the official schema when ESPI_XSD names it."""

from __future__ import annotations

import csv
import io
import os
from collections.abc import Sequence
from dataclasses import replace
from datetime import UTC, datetime
from functools import cache
from pathlib import Path
from zoneinfo import ZoneInfo

from lxml import etree
from scwadd_espi.localtime import local_time_parameters_for
from scwadd_espi.model import (
    ATOM_NS,
    CUSTOMER_NS,
    Entry,
    IntervalBlock,
    LocalTimeParameters,
    ReadingType,
    UsagePoint,
)
from scwadd_espi.sample import ELECTRIC as PGE_ELECTRIC
from scwadd_espi.sample import GAS as GAS  # re-exported: the tests take them from here
from scwadd_espi.sample import SOLAR_EXPORT as SOLAR_EXPORT
from scwadd_espi.sample import local_day_blocks as local_day_blocks
from scwadd_espi.writer import (
    EspiWriter,
    MeterReadingData,
    Style,
    UsagePointData,
    usage_entries,
    write_usage_feed,
)

PACIFIC = ZoneInfo("America/Los_Angeles")
PUBLISHED = datetime(2025, 1, 2, 3, 4, 5, tzinfo=UTC)

# PG&E's ReadingTypes, shared with the sample feed; the tests' electricity also carries the
# optional fields the writer must place in schema order.
ELECTRIC = replace(PGE_ELECTRIC, data_qualifier=12, phase=769, time_attribute=0)


def pacific_time(year: int = 2024) -> LocalTimeParameters:
    return local_time_parameters_for(PACIFIC, year)


def usage_point(
    up_id: str,
    meters: Sequence[tuple[str, ReadingType, Sequence[IntervalBlock]]],
    kind: int = 0,
    local_time: LocalTimeParameters | None = None,
) -> UsagePointData:
    return UsagePointData(
        id=up_id,
        usage_point=UsagePoint(kind=kind),
        meter_readings=[
            MeterReadingData(id=mr_id, reading_type=rt, blocks=list(blocks))
            for mr_id, rt, blocks in meters
        ],
        local_time=local_time,
    )


def feed_bytes(
    points: Sequence[UsagePointData],
    *,
    style: Style = "pge",
    subscription: str = "SUB1",
    updated: datetime = PUBLISHED,
    validate: bool = True,
) -> bytes:
    buffer = io.BytesIO()
    write_usage_feed(buffer, subscription, points, style=style, published=updated, updated=updated)
    data = buffer.getvalue()
    if validate:
        assert_schema_valid(data)
    return data


def entries_of(
    points: Sequence[UsagePointData], *, style: Style = "pge", updated: datetime = PUBLISHED
) -> list[Entry]:
    return list(usage_entries("SUB1", points, style=style, published=updated, updated=updated))


def feed_from_entries(entries: Sequence[Entry], *, style: Style = "pge") -> bytes:
    buffer = io.BytesIO()
    with EspiWriter(buffer, style=style) as feed:
        feed.write_all(entries)
    data = buffer.getvalue()
    assert_schema_valid(data)
    return data


@cache
def _schemas() -> tuple[etree.XMLSchema, etree.XMLSchema] | None:
    location = os.environ.get("ESPI_XSD")
    if not location:
        return None
    espi = etree.XMLSchema(etree.parse(location))
    customer = etree.XMLSchema(etree.parse(str(Path(location).with_name("customer.xsd"))))
    return espi, customer


def schema_checking() -> bool:
    return _schemas() is not None


def assert_schema_valid(data: bytes) -> None:
    """Each ESPI object in the document (the root of a bare document, else each entry's content)
    must validate; Atom itself has no schema beside the ESPI ones."""
    schemas = _schemas()
    if schemas is None:
        return
    espi, customer = schemas
    root = etree.fromstring(data)
    if root.tag in (f"{{{ATOM_NS}}}feed", f"{{{ATOM_NS}}}entry"):
        objects = [c[0] for c in root.iter(f"{{{ATOM_NS}}}content")]
    else:
        objects = [root]
    assert objects, "no ESPI object in the document"
    for obj in objects:
        schema = customer if obj.tag.startswith(f"{{{CUSTOMER_NS}}}") else espi
        # Validate a copy as its own document: the schema's root is the ESPI element.
        standalone = etree.fromstring(etree.tostring(obj))
        assert schema.validate(standalone), f"{obj.tag}: {schema.error_log}"


def read_csv(path: Path) -> list[dict[str, str]]:
    with open(path, encoding="utf-8", newline="") as handle:
        return list(csv.DictReader(handle))


def write(tmp_path: Path, name: str, data: bytes) -> Path:
    path = tmp_path / name
    path.write_bytes(data)
    return path


class OneWayStream(io.RawIOBase):
    """A stream that cannot be read twice: the parser reads it with iterparse, never split."""

    def __init__(self, data: bytes) -> None:
        super().__init__()
        self._data = io.BytesIO(data)

    def readable(self) -> bool:
        return True

    def readinto(self, buffer) -> int:  # type: ignore[no-untyped-def]
        chunk = self._data.read(len(buffer))
        buffer[: len(chunk)] = chunk
        return len(chunk)


def both_readers(data: bytes) -> tuple[io.BytesIO, io.BufferedReader]:
    """The same document for the split reader (in memory, readable twice) and for iterparse (a
    stream read once): the two must read every document alike."""
    return io.BytesIO(data), io.BufferedReader(OneWayStream(data))


def pretty_printed(data: bytes) -> bytes:
    return etree.tostring(etree.fromstring(data), pretty_print=True, xml_declaration=True)

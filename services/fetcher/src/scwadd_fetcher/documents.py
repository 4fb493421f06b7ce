"""What the fetcher needs to read in the custodian's documents, before the exporter parses them.

Only three questions: which UsagePoints a subscription has, which resource URLs a BatchList
announces, and whether a body is well-formed ESPI worth storing (and how many readings it
holds, for the metric). All three are answered by the ESPI engine's streaming, hostile-input-safe
parser (:mod:`scwadd_espi.parser`): by namespace URI, never by prefix, no DTD, no entities.
"""

from __future__ import annotations

import io
from collections.abc import Iterator

from scwadd_espi.model import BatchList, IntervalBlock, UsagePoint
from scwadd_espi.parser import EspiParseError, ParsedEntry, iter_entries


class MalformedDocument(ValueError):
    """The body is not the ESPI document it should be."""


def _entries(body: bytes, what: str) -> Iterator[ParsedEntry]:
    if not body.strip():
        raise MalformedDocument(f"the {what} is empty")
    try:
        yield from iter_entries(io.BytesIO(body), name=what)
    except EspiParseError as error:
        raise MalformedDocument(str(error)) from None


def usage_point_ids(body: bytes) -> list[str]:
    """The UsagePoint ids of a ``Subscription/{id}/UsagePoint`` feed (or a single entry).

    The id is the last path segment of the entry's ``self`` link, which is how the custodian
    addresses the UsagePoint (PG&E's ids are opaque: never interpret them).
    """
    ids: list[str] = []
    for entry in _entries(body, "UsagePoint list"):
        if not isinstance(entry.obj, UsagePoint):
            continue
        if not entry.self_href:
            raise MalformedDocument("a UsagePoint entry has no self link")
        up_id = entry.self_href.split("?")[0].rstrip("/").rsplit("/", 1)[-1]
        if up_id and up_id not in ids:
            ids.append(up_id)
    return ids


def batch_list_resources(body: bytes) -> list[str]:
    """The resource URLs of a BatchList notification."""
    urls: list[str] = []
    found = False
    for entry in _entries(body, "BatchList"):
        if isinstance(entry.obj, BatchList):
            found = True
            urls.extend(url.strip() for url in entry.obj.resources if url.strip())
    if not found:
        raise MalformedDocument("expected an ESPI BatchList")
    if not urls:
        raise MalformedDocument("the BatchList names no resources")
    return urls


def check_feed(body: bytes) -> int:
    """Raise :class:`MalformedDocument` unless ``body`` parses as ESPI from start to end;
    returns the number of IntervalReadings in it."""
    readings = 0
    entries = 0
    for entry in _entries(body, "usage document"):
        entries += 1
        if isinstance(entry.obj, BatchList):
            raise MalformedDocument("a BatchList is not a usage document")
        if isinstance(entry.obj, IntervalBlock):
            readings += len(entry.obj.readings)
    if entries == 0 and b"feed" not in body[:2000]:
        raise MalformedDocument("the usage document holds no ESPI object")
    return readings

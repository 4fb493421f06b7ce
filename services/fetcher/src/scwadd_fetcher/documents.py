"""What the fetcher needs to read in the custodian's documents, before the exporter parses them.

Which UsagePoints a subscription has, which resource URLs a BatchList announces, whether a body
is well-formed ESPI worth storing (and, from the same single read, how many readings and which
UsagePoints it holds: :func:`read_feed`): answered by
the ESPI engine's streaming, hostile-input-safe parser (:mod:`scwadd_espi.parser`), by namespace
URI, never by prefix, no DTD, no entities. And which part of a Bulk answer is whose
(:func:`split_by_subscription`, lxml's streaming parser with the same settings, on a body the
engine has accepted)."""

from __future__ import annotations

import io
from collections.abc import Iterator
from dataclasses import dataclass
from urllib.parse import urlsplit

from lxml import etree
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


def _usage_point_id(self_href: str) -> str:
    return self_href.split("?")[0].rstrip("/").rsplit("/", 1)[-1]


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
        up_id = _usage_point_id(entry.self_href)
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


@dataclass(frozen=True)
class Feed:
    """A usage document that parsed as ESPI from start to end (:func:`read_feed`), with what the
    fetcher needs from it: the number of IntervalReadings and the UsagePoints it holds."""

    body: bytes
    readings: int = 0
    usage_points: tuple[str, ...] = ()


# The custodian's answer for a window without data (204, or an empty part).
NO_DATA = Feed(b"")


def read_feed(body: bytes) -> Feed:
    """Read ``body`` once: raise :class:`MalformedDocument` unless it parses as ESPI from start
    to end, else the :class:`Feed` with its IntervalReadings counted and its UsagePoints' ids
    (the last segment of each UsagePoint entry's ``self`` link)."""
    readings = 0
    entries = 0
    usage_points: list[str] = []
    for entry in _entries(body, "usage document"):
        entries += 1
        if isinstance(entry.obj, BatchList):
            raise MalformedDocument("a BatchList is not a usage document")
        if isinstance(entry.obj, IntervalBlock):
            readings += len(entry.obj.readings)
        elif isinstance(entry.obj, UsagePoint) and entry.self_href:
            up_id = _usage_point_id(entry.self_href)
            if up_id and up_id not in usage_points:
                usage_points.append(up_id)
    if entries == 0 and b"feed" not in body[:2000]:
        raise MalformedDocument("the usage document holds no ESPI object")
    return Feed(body, readings, tuple(usage_points))


def check_feed(body: bytes) -> int:
    """Raise :class:`MalformedDocument` unless ``body`` parses as ESPI from start to end;
    returns the number of IntervalReadings in it."""
    return read_feed(body).readings


ATOM_ENTRY = "{http://www.w3.org/2005/Atom}entry"
ATOM_LINK = "{http://www.w3.org/2005/Atom}link"
# Resources every subscription's entries refer to, not about one customer.
SHARED_COLLECTIONS = frozenset({"ReadingType", "LocalTimeParameters", "ProgramIdMappings"})
_FEED_START = b'<feed xmlns="http://www.w3.org/2005/Atom">'
_FEED_END = b"</feed>"


@dataclass
class SplitFeed:
    """A feed of several subscriptions (a Bulk answer) cut into one feed per subscription."""

    parts: dict[str, bytes]
    shared_entries: int = 0
    dropped_entries: int = 0  # neither under a Subscription nor a shared resource


def _owner(entry: etree._Element) -> tuple[str, str | None, str | None]:
    """("subscription", id, href), ("shared", None, href) or ("other", None, href), from the
    entry's self (or up) link: ``.../Subscription/{id}/...`` belongs to that subscription (PG&E's
    resource paths)."""
    href = None
    for rel in ("self", "up"):
        for link in entry.iterchildren(ATOM_LINK):
            if link.get("rel") == rel and link.get("href"):
                href = link.get("href")
                break
        if href:
            break
    if not href:
        return "other", None, None
    parts = [p for p in urlsplit(href).path.split("/") if p]
    if "Subscription" in parts:
        index = parts.index("Subscription")
        if index + 1 < len(parts):
            return "subscription", parts[index + 1], href
    if any(part in SHARED_COLLECTIONS for part in parts):
        return "shared", None, href
    return "other", None, href


def split_by_subscription(body: bytes) -> SplitFeed:
    """Cut a feed holding several subscriptions' data (``Batch/Bulk/{BulkID}``: every active
    subscription of the third party, ESPI / PG&E Share My Data) into one Atom feed per
    subscription id. Entries of shared resources (ReadingType, LocalTimeParameters,
    ProgramIdMappings) go into every part; entries that belong to neither (a RetailCustomer, say)
    go into none, so no customer ever receives another's data. Call it on a body
    :func:`check_feed` accepted; raises :class:`MalformedDocument` if it does not parse.
    """
    chunks: dict[str, list[bytes]] = {}
    shared: list[bytes] = []
    shared_seen: set[str] = set()  # each subscription's tree may link the same shared entry
    dropped = 0
    events = etree.iterparse(
        io.BytesIO(body),
        events=("end",),
        tag=ATOM_ENTRY,
        resolve_entities=False,
        no_network=True,
        load_dtd=False,
        huge_tree=True,
    )
    try:
        for _event, entry in events:
            kind, owner, href = _owner(entry)
            if kind == "subscription" and owner is not None:
                chunks.setdefault(owner, []).append(etree.tostring(entry))
            elif kind == "shared":
                if href not in shared_seen:
                    shared_seen.add(str(href))
                    shared.append(etree.tostring(entry))
            else:
                dropped += 1
            entry.clear()
            while entry.getprevious() is not None:
                parent = entry.getparent()
                if parent is None:
                    break
                del parent[0]
    except etree.XMLSyntaxError as error:
        raise MalformedDocument(f"the bulk document does not parse: {error}") from None
    parts = {
        owner: b"".join([_FEED_START, *shared, *texts, _FEED_END])
        for owner, texts in chunks.items()
    }
    return SplitFeed(parts, shared_entries=len(shared), dropped_entries=dropped)

"""What the fetcher needs to read in the custodian's documents, before the exporter parses them.

Only three questions: which UsagePoints a subscription has, which resource URLs a BatchList
announces, and whether a body is a well-formed ESPI feed worth storing (and how many readings it
holds, for the metric). Parsed by namespace URI, never by prefix (PG&E has dropped a prefix),
with a parser that resolves no entities and fetches nothing.
"""

from __future__ import annotations

from lxml import etree

ATOM = "http://www.w3.org/2005/Atom"
ESPI = "http://naesb.org/espi"

_PARSER = etree.XMLParser(
    resolve_entities=False, no_network=True, load_dtd=False, huge_tree=False, remove_comments=True
)


class MalformedDocument(ValueError):
    """The body is not the ESPI document it should be."""


def _parse(body: bytes) -> etree._Element:
    if not body.strip():
        raise MalformedDocument("empty body")
    try:
        root = etree.fromstring(body, parser=_PARSER)
    except etree.XMLSyntaxError as error:
        raise MalformedDocument(f"not well-formed XML: {error.msg}") from None
    if root is None:
        raise MalformedDocument("no root element")
    return root


def _tag(element: etree._Element) -> tuple[str, str]:
    qname = etree.QName(element)
    return qname.namespace or "", qname.localname


def usage_point_ids(body: bytes) -> list[str]:
    """The UsagePoint ids of a ``Subscription/{id}/UsagePoint`` feed (or a single entry).

    The id is the last path segment of the entry's ``self`` link, which is how the custodian
    addresses the UsagePoint (PG&E's ids are opaque: never interpret them).
    """
    root = _parse(body)
    if _tag(root) == (ATOM, "feed"):
        entries = root.findall(f"{{{ATOM}}}entry")
    elif _tag(root) == (ATOM, "entry"):
        entries = [root]
    else:
        raise MalformedDocument(f"expected an Atom feed, got <{etree.QName(root).localname}>")
    ids: list[str] = []
    for entry in entries:
        if entry.find(f"{{{ATOM}}}content/{{{ESPI}}}UsagePoint") is None:
            continue
        for link in entry.findall(f"{{{ATOM}}}link"):
            if link.get("rel") == "self" and link.get("href"):
                href = str(link.get("href")).split("?")[0].rstrip("/")
                up_id = href.rsplit("/", 1)[-1]
                if up_id and up_id not in ids:
                    ids.append(up_id)
                break
        else:
            raise MalformedDocument("a UsagePoint entry has no self link")
    return ids


def batch_list_resources(body: bytes) -> list[str]:
    """The resource URLs of a BatchList notification."""
    root = _parse(body)
    if _tag(root) != (ESPI, "BatchList"):
        raise MalformedDocument(f"expected an ESPI BatchList, got <{etree.QName(root).localname}>")
    urls = [(element.text or "").strip() for element in root.findall(f"{{{ESPI}}}resources")]
    urls = [url for url in urls if url]
    if not urls:
        raise MalformedDocument("the BatchList names no resources")
    return urls


def check_feed(body: bytes) -> int:
    """Raise :class:`MalformedDocument` unless ``body`` is an Atom feed/entry of ESPI content;
    returns the number of IntervalReadings in it."""
    root = _parse(body)
    if _tag(root) not in ((ATOM, "feed"), (ATOM, "entry")):
        raise MalformedDocument(f"expected an Atom feed, got <{etree.QName(root).localname}>")
    readings = 0
    for element in root.iter(f"{{{ESPI}}}IntervalReading"):
        if (
            element.find(f"{{{ESPI}}}timePeriod") is None
            and element.find(f"{{{ESPI}}}value") is None
        ):
            raise MalformedDocument("an IntervalReading has neither timePeriod nor value")
        readings += 1
    return readings

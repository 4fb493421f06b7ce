"""What ``/espi/notify`` accepts: a BatchList from the custodian, bounded, checked, rate-limited.

The endpoint is public and unauthenticated (PG&E documents no signature), and what it accepts is
published on the event stream and then fetched with our tokens. So:

* the body is bounded (:attr:`NotifyLimits.max_bytes`) and so is the number of resources in it
  (:attr:`NotifyLimits.max_resources`);
* every resource URL must have a shape the custodian sends (:func:`check_resource_url`):
  the API host and base path of ``PGE_API_BASE``, then ``Batch/Bulk/{BulkID}``,
  ``Batch/Subscription/{SubscriptionID}`` or ``Batch/Subscription/{id}/UsagePoint/{id}``, with
  only ``correlationID`` (and the ESPI range parameters) in the query; anything else is dropped;
* each sender address gets a token bucket (:class:`SourceRateLimit`), and all senders together
  another one, so a flood is answered 429 before it costs a parse or a publish;
* a notification that is not well-formed XML is still honoured when a lenient read finds its
  resources unambiguously (:func:`read_batch_list`): PG&E has POSTed a BatchList with a literal
  backslash and ``n`` between the XML declaration and the root element. The lenient read only
  removes such escaped whitespace between markup, or, failing that, reads the ``resources``
  elements of a document that declares the ESPI namespace and a BatchList; the URLs it finds pass
  the same checks, and what it did is logged and counted.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from urllib.parse import parse_qsl, urlsplit

from scwadd_core.throttle import TokenBucket

from scwadd_fetcher.documents import MalformedDocument, batch_list_resources

ESPI_NS = "http://naesb.org/espi"
# Opaque ids (PG&E's are decimal for these resources), but never "." or "..", never escaped.
_ID = r"[A-Za-z0-9_~=+-][A-Za-z0-9._~=+-]{0,127}"
_SHAPES = (
    re.compile(rf"/Batch/Bulk/{_ID}"),
    re.compile(rf"/Batch/Subscription/{_ID}"),
    re.compile(rf"/Batch/Subscription/{_ID}/UsagePoint/{_ID}"),
)
_QUERY_KEYS = {"correlationid", "published-min", "published-max", "updated-min", "updated-max"}
_QUERY_VALUE = re.compile(r"[A-Za-z0-9._~:+-]{1,128}")
MAX_URL_LENGTH = 1024

# Escaped whitespace (a literal backslash and n, r or t) standing between two pieces of markup.
_ESCAPED_WHITESPACE = re.compile(rb"(?<=>)(?:\s|\\[nrt])*\\[nrt](?:\s|\\[nrt])*(?=<)")
_RESOURCES = re.compile(
    rb"<(?:[A-Za-z_][\w.-]*:)?resources\s*>([^<>]{1,2048})</(?:[A-Za-z_][\w.-]*:)?resources\s*>"
)
_BATCH_LIST_TAG = re.compile(rb"<(?:[A-Za-z_][\w.-]*:)?BatchList[\s>]")


@dataclass(frozen=True)
class NotifyLimits:
    max_bytes: int = 64 * 1024  # a BatchList is a handful of URLs
    max_resources: int = 50
    per_source_rate: float = 2.0  # notifications per second, sustained, per sender address
    per_source_burst: int = 30
    total_rate: float = 20.0  # every sender together
    total_burst: int = 200
    sources_tracked: int = 10_000  # the per-address table is bounded too


@dataclass(frozen=True)
class BatchListRead:
    urls: list[str]
    # None for a well-formed BatchList; otherwise how the lenient read recovered it.
    recovered: str | None = None


def read_batch_list(body: bytes) -> BatchListRead:
    """The resource URLs of a BatchList (ESPI ``BatchList/resources``), strictly when the body is
    well-formed XML, leniently when the damage is one a person would read through.

    Raises :class:`MalformedDocument` (a ValueError) when neither read finds a resource.
    """
    try:
        return BatchListRead(batch_list_resources(body))
    except MalformedDocument as strict_error:
        error = strict_error
    repaired = _ESCAPED_WHITESPACE.sub(b"", body)
    if repaired != body:
        try:
            return BatchListRead(
                batch_list_resources(repaired),
                recovered="removed escaped newlines between XML markup",
            )
        except MalformedDocument:
            pass
    if ESPI_NS.encode() in body and _BATCH_LIST_TAG.search(body):
        found = [m.group(1).decode("utf-8", "replace").strip() for m in _RESOURCES.finditer(body)]
        found = [url for url in found if url]
        if found:
            return BatchListRead(
                found, recovered="read the resources elements of a BatchList that does not parse"
            )
    raise error


def check_resource_url(url: str, api_base: str) -> str | None:
    """None when ``url`` is a resource URL the custodian sends in a BatchList, else the reason.

    Shapes from PG&E's Share My Data documents and the ESPI batch resources: ``{api_base}``
    followed by ``/Batch/Bulk/{BulkID}``, ``/Batch/Subscription/{SubscriptionID}`` or
    ``/Batch/Subscription/{SubscriptionID}/UsagePoint/{UsagePointID}``; a query of
    ``correlationID`` and the ESPI range parameters only; https, no user info, no fragment.
    """
    if len(url) > MAX_URL_LENGTH:
        return "too long"
    try:
        parts = urlsplit(url)
        base = urlsplit(api_base)
        port, base_port = parts.port, base.port
    except ValueError:
        return "not a URL"
    if parts.scheme.lower() != base.scheme.lower() or parts.scheme.lower() != "https":
        return "not https on the custodian's API host"
    if (parts.hostname or "").lower() != (base.hostname or "").lower() or port != base_port:
        return "not on the custodian's API host"
    if parts.username is not None or parts.password is not None or parts.fragment:
        return "user info or fragment"
    prefix = base.path.rstrip("/")
    if not parts.path.startswith(prefix + "/"):
        return "not under the ESPI resource base"
    rest = parts.path[len(prefix) :]
    if not any(shape.fullmatch(rest) for shape in _SHAPES):
        return "not a Batch/Bulk or Batch/Subscription resource"
    try:
        query = parse_qsl(parts.query, keep_blank_values=True, strict_parsing=bool(parts.query))
    except ValueError:
        return "a query that does not parse"
    for key, value in query:
        if key.lower() not in _QUERY_KEYS:
            return "an unexpected query parameter"
        if not _QUERY_VALUE.fullmatch(value):
            return "an unexpected query value"
    return None


class SourceRateLimit:
    """Token buckets (:class:`scwadd_core.throttle.TokenBucket`) per sender address and for all
    senders together (in this process).

    ``allow(source)`` takes one token from both, or returns the seconds until one is there
    (taking none: a flood that exhausts the total must not also spend a sender's own tokens).
    The address table keeps the ``sources_tracked`` addresses that most recently sent an
    accepted notification.
    """

    _ALL = "*"

    def __init__(self, limits: NotifyLimits) -> None:
        self.limits = limits
        self.per_source = TokenBucket(
            burst=limits.per_source_burst,
            per_minute=limits.per_source_rate * 60,
            max_clients=limits.sources_tracked,
        )
        self.total = TokenBucket(
            burst=limits.total_burst, per_minute=limits.total_rate * 60, max_clients=1
        )

    def allow(self, source: str) -> float:
        """0.0 when the notification may go on; otherwise the seconds to wait (Retry-After)."""
        wait = self.per_source.wait(source) or self.total.wait(self._ALL)
        if wait:
            return wait
        self.per_source.take(source)
        self.total.take(self._ALL)
        return 0.0

"""Bills (UsageSummary) and customer details (RetailCustomer), fetched only when granted.

PG&E's granted scope names the function blocks the customer shared
(``FB=1_3_4_5_8_13_14_15_16_18_19_31_32_35_37_38_39_40_46;...``, ``pge-share-my-data.md``):
15 / 16 are the usage summary (16 with its cost), 46 the retail customer. Nothing outside them is
asked for: a grant without them costs no call and stores nothing of them.

Fewest calls: a Batch (or Bulk) answer already carries the UsageSummaries of the UsagePoints it
covers when they are granted (PG&E's feeds link them; the sandbox includes them), so
:class:`SummaryWatch` notes, while the interval documents are stored, which UsagePoints' summaries
came with them; only the others are asked for, one ``.../UsagePoint/{id}/UsageSummary`` request
per UsagePoint over the history (split only if the custodian's range limit forces it). The
customer details are one ``Batch/RetailCustomer/{id}`` request (with the subscription id, which
the custodian accepts there; PG&E documents no other way to learn the retail customer id from a
grant). Every call goes through the job's :class:`~scwadd_fetcher.custodian.EspiSession`, so the
shared call budget paces it (and retries 5xx as for the intervals). A refusal (403/404) of a
granted resource, or one that keeps failing, is logged and skipped: the intervals are the export,
the bills are extra.
"""

from __future__ import annotations

import logging
import re
from dataclasses import dataclass, field
from datetime import UTC, datetime

from scwadd_core.events import RAW_BUCKET

from scwadd_fetcher.custodian import EspiSession, PermanentError
from scwadd_fetcher.documents import check_feed
from scwadd_fetcher.fetch import RawStore
from scwadd_fetcher.windows import DAY, Window, split

log = logging.getLogger(__name__)

FB_USAGE_SUMMARY = frozenset({15, 16})
FB_RETAIL_CUSTOMER = 46
MAX_SCOPE_CHARS = 4096
# A UsageSummary entry's own href: .../UsagePoint/{up}/UsageSummary/{id}; the UsagePoint's link
# to the collection (.../UsageSummary") has no id after it.
_SUMMARY_HREF = re.compile(rb"/UsagePoint/([^/\"'<>\s]+)/UsageSummary/[^\"'<>\s/]+[\"']")


def function_blocks(scope: str) -> frozenset[int]:
    """The function blocks of a granted scope (``FB=1_3_4_15;IntervalDuration=...``): the
    numbers of its ``FB`` term; empty when it has none. Bounded: a scope over
    :data:`MAX_SCOPE_CHARS` characters or a non-numeric block raises ``ValueError``."""
    if len(scope) > MAX_SCOPE_CHARS:
        raise ValueError(f"the granted scope is longer than {MAX_SCOPE_CHARS} characters")
    for term in scope.split(";"):
        key, _, value = term.strip().partition("=")
        if key.strip().upper() == "FB":
            parts = [p for p in value.strip().split("_") if p]
            if not all(p.isdigit() and len(p) <= 4 for p in parts):
                raise ValueError(f"the granted scope's FB term is not numbers: {value[:40]!r}")
            return frozenset(int(p) for p in parts)
    return frozenset()


@dataclass(frozen=True)
class Granted:
    """What the scope allows beyond the intervals."""

    usage_summary: bool
    retail_customer: bool

    @classmethod
    def from_scope(cls, scope: str) -> Granted:
        blocks = function_blocks(scope)
        return cls(bool(blocks & FB_USAGE_SUMMARY), FB_RETAIL_CUSTOMER in blocks)


class SummaryWatch:
    """A raw store that notes which UsagePoints' UsageSummaries the stored documents carry."""

    def __init__(self, store: RawStore) -> None:
        self._store = store
        self.usage_points_with_summaries: set[str] = set()

    async def put(self, bucket: str, name: str, data: bytes) -> None:
        for match in _SUMMARY_HREF.finditer(data):
            self.usage_points_with_summaries.add(match.group(1).decode("utf-8", "replace"))
        await self._store.put(bucket, name, data)


#: Consecutive UsageSummary windows overlap by this much, so a billing period (at most about a
#: month) that straddles one window's end lies whole in the next: a custodian serves a summary
#: only for periods inside the requested range.
SUMMARY_OVERLAP_SECONDS = 35 * DAY


def summary_windows(period: Window, max_range_seconds: int | None) -> list[Window]:
    """The history in one window, or, when the custodian's range limit forces several, windows
    of at most ``max_range_seconds`` overlapping by :data:`SUMMARY_OVERLAP_SECONDS` (when the
    limit leaves room for it; the engine reads a repeated bill once)."""
    if max_range_seconds is None or max_range_seconds >= period.seconds:
        return [period]
    if max_range_seconds <= 2 * SUMMARY_OVERLAP_SECONDS:
        return split(period, max_range_seconds)
    windows = []
    start = period.start
    while True:
        end = min(start + max_range_seconds, period.end)
        windows.append(Window(start, end))
        if end >= period.end:
            return windows
        start = end - SUMMARY_OVERLAP_SECONDS


def carried_completely(period: Window, max_range_seconds: int | None) -> bool:
    """Whether the interval documents' own UsageSummaries are complete: only when the history
    came in one request (a billing period across two windows is in neither)."""
    return max_range_seconds is None or max_range_seconds >= period.seconds


@dataclass
class ExtrasOutcome:
    summary_objects: list[str] = field(default_factory=list)
    customer_objects: list[str] = field(default_factory=list)
    # Granted yet not received: one sentence each (the resource and why; no customer data), so
    # the manifest says what is missing instead of the export silently lacking it.
    missing: list[str] = field(default_factory=list)


async def fetch_extras(
    *,
    job_id: str,
    session: EspiSession,
    store: RawStore,
    api_base: str,
    subscription_id: str,
    usage_points: list[str],
    period: Window,
    granted: Granted,
    carried: set[str],
    max_range_seconds: int | None = None,
) -> ExtrasOutcome:
    """Fetch what ``granted`` allows and the interval documents did not carry (``carried``: the
    UsagePoints whose summaries came with them, ignored unless the history came in one request,
    see :func:`carried_completely`); store each answer as a raw object named
    ``{job_id}/summary/...`` or ``{job_id}/customer/...``. Raises
    :class:`~scwadd_fetcher.custodian.PermanentError` when the custodian keeps failing."""
    outcome = ExtrasOutcome()
    base = api_base.rstrip("/")
    if not carried_completely(period, max_range_seconds):
        carried = set()
    if granted.usage_summary:
        for index, usage_point in enumerate(usage_points):
            if usage_point in carried:
                continue
            url = f"{base}/Subscription/{subscription_id}/UsagePoint/{usage_point}/UsageSummary"
            for window in summary_windows(period, max_range_seconds):
                params = {"published-min": str(window.start), "published-max": str(window.end)}
                what = (
                    f"the bills (UsageSummary) of UsagePoint {usage_point}, "
                    f"{_day(window.start)} to {_day(window.end)}"
                )
                body = await _get(session, url, params, what, outcome.missing)
                if body:
                    name = f"{job_id}/summary/usagepoint-{index}/{window.start}-{window.end}.xml"
                    await store.put(RAW_BUCKET, name, body)
                    outcome.summary_objects.append(name)
    if granted.retail_customer:
        url = f"{base}/Batch/RetailCustomer/{subscription_id}"
        what = "the customer's details (RetailCustomer)"
        body = await _get(session, url, None, what, outcome.missing)
        if body:
            name = f"{job_id}/customer/retailcustomer.xml"
            await store.put(RAW_BUCKET, name, body)
            outcome.customer_objects.append(name)
    return outcome


def _day(epoch: int) -> str:
    return datetime.fromtimestamp(epoch, UTC).date().isoformat()


async def _get(
    session: EspiSession,
    url: str,
    params: dict[str, str] | None,
    what: str,
    missing: list[str],
) -> bytes | None:
    """The 200 answer's body, None for 204 (nothing in the range) or, noted in ``missing``, for
    a refusal (403/404) or a custodian that kept failing: the intervals are the export, and a
    granted extra the custodian will not give must not fail it, nor be left out unsaid."""
    try:
        answer = await session.call(
            url, params=params, read_body=check_feed, ok=(200, 204, 403, 404)
        )
    except PermanentError as error:
        # The intervals are fetched and are the export; a bill the custodian will not give is
        # left out (the exporter's manifest then lists no bills for it), not the whole export.
        log.warning("a granted resource could not be fetched: %s", error)
        missing.append(f"{what}: {error}")
        return None
    if answer.status_code in (403, 404):
        # Granted, yet refused: nothing to store, and no reason to fail the intervals' export.
        log.warning("a granted resource was refused (%d); going on without it", answer.status_code)
        missing.append(f"{what}: refused by the utility (HTTP {answer.status_code})")
        return None
    return answer.content if answer.status_code == 200 else None

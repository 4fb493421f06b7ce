"""One customer's fetch: every UsagePoint, the whole history, into the raw object store.

Calls per one-meter customer when the custodian allows the whole period in one request: the
UsagePoint list, and one batch request per UsagePoint (plus, for a 202, one GET of each
announced resource) — 2 or 3, against the original's 16.
"""

from __future__ import annotations

import asyncio
import logging
import time
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Literal, Protocol

from scwadd_core.events import RAW_BUCKET

from scwadd_fetcher import metrics
from scwadd_fetcher.bulk import BulkRequests, NoBulkResource
from scwadd_fetcher.custodian import EspiSession, PermanentError
from scwadd_fetcher.documents import (
    NO_DATA,
    Feed,
    MalformedDocument,
    check_feed,
    read_feed,
    split_by_subscription,
    usage_point_ids,
)
from scwadd_fetcher.notifications import Announced, BatchWaiters, Expectation
from scwadd_fetcher.windows import DAY, Window, is_range_refusal, max_range_from_message, split

log = logging.getLogger(__name__)

UNPROCESSED_BATCH = "unprocessed batch request"


class RawStore(Protocol):
    """Where the raw documents go (:class:`scwadd_core.objects.ObjectBuckets`)."""

    async def put(self, bucket: str, name: str, data: bytes) -> None: ...


Progress = Callable[[str], Awaitable[None]]


@dataclass(frozen=True)
class FetchOptions:
    api_base: str
    period: Window
    max_range_seconds: int | None = None
    notification_timeout: float = 300.0
    rerequests: int = 2  # after a 202 whose notification never came
    # "usagepoint": Batch/Subscription/{id}/UsagePoint/{up}, synchronous at PG&E (200);
    # "subscription": Batch/Subscription/{id}, one asynchronous request (202) for all meters;
    # "bulk": Batch/Bulk/{BulkID} with the client token, one request for every job of a round.
    batch_scope: Literal["usagepoint", "subscription", "bulk"] = "usagepoint"


@dataclass
class FetchOutcome:
    usage_points: list[str] = field(default_factory=list)
    raw_objects: list[str] = field(default_factory=list)
    empty_windows: list[Window] = field(default_factory=list)
    readings: int = 0
    max_range_seconds: int | None = None


class RangeTooLong(Exception):
    def __init__(self, max_seconds: int) -> None:
        super().__init__(f"the custodian accepts at most {max_seconds} s per request")
        self.max_seconds = max_seconds


def refusal_of(text: str, window: Window) -> Exception | None:
    """What a 400 to a batch request means: None for "a batch is already being prepared" (wait
    for it, PG&E's "An unprocessed batch request ... already exists"), :class:`RangeTooLong` for
    a range the custodian finds too long, otherwise :class:`PermanentError`."""
    if UNPROCESSED_BATCH in text.lower():
        return None
    if is_range_refusal(text):
        learned = max_range_from_message(text)
        if learned is None or learned >= window.seconds:
            learned = window.seconds // 2
        if learned < DAY:
            return PermanentError("the utility refused even a one-day request for the data")
        return RangeTooLong(learned)
    return PermanentError(
        "the utility's data service refused the request for the usage data: " + text.strip()[:200]
    )


class JobFetch:
    def __init__(
        self,
        job_id: str,
        session: EspiSession,
        waiters: BatchWaiters,
        store: RawStore,
        options: FetchOptions,
        progress: Progress | None = None,
        bulk: BulkRequests | None = None,
    ) -> None:
        self.job_id = job_id
        self.bulk = bulk
        self.session = session
        self.waiters = waiters
        self.store = store
        self.options = options
        self.progress = progress
        self.outcome = FetchOutcome(max_range_seconds=options.max_range_seconds)
        self._consumed: set[str] = set()
        self._subscription_marker = b""
        self._subscription_id = ""

    async def _say(self, message: str) -> None:
        if self.progress is not None:
            await self.progress(message)

    async def run(self, subscription_id: str) -> FetchOutcome:
        base = self.options.api_base.rstrip("/")
        self._subscription_marker = f"/Subscription/{subscription_id}/".encode()
        self._subscription_id = subscription_id
        if self.options.batch_scope == "bulk" and self.bulk is not None:
            try:
                return await self._run_bulk(subscription_id)
            except NoBulkResource:
                # bulk is the default, and a registration may have no Bulk resource the
                # custodian names: the job still completes, one UsagePoint at a time.
                log.warning("no Bulk resource known; fetching per UsagePoint instead")
        listing = await self.session.call(
            f"{base}/Subscription/{subscription_id}/UsagePoint",
            read_body=usage_point_ids,
            ok=(200, 204),
        )
        ids = listing.read or []
        if not ids:
            raise PermanentError("the utility shared no meter (UsagePoint) for this account")
        self.outcome.usage_points = ids
        if self.options.batch_scope == "subscription":
            # One (asynchronous) request covers every UsagePoint of the subscription.
            await self._say(f"Asking PG&E for the data of {len(ids)} meter(s).")
            await self._fetch_period(f"{base}/Batch/Subscription/{subscription_id}", "all")
            return self.outcome
        for index, usage_point in enumerate(ids):
            await self._say(f"Fetching meter {index + 1} of {len(ids)}.")
            url = f"{base}/Batch/Subscription/{subscription_id}/UsagePoint/{usage_point}"
            await self._fetch_period(url, f"usagepoint-{index}")
        return self.outcome

    async def _run_bulk(self, subscription_id: str) -> FetchOutcome:
        """The history from the Bulk rounds this job joins (no call under the customer's token);
        the UsagePoints are those in the data."""
        assert self.bulk is not None
        await self._say("Asking PG&E for your data together with other customers' requests.")
        remaining = self.options.period
        while remaining.start < remaining.end:
            window = split(remaining, self.outcome.max_range_seconds)[0]
            try:
                part = await self.bulk.data_for(subscription_id, window)
            except RangeTooLong as refusal:
                self.outcome.max_range_seconds = refusal.max_seconds
                continue
            if part is None:
                raise PermanentError(
                    "the utility's bulk data did not include this customer's subscription"
                )
            if part.body:
                for usage_point in part.usage_points:
                    if usage_point not in self.outcome.usage_points:
                        self.outcome.usage_points.append(usage_point)
                await self._store(self._object_name("bulk", window), part)
            else:
                self.outcome.empty_windows.append(window)
            remaining = Window(window.end, remaining.end)
        if not self.outcome.usage_points:
            raise PermanentError("the utility shared no meter (UsagePoint) for this account")
        return self.outcome

    async def _fetch_period(self, url: str, label: str) -> None:
        remaining = self.options.period
        while remaining.start < remaining.end:
            window = split(remaining, self.outcome.max_range_seconds)[0]
            try:
                await self._fetch_window(url, label, window)
            except RangeTooLong as refusal:
                # Learned from the custodian: cut the rest of the period accordingly.
                self.outcome.max_range_seconds = refusal.max_seconds
                log.info("custodian maximum range is %d s; splitting", refusal.max_seconds)
                continue
            remaining = Window(window.end, remaining.end)

    def _object_name(self, label: str, window: Window, part: int | None = None) -> str:
        suffix = "" if part is None else f"-{part}"
        return f"{self.job_id}/{label}/{window.start}-{window.end}{suffix}.xml"

    async def _store(self, name: str, feed: Feed) -> None:
        """Store a document read once when it arrived (:func:`read_feed`), and count it."""
        await self.store.put(RAW_BUCKET, name, feed.body)
        self.outcome.raw_objects.append(name)
        self.outcome.readings += feed.readings
        metrics.READINGS_FETCHED.inc(feed.readings)

    async def _fetch_window(self, url: str, label: str, window: Window) -> None:
        correlation_ids: set[str] = set()
        for _ in range(1 + self.options.rerequests):
            correlation_id = uuid.uuid4().hex
            correlation_ids.add(correlation_id)
            expectation = self.waiters.expect(
                correlation_ids, url, accepts_candidates=self.options.batch_scope == "subscription"
            )
            try:
                params = {
                    "published-min": str(window.start),
                    "published-max": str(window.end),
                    "correlationID": correlation_id,
                }
                response = await self.session.call(
                    url, params=params, read_body=read_feed, ok=(200, 202, 204, 400)
                )
                status = response.status_code
                if response.read is not None:  # a 200: the data, read once on arrival
                    await self._store(self._object_name(label, window), response.read)
                    return
                if status == 204:
                    self.outcome.empty_windows.append(window)
                    return
                if status == 400:
                    refusal = refusal_of(response.text, window)
                    if refusal is not None:
                        raise refusal
                # 202, or a batch of this data is already being prepared: wait for the BatchList.
                if await self._await_batch(expectation, label, window):
                    return
            finally:
                self.waiters.cancel(expectation)
            log.warning(
                "no usable batch notification within %.0f s; asking again",
                self.options.notification_timeout,
            )
        raise PermanentError(
            "the utility accepted the request for the usage data but never delivered it"
        )

    async def _await_batch(self, expectation: Expectation, label: str, window: Window) -> bool:
        deadline = time.monotonic() + self.options.notification_timeout
        while (announced := await self.waiters.next(expectation, deadline)) is not None:
            stored = 0
            for item in announced:
                if item.url in self._consumed:
                    continue  # a duplicated notification
                feed = await self._get_announced(item)
                if feed is None:
                    continue
                self._consumed.add(item.url)
                if feed.body:
                    await self._store(self._object_name(label, window, len(self._consumed)), feed)
                else:
                    self.outcome.empty_windows.append(window)
                stored += 1
            if stored:
                return True
        return False

    async def _get_announced(self, item: Announced) -> Feed | None:
        """The announced document (:data:`NO_DATA` when it holds none), or None when it is not
        ours."""
        if "/Batch/Bulk/" in item.url:
            return await self._get_bulk(item)
        if not item.exact:
            # Somebody's batch: ours only if our customer's token may read it and it is about
            # our subscription.
            answer = await self.session.call(item.url, read_body=read_feed, ok=(200, 204, 403, 404))
            if answer.status_code in (403, 404):
                return None
            if answer.status_code == 200 and self._subscription_marker not in answer.content:
                return None
        else:
            answer = await self.session.call(item.url, read_body=read_feed, ok=(200, 204))
        return answer.read or NO_DATA

    async def _get_bulk(self, item: Announced) -> Feed | None:
        """A Bulk URL (PG&E names the answer to ``Batch/Subscription`` that way too): fetched
        with the client token (a customer token gets 403), it may hold every active
        subscription, so only our subscription's part is kept; None when it holds none of it."""
        answer = await self.session.call(
            item.url, client_token=True, read_body=check_feed, ok=(200, 204, 403, 404)
        )
        if answer.status_code in (403, 404):
            return None
        if answer.status_code == 204:
            return NO_DATA if item.exact else None
        split = await asyncio.to_thread(split_by_subscription, answer.content)
        part = split.parts.get(self._subscription_id)
        if part is None and not item.exact:
            return None
        # Our part is a document of its own: read once, here (the whole was checked above).
        return await asyncio.to_thread(read_feed, part) if part else NO_DATA


__all__ = [
    "FetchOptions",
    "FetchOutcome",
    "JobFetch",
    "MalformedDocument",
    "RangeTooLong",
]

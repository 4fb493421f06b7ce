"""One customer's fetch: every UsagePoint, the whole history, into the raw object store.

Calls per one-meter customer when the custodian allows the whole period in one request: the
UsagePoint list, and one batch request per UsagePoint (plus, for a 202, one GET of each
announced resource) — 2 or 3, against the original's 16.
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Protocol

from scwadd_fetcher import metrics
from scwadd_fetcher.api import EspiSession, PermanentError
from scwadd_fetcher.documents import MalformedDocument, check_feed, usage_point_ids
from scwadd_fetcher.notifications import BatchWaiters
from scwadd_fetcher.windows import DAY, Window, is_range_refusal, max_range_from_message, split

log = logging.getLogger(__name__)

UNPROCESSED_BATCH = "unprocessed batch request"


class RawStore(Protocol):
    async def put(self, name: str, data: bytes) -> None: ...


Progress = Callable[[str], Awaitable[None]]


@dataclass(frozen=True)
class FetchOptions:
    api_base: str
    period: Window
    max_range_seconds: int | None = None
    notification_timeout: float = 300.0
    rerequests: int = 2  # after a 202 whose notification never came


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


def subscription_id_from(resource_uri: str) -> str:
    """``.../Batch/Subscription/{id}`` (or ``.../Subscription/{id}/...``) → ``{id}``."""
    parts = [p for p in resource_uri.split("?")[0].split("/") if p]
    if "Subscription" in parts:
        index = parts.index("Subscription")
        if index + 1 < len(parts):
            return parts[index + 1]
    raise ValueError("the resourceURI names no Subscription")


def _check_usage_point_list(body: bytes) -> None:
    usage_point_ids(body)


def _check_feed(body: bytes) -> None:
    check_feed(body)


class JobFetch:
    def __init__(
        self,
        job_id: str,
        session: EspiSession,
        waiters: BatchWaiters,
        store: RawStore,
        options: FetchOptions,
        progress: Progress | None = None,
    ) -> None:
        self.job_id = job_id
        self.session = session
        self.waiters = waiters
        self.store = store
        self.options = options
        self.progress = progress
        self.outcome = FetchOutcome(max_range_seconds=options.max_range_seconds)

    async def _say(self, message: str) -> None:
        if self.progress is not None:
            await self.progress(message)

    async def run(self, subscription_id: str) -> FetchOutcome:
        base = self.options.api_base.rstrip("/")
        listing = await self.session.call(
            f"{base}/Subscription/{subscription_id}/UsagePoint",
            check_body=_check_usage_point_list,
            ok=(200, 204),
        )
        ids = usage_point_ids(listing.content) if listing.status_code == 200 else []
        if not ids:
            raise PermanentError("the utility shared no meter (UsagePoint) for this account")
        self.outcome.usage_points = ids
        for index, usage_point in enumerate(ids):
            await self._say(f"Fetching meter {index + 1} of {len(ids)}.")
            await self._fetch_usage_point(base, subscription_id, index, usage_point)
        return self.outcome

    async def _fetch_usage_point(
        self, base: str, subscription_id: str, index: int, usage_point: str
    ) -> None:
        url = f"{base}/Batch/Subscription/{subscription_id}/UsagePoint/{usage_point}"
        remaining = self.options.period
        while remaining.start < remaining.end:
            window = split(remaining, self.outcome.max_range_seconds)[0]
            try:
                await self._fetch_window(url, index, window)
            except RangeTooLong as refusal:
                # Learned from the custodian: cut the rest of the period accordingly.
                self.outcome.max_range_seconds = refusal.max_seconds
                log.info("custodian maximum range is %d s; splitting", refusal.max_seconds)
                continue
            remaining = Window(window.end, remaining.end)

    def _object_name(self, index: int, window: Window, part: int | None = None) -> str:
        suffix = "" if part is None else f"-{part}"
        return f"{self.job_id}/usagepoint-{index}/{window.start}-{window.end}{suffix}.xml"

    async def _store(self, name: str, body: bytes) -> None:
        readings = check_feed(body)
        await self.store.put(name, body)
        self.outcome.raw_objects.append(name)
        self.outcome.readings += readings
        metrics.READINGS_FETCHED.inc(readings)

    async def _fetch_window(self, url: str, index: int, window: Window) -> None:
        correlation_ids: set[str] = set()
        for _ in range(1 + self.options.rerequests):
            correlation_id = uuid.uuid4().hex
            correlation_ids.add(correlation_id)
            expectation = self.waiters.expect(correlation_ids, url)
            params = {
                "published-min": str(window.start),
                "published-max": str(window.end),
                "correlationID": correlation_id,
            }
            try:
                response = await self.session.call(
                    url, params=params, check_body=_check_feed, ok=(200, 202, 204, 400)
                )
            except BaseException:
                self.waiters.cancel(expectation)
                raise
            status = response.status_code
            if status == 200:
                self.waiters.cancel(expectation)
                await self._store(self._object_name(index, window), response.content)
                return
            if status == 204:
                self.waiters.cancel(expectation)
                self.outcome.empty_windows.append(window)
                return
            if status == 400:
                text = response.text
                if UNPROCESSED_BATCH not in text.lower():
                    self.waiters.cancel(expectation)
                    if is_range_refusal(text):
                        learned = max_range_from_message(text)
                        if learned is None or learned >= window.seconds:
                            learned = max(DAY, window.seconds // 2)
                        if learned >= window.seconds:
                            raise PermanentError(
                                "the utility refused even a one-day request for the data"
                            )
                        raise RangeTooLong(learned)
                    raise PermanentError(
                        "the utility's data service refused the request for the usage data: "
                        + text.strip()[:200]
                    )
            # 202, or a batch request for this data is already being processed: wait for it.
            urls = await self.waiters.wait(expectation, self.options.notification_timeout)
            if urls is None:
                log.warning(
                    "no batch notification within %.0f s; asking again",
                    self.options.notification_timeout,
                )
                continue
            for part, announced in enumerate(urls):
                answer = await self.session.call(
                    announced,
                    client_token="/Batch/Bulk/" in announced,
                    check_body=_check_feed,
                    ok=(200, 204),
                )
                if answer.status_code == 204:
                    self.outcome.empty_windows.append(window)
                    continue
                await self._store(self._object_name(index, window, part), answer.content)
            return
        raise PermanentError(
            "the utility accepted the request for the usage data but never delivered it"
        )


__all__ = [
    "FetchOptions",
    "FetchOutcome",
    "JobFetch",
    "MalformedDocument",
    "RangeTooLong",
    "subscription_id_from",
]

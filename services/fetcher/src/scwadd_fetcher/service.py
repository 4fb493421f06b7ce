"""The fetcher service: grant.received in, raw ESPI in the object store, fetch.* out.

Handling one ``grant.received`` (see :meth:`Fetcher.handle_grant`):

1. claim the job in the ledger; a job already finished is only re-announced (same event id),
   a job another live replica is working on is handed back to the bus for later;
2. open the sealed tokens, list the UsagePoints, fetch the history (:mod:`scwadd_fetcher.fetch`),
   every raw document stored in bucket ``scwadd-raw`` as it arrives;
3. record the outcome event with the job, then publish it (``fetch.completed``, or
   ``fetch.failed`` with a sentence for a person, so the exporter revokes either way).

An exception that is not the custodian's final word (NATS or the database away, ...) leaves the
message unacknowledged, so the bus redelivers it with backoff.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Literal, TypeVar

from nats.aio.msg import Msg
from scwadd_core.bus import Bus, ConsumerPolicy, RetryLater
from scwadd_core.custodian import CallPolicy, Custodian, CustomerToken
from scwadd_core.db import in_transaction
from scwadd_core.events import (
    BATCH_READY,
    BatchReady,
    Event,
    FetchCompleted,
    FetchFailed,
    GrantReceived,
    JobEvent,
    JobProgress,
    SealedSecret,
    decode,
    stable_event_id,
)
from scwadd_core.objects import ObjectBuckets
from scwadd_core.sealing import Keyring, SealingError
from sqlalchemy.orm import Session, sessionmaker

from scwadd_fetcher import ledger, metrics
from scwadd_fetcher.bulk import BulkOptions, BulkRequests
from scwadd_fetcher.custodian import EspiSession, PermanentError
from scwadd_fetcher.extras import Granted, SummaryWatch, fetch_extras
from scwadd_fetcher.fetch import FetchOptions, JobFetch
from scwadd_fetcher.ledger import COMPLETED, FAILED, ClaimResult, Holder
from scwadd_fetcher.notifications import BatchWaiters
from scwadd_fetcher.notify import NotifyLimits, check_resource_url, read_batch_list
from scwadd_fetcher.settings import FetcherSettings
from scwadd_fetcher.windows import DAY, history_period

log = logging.getLogger(__name__)

T = TypeVar("T")


class JobBusy(RetryLater):
    """Another replica holds this job's lease; the bus offers the message again when it runs
    out (the holder renews it while alive, so a dead holder's job is resumed within a lease)."""


# After a lease runs out, a little slack before the grant is offered again.
LEASE_SLACK_SECONDS = 0.5
# How long a grant held by a replica that died stays unacknowledged before JetStream hands it
# to another (the live holder keeps it with in-progress acks every third of this).
GRANT_ACK_WAIT_SECONDS = 10.0


@dataclass(frozen=True)
class FetcherOptions:
    api_base: str
    history_days: int = 365
    max_range_days: int | None = None
    notification_timeout: float = 300.0
    rerequests: int = 2
    batch_scope: Literal["usagepoint", "subscription", "bulk"] = "usagepoint"
    bulk_gather_seconds: float = 5.0
    bulk_id: str | None = None
    concurrency: int = 4
    retry: CallPolicy = field(default_factory=CallPolicy)
    notify: NotifyLimits = field(default_factory=NotifyLimits)

    @classmethod
    def from_settings(cls, settings: FetcherSettings) -> FetcherOptions:
        return cls(
            api_base=settings.PGE_API_BASE,
            history_days=settings.HISTORY_DAYS,
            max_range_days=settings.CUSTODIAN_MAX_RANGE_DAYS,
            notification_timeout=settings.BATCH_NOTIFICATION_TIMEOUT_SECONDS,
            rerequests=settings.BATCH_REREQUESTS,
            batch_scope=settings.BATCH_SCOPE,
            bulk_gather_seconds=settings.BULK_GATHER_SECONDS,
            bulk_id=settings.PGE_BULK_ID,
            concurrency=settings.concurrency,
            retry=CallPolicy(
                attempts=settings.FETCH_RETRY_ATTEMPTS,
                initial_wait=settings.FETCH_RETRY_INITIAL_SECONDS,
                max_wait=settings.FETCH_RETRY_MAX_SECONDS,
            ),
            notify=NotifyLimits(
                per_source_rate=settings.NOTIFY_RATE_PER_SECOND,
                per_source_burst=settings.NOTIFY_BURST,
            ),
        )


class Fetcher:
    def __init__(
        self,
        *,
        bus: Bus,
        sessions: sessionmaker[Session],
        holder: Holder,
        custodian: Custodian,
        keyring: Keyring,
        raw_store: ObjectBuckets,
        options: FetcherOptions,
    ) -> None:
        self.bus = bus
        self.sessions = sessions
        self.holder = holder
        self.custodian = custodian
        self.keyring = keyring
        self.raw_store = raw_store
        self.options = options
        self.waiters = BatchWaiters()
        # One Bulk round at a time per window, shared by this process's jobs (BATCH_SCOPE=bulk);
        # its calls use the client token only.
        self.bulk = BulkRequests(
            EspiSession(custodian, CustomerToken(custodian, "", None), options.retry),
            self.waiters,
            BulkOptions(
                api_base=options.api_base,
                gather_seconds=options.bulk_gather_seconds,
                notification_timeout=options.notification_timeout,
                rerequests=options.rerequests,
                bulk_id=options.bulk_id,
            ),
        )
        # A fetch can take minutes (rate limit, 202 waits): a duplicate grant event offered while
        # another replica holds the job is handed back for long enough to see it finish.
        self.policy = ConsumerPolicy(
            max_deliver=30,
            backoff=(2.0, 5.0, 10.0, 30.0, 60.0),
            ack_wait=GRANT_ACK_WAIT_SECONDS,
            concurrency=options.concurrency,
        )
        self.notify_limits = options.notify
        self._running: set[str] = set()  # job ids this process is handling now

    async def _db(self, work: Callable[[Session], T]) -> T:
        return await in_transaction(self.sessions, work)

    # -- batch notifications ---------------------------------------------------------------

    def accept_notification(self, body: bytes) -> BatchReady:
        """Read a BatchList POSTed to ``/espi/notify`` (:mod:`scwadd_fetcher.notify`); raises
        ValueError, with a sentence for the sender, when it names nothing we may fetch.

        Only resource URLs of the shapes the custodian sends, on its API host, are kept: the
        notification is unauthenticated, and we call what it names with our tokens. A body that
        is not well-formed XML is read leniently (and logged) rather than lost.
        """
        limits = self.notify_limits
        read = read_batch_list(body)
        if len(read.urls) > limits.max_resources:
            raise ValueError(
                f"a BatchList names at most {limits.max_resources} resources, not {len(read.urls)}"
            )
        kept: list[str] = []
        refused: dict[str, int] = {}
        for url in read.urls:
            reason = check_resource_url(url, self.options.api_base)
            if reason is None:
                if url not in kept:
                    kept.append(url)
            else:
                refused[reason] = refused.get(reason, 0) + 1
        if refused:
            log.warning(
                "dropped %d resource URL(s) of a notification: %s",
                sum(refused.values()),
                "; ".join(f"{count} {reason}" for reason, count in sorted(refused.items())),
            )
        if not kept:
            raise ValueError("the BatchList names no batch resource on the custodian's API host")
        if read.recovered is not None:
            metrics.BATCH_NOTIFICATIONS.labels("recovered").inc()
            log.warning(
                "a notification that is not well-formed XML was recovered (%s): %d resource "
                "URL(s) on the custodian's API host kept",
                read.recovered,
                len(kept),
            )
        # Derived from the URLs: a duplicated notification is stored once by JetStream.
        return BatchReady(resource_urls=kept, event_id=stable_event_id("batch", *sorted(kept)))

    async def on_batch_ready(self, msg: Msg) -> None:
        """Every replica hears every ``batch.ready`` (plain subscription, not the shared
        consumer): the job waiting for it may be on any of them."""
        try:
            event = decode(msg.subject, msg.data)
        except ValueError:
            log.warning("ignored an undecodable batch.ready")
            return
        if isinstance(event, BatchReady):
            self.waiters.deliver(event.resource_urls)

    async def listen_batch_ready(self) -> Any:
        return await self.bus.nc.subscribe(BATCH_READY, cb=self.on_batch_ready)

    # -- grants ----------------------------------------------------------------------------

    async def handle_grant(self, event: Event) -> None:
        if not isinstance(event, GrantReceived):
            return
        if event.job_id in self._running:
            # A redelivery (ack_wait passed on a busy machine) of a job this process is still
            # fetching: the ledger would let its own owner claim it again and fetch it twice.
            raise JobBusy(
                f"job {event.job_id} is being fetched by this replica",
                delay=self.holder.lease.total_seconds(),
            )
        self._running.add(event.job_id)
        try:
            await self._handle_grant(event)
        finally:
            self._running.discard(event.job_id)

    async def _handle_grant(self, event: GrantReceived) -> None:
        claim = await self._db(lambda s: ledger.claim(s, event.job_id, self.holder))
        if claim.result is ClaimResult.BUSY:
            until = claim.lease_until or datetime.now(UTC)
            delay = (until - datetime.now(UTC)).total_seconds() + LEASE_SLACK_SECONDS
            raise JobBusy(f"job {event.job_id} is being fetched by another replica", delay=delay)
        if claim.result is ClaimResult.FINISHED:
            if not claim.published and claim.outcome_subject and claim.outcome_event:
                await self._publish_outcome(
                    event.job_id, claim.outcome_subject, claim.outcome_event
                )
            log.info("job already %s; nothing to fetch", claim.status)
            return
        access = _sealed(claim.sealed_access_token) or event.access_token
        refresh = _sealed(claim.sealed_refresh_token) or event.refresh_token
        heartbeat = asyncio.create_task(self._keep_lease(event.job_id))
        try:
            outcome_event, status, calls = await self._fetch(event, access, refresh)
        except asyncio.CancelledError:
            # Stopping: the bus hands the message back at once, and so do we the lease.
            with contextlib.suppress(Exception):
                await self._db(lambda s: ledger.release(s, event.job_id, self.holder))
            raise
        finally:
            heartbeat.cancel()
        subject = outcome_event.subject
        body = outcome_event.model_dump_json()
        finished = await self._db(
            lambda s: ledger.finish(s, event.job_id, self.holder, status, subject, body, calls)
        )
        if not finished:
            raise JobBusy(f"job {event.job_id} was taken over by another replica", delay=0)
        metrics.FETCH_JOBS.labels(status).inc()
        await self._publish_outcome(event.job_id, subject, body)

    async def _keep_lease(self, job_id: str) -> None:
        while True:
            await asyncio.sleep(self.holder.lease.total_seconds() / 3)
            with contextlib.suppress(Exception):
                await self._db(lambda s: ledger.renew(s, job_id, self.holder))

    async def _fetch(
        self, event: GrantReceived, access: SealedSecret, refresh: SealedSecret | None
    ) -> tuple[JobEvent, str, int]:
        """The outcome event, the job status and the custodian calls it took."""
        job_id = event.job_id
        await self._progress(job_id, "fetching", "Fetching your usage data from PG&E.")
        # auth read it from the grant's resourceURI (ESPI ``.../Subscription/{id}``) and
        # checked it there; the event's field is the one place it comes from.
        subscription_id = event.subscription_id

        async def rotate(new_access: str, new_refresh: str | None) -> None:
            sealed_access = self.keyring.seal(new_access, job_id=job_id)
            sealed_refresh = self.keyring.seal(new_refresh, job_id=job_id) if new_refresh else None
            access_json = sealed_access.model_dump_json()
            refresh_json = sealed_refresh.model_dump_json() if sealed_refresh else None
            await self._db(lambda s: ledger.save_tokens(s, job_id, access_json, refresh_json))

        try:
            opened_access = self.keyring.open(access, job_id=job_id)
            opened_refresh = self.keyring.open(refresh, job_id=job_id) if refresh else None
        except SealingError as error:
            # No retry can open it: the key is gone or the event was tampered with.
            log.error("sealed token does not open: %s", error)
            reason = "The customer's access token could not be opened (unknown sealing key)."
            await self._progress(job_id, "failed", reason)
            failed = FetchFailed(
                job_id=job_id, reason=reason, event_id=stable_event_id(job_id, "fetch.failed")
            )
            return failed, FAILED, 0
        token = CustomerToken(self.custodian, opened_access, opened_refresh, on_rotate=rotate)
        session = EspiSession(self.custodian, token, self.options.retry)
        period = history_period(self.options.history_days)
        max_range = self.options.max_range_days * DAY if self.options.max_range_days else None
        watch = SummaryWatch(self.raw_store)
        fetch = JobFetch(
            job_id,
            session,
            self.waiters,
            watch,
            FetchOptions(
                api_base=self.options.api_base,
                period=period,
                max_range_seconds=max_range,
                notification_timeout=self.options.notification_timeout,
                rerequests=self.options.rerequests,
                batch_scope=self.options.batch_scope,
            ),
            progress=lambda message: self._progress(job_id, "fetching", message),
            bulk=self.bulk,
        )
        try:
            outcome = await fetch.run(subscription_id)
            extras = await fetch_extras(
                job_id=job_id,
                session=session,
                store=self.raw_store,
                api_base=self.options.api_base,
                subscription_id=subscription_id,
                usage_points=outcome.usage_points,
                period=period,
                granted=Granted.from_scope(event.scope),
                carried=watch.usage_points_with_summaries,
                max_range_seconds=outcome.max_range_seconds,
            )
        except PermanentError as error:
            reason = str(error)
            log.warning(
                "fetch failed after %d custodian calls: %s (%s)",
                session.calls,
                reason,
                error.detail or "no detail",
            )
            await self._progress(job_id, "failed", _sentence(reason))
            failed = FetchFailed(
                job_id=job_id,
                reason=_sentence(reason),
                event_id=stable_event_id(job_id, "fetch.failed"),
            )
            return failed, FAILED, session.calls
        log.info(
            "fetched %d documents, %d readings, %d usage points in %d custodian calls",
            len(outcome.raw_objects),
            outcome.readings,
            len(outcome.usage_points),
            session.calls,
        )
        meters = len(outcome.usage_points)
        await self._progress(
            job_id,
            "fetching",
            f"Fetched {outcome.readings} readings from {meters} meter{'s' * (meters != 1)}.",
        )
        completed = FetchCompleted(
            job_id=job_id,
            subscription_id=subscription_id,
            raw_objects=outcome.raw_objects,
            summary_objects=extras.summary_objects,
            customer_objects=extras.customer_objects,
            extras_missing=extras.missing,
            usage_points=outcome.usage_points,
            period_start=datetime.fromtimestamp(period.start, UTC),
            period_end=datetime.fromtimestamp(period.end, UTC),
            custodian_calls=session.calls,
            event_id=stable_event_id(job_id, "fetch.completed"),
        )
        return completed, COMPLETED, session.calls

    async def _publish_outcome(self, job_id: str, subject: str, body: str) -> None:
        await self.bus.publish(decode(subject, body.encode()))
        await self._db(lambda s: ledger.mark_published(s, job_id))

    async def _progress(self, job_id: str, phase: Any, message: str) -> None:
        try:
            await self.bus.publish(
                JobProgress(job_id=job_id, phase=phase, message=message, event_id=uuid.uuid4().hex)
            )
        except Exception as error:  # progress is a courtesy; never fail a fetch for it
            log.warning("could not publish progress: %s", type(error).__name__)


def _sealed(raw: str | None) -> SealedSecret | None:
    return SealedSecret.model_validate_json(raw) if raw else None


def _sentence(text: str) -> str:
    text = text.strip()
    if not text:
        return "The usage data could not be fetched."
    text = text[0].upper() + text[1:]
    return text if text.endswith(".") else text + "."

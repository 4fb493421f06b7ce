"""The webhooks service's decisions: which events become which messages, and what each attempt's
outcome means (delivered, retried with backoff, failed after the window).

Message types: ``export.ready`` (from ``export.completed``), ``grant.revoked`` (``grant.revoked``
with outcome ``revoked`` or ``already_revoked``) and ``grant.flagged`` (``grant.revoked`` with
outcome ``failed``: the operator must act). The body is the Standard Webhooks payload shape
(``type``, ``timestamp``, ``data``) carrying ids and counts only, never customer data or tokens.
The ``webhook-id`` is ``msg_`` + the event's id, which the publishers derive from the facts, so a
republished event is the same message and a receiver de-duplicates on it.
"""

from __future__ import annotations

import asyncio
import json
import logging
import random
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any
from urllib.parse import urlsplit

import httpx
from scwadd_core.db import as_utc, in_transaction
from scwadd_core.events import Event, ExportCompleted, GrantRevoked, utc_now
from sqlalchemy.orm import Session, sessionmaker

from scwadd_webhooks import ledger, metrics
from scwadd_webhooks.delivery import RefusedAddress, Signer, post
from scwadd_webhooks.models import DeliveryState, WebhookDelivery
from scwadd_webhooks.settings import Network, WebhookSettings

log = logging.getLogger("scwadd_webhooks")

EXPORT_READY = "export.ready"
GRANT_REVOKED = "grant.revoked"
GRANT_FLAGGED = "grant.flagged"
# Deliveries one pass works on at once: a slow endpoint must not hold up the others.
PARALLEL_ATTEMPTS = 8
BATCH = 100


@dataclass(frozen=True)
class Message:
    message_id: str
    event_type: str
    job_id: str
    body: str


@dataclass(frozen=True)
class RetryPolicy:
    """Exponential backoff from ``initial`` doubling to ``maximum`` (each wait jittered by
    ±20 %), for ``window`` after the event; then the delivery fails."""

    window: timedelta
    initial: float
    maximum: float
    # How long a claimed delivery is left to the replica sending it (a request's timeout, twice).
    attempt_lease: timedelta = timedelta(seconds=20)

    def next_wait(self, attempts: int) -> timedelta:
        base = min(self.maximum, self.initial * 2 ** min(attempts, 32))
        return timedelta(seconds=base * random.uniform(0.8, 1.2))  # noqa: S311 - not a secret

    @classmethod
    def from_settings(cls, settings: WebhookSettings) -> RetryPolicy:
        return cls(
            window=timedelta(hours=settings.WEBHOOK_RETRY_HOURS),
            initial=settings.WEBHOOK_BACKOFF_SECONDS,
            maximum=settings.WEBHOOK_BACKOFF_MAX_SECONDS,
            attempt_lease=timedelta(seconds=2 * settings.WEBHOOK_TIMEOUT_SECONDS),
        )


def message_for(event: Event) -> Message | None:
    """The webhook message an event becomes, or None for events the operator is not told of."""
    data: dict[str, Any]
    if isinstance(event, ExportCompleted):
        event_type = EXPORT_READY
        data = {
            "job_id": event.job_id,
            "csv_object": event.csv_object,
            "manifest_object": event.manifest_object,
            "rows": event.rows,
        }
    elif isinstance(event, GrantRevoked) and event.outcome == "failed":
        event_type = GRANT_FLAGGED
        data = {"job_id": event.job_id, "reason": event.reason}
    elif isinstance(event, GrantRevoked):
        event_type = GRANT_REVOKED
        data = {"job_id": event.job_id, "outcome": event.outcome}
    else:
        return None
    body = {"type": event_type, "timestamp": event.occurred_at.isoformat(), "data": data}
    return Message(
        message_id=f"msg_{event.event_id}",
        event_type=event_type,
        job_id=event.job_id,
        body=json.dumps(body, separators=(",", ":"), sort_keys=True),
    )


def origin(url: str) -> str:
    """``scheme://host[:port]`` only: endpoint paths and queries may hold the receiver's token."""
    parts = urlsplit(url)
    return f"{parts.scheme}://{parts.netloc.rpartition('@')[2]}"


class WebhookService:
    def __init__(
        self,
        *,
        sessions: sessionmaker[Session],
        client: httpx.AsyncClient,
        endpoints: list[str],
        signer: Signer | None,
        allowed: list[Network],
        policy: RetryPolicy,
        clock: Callable[[], datetime] = utc_now,
    ) -> None:
        self.sessions = sessions
        self.client = client
        self.endpoints = endpoints
        self.signer = signer
        self.allowed = allowed
        self.policy = policy
        self.clock = clock
        if endpoints and signer is None:
            raise ValueError("WEBHOOK_SECRETS must be set when WEBHOOK_ENDPOINTS is")

    async def on_event(self, event: Event) -> None:
        """Record one delivery per endpoint before the event is acked (the bus acks after)."""
        message = message_for(event)
        if message is None or not self.endpoints:
            return
        now = self.clock()
        await in_transaction(
            self.sessions,
            lambda s: ledger.enqueue(
                s,
                message_id=message.message_id,
                event_type=message.event_type,
                job_id=message.job_id,
                payload=message.body,
                endpoints=self.endpoints,
                now=now,
            ),
        )

    async def deliver_due(self) -> int:
        """Attempt every delivery that is due; returns how many were attempted."""
        now = self.clock()
        lease = self.policy.attempt_lease
        rows = await in_transaction(self.sessions, lambda s: ledger.claim_due(s, now, BATCH, lease))
        gate = asyncio.Semaphore(PARALLEL_ATTEMPTS)

        async def one(row: WebhookDelivery) -> None:
            async with gate:
                await self._attempt(row)

        await asyncio.gather(*(one(row) for row in rows))
        await self.refresh_gauges()
        return len(rows)

    async def _attempt(self, row: WebhookDelivery) -> None:
        assert self.signer is not None  # enqueue only happens with endpoints, hence a signer
        sent_at = self.clock()
        headers = self.signer.headers(row.message_id, row.payload, sent_at)
        where = {"event_type": row.event_type, "endpoint": origin(row.endpoint)}
        try:
            answer = await post(self.client, row.endpoint, row.payload, headers, self.allowed)
        except RefusedAddress as refused:
            await self._record(row, DeliveryState.FAILED, None, str(refused), sent_at)
            metrics.ATTEMPTS.labels(row.event_type, "refused").inc()
            log.error("webhook endpoint refused: not an allowed address", extra=where)
            return
        if answer.accepted:
            await self._record(row, DeliveryState.DELIVERED, answer.status, None, sent_at)
            metrics.ATTEMPTS.labels(row.event_type, "delivered").inc()
            log.info("webhook delivered", extra={**where, "attempt": row.attempts + 1})
            return
        error = answer.error or f"the endpoint answered {answer.status}"
        retry_at = sent_at + self.policy.next_wait(row.attempts)
        if retry_at > as_utc(row.created_at) + self.policy.window:
            await self._record(row, DeliveryState.FAILED, answer.status, error, sent_at)
            metrics.ATTEMPTS.labels(row.event_type, "failed").inc()
            log.error(
                "webhook not delivered within its retry window: failed",
                extra={**where, "attempts": row.attempts + 1, "status": answer.status},
            )
            return
        await self._record(row, DeliveryState.PENDING, answer.status, error, retry_at)
        metrics.ATTEMPTS.labels(row.event_type, "retry").inc()
        log.warning(
            "webhook attempt failed; will retry",
            extra={**where, "attempt": row.attempts + 1, "status": answer.status},
        )

    async def _record(
        self,
        row: WebhookDelivery,
        state: DeliveryState,
        status: int | None,
        error: str | None,
        at: datetime,
    ) -> None:
        now = self.clock()
        await in_transaction(
            self.sessions,
            lambda s: ledger.record_attempt(
                s, row, state=state, status=status, error=error, next_attempt_at=at, now=now
            ),
        )

    async def deliveries(
        self, *, state: str | None, limit: int, before: datetime | None
    ) -> tuple[list[WebhookDelivery], dict[str, int]]:
        """Deliveries newest first (``state`` only, ``created_at`` before ``before``), at most
        ``limit``, and how many there are in each state."""

        def read(session: Session) -> tuple[list[WebhookDelivery], dict[str, int]]:
            rows = ledger.listing(session, state=state, limit=limit, before=before)
            return rows, ledger.counts(session)

        return await in_transaction(self.sessions, read)

    async def refresh_gauges(self) -> None:
        def read(session: Session) -> tuple[dict[str, int], datetime | None]:
            return ledger.counts(session), ledger.oldest_pending(session)

        counts, oldest = await in_transaction(self.sessions, read)
        for state, count in counts.items():
            metrics.DELIVERIES.labels(state).set(count)
        age = (self.clock() - as_utc(oldest)).total_seconds() if oldest else 0.0
        metrics.OLDEST_PENDING.set(max(age, 0.0))

"""The deliveries table: written before the event is acked, worked until delivered or failed.

Every function takes the caller's session (one transaction); times are UTC.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime, timedelta

from sqlalchemy import func, select, update
from sqlalchemy.orm import Session

from scwadd_webhooks.models import DeliveryState, WebhookDelivery


def enqueue(
    session: Session,
    *,
    message_id: str,
    event_type: str,
    job_id: str,
    payload: str,
    endpoints: Sequence[str],
    now: datetime,
) -> int:
    """One pending row per endpoint; a redelivered event adds nothing. Returns rows added."""
    existing = set(
        session.scalars(
            select(WebhookDelivery.endpoint).where(WebhookDelivery.message_id == message_id)
        )
    )
    added = 0
    for endpoint in endpoints:
        if endpoint in existing:
            continue
        session.add(
            WebhookDelivery(
                message_id=message_id,
                endpoint=endpoint,
                event_type=event_type,
                job_id=job_id,
                payload=payload,
                created_at=now,
                state=DeliveryState.PENDING.value,
                attempts=0,
                next_attempt_at=now,
            )
        )
        added += 1
    return added


def claim_due(
    session: Session, now: datetime, limit: int, lease: timedelta
) -> list[WebhookDelivery]:
    """Pending deliveries whose time has come, oldest first, each claimed for ``lease`` (its
    ``next_attempt_at`` moved on by compare-and-set) so two replicas do not send it at once; a
    replica that dies mid-attempt leaves it to be tried again when the lease ends. Returns
    detached copies as they were before the claim."""
    rows = session.scalars(
        select(WebhookDelivery)
        .where(
            WebhookDelivery.state == DeliveryState.PENDING.value,
            WebhookDelivery.next_attempt_at <= now,
        )
        .order_by(WebhookDelivery.next_attempt_at)
        .limit(limit)
    ).all()
    session.expunge_all()
    claimed = []
    for row in rows:
        result = session.execute(
            update(WebhookDelivery)
            .where(
                WebhookDelivery.message_id == row.message_id,
                WebhookDelivery.endpoint == row.endpoint,
                WebhookDelivery.attempts == row.attempts,
                WebhookDelivery.next_attempt_at == row.next_attempt_at,
            )
            .values(next_attempt_at=now + lease)
        )
        if result.rowcount:  # type: ignore[attr-defined]
            claimed.append(row)
    return claimed


def record_attempt(
    session: Session,
    row: WebhookDelivery,
    *,
    state: DeliveryState,
    status: int | None,
    error: str | None,
    next_attempt_at: datetime,
    now: datetime,
) -> bool:
    """Store one attempt's outcome, only if nobody else recorded this attempt (compare-and-set on
    ``attempts``: two replicas working the same row cannot both count it). True if stored."""
    result = session.execute(
        update(WebhookDelivery)
        .where(
            WebhookDelivery.message_id == row.message_id,
            WebhookDelivery.endpoint == row.endpoint,
            WebhookDelivery.attempts == row.attempts,
            WebhookDelivery.state == DeliveryState.PENDING.value,
        )
        .values(
            state=state.value,
            attempts=row.attempts + 1,
            last_status=status,
            last_error=error,
            next_attempt_at=next_attempt_at,
            delivered_at=now if state == DeliveryState.DELIVERED else None,
        )
    )
    return bool(result.rowcount)  # type: ignore[attr-defined]


def listing(
    session: Session, *, state: str | None, limit: int, before: datetime | None
) -> list[WebhookDelivery]:
    """Newest first, for the operator (``before`` pages on ``created_at``)."""
    query = select(WebhookDelivery).order_by(WebhookDelivery.created_at.desc()).limit(limit)
    if state is not None:
        query = query.where(WebhookDelivery.state == state)
    if before is not None:
        query = query.where(WebhookDelivery.created_at < before)
    rows = session.scalars(query).all()
    session.expunge_all()
    return list(rows)


def counts(session: Session) -> dict[str, int]:
    """Deliveries per state (the ``scwadd_webhook_deliveries`` gauge)."""
    result = {state.value: 0 for state in DeliveryState}
    for state, count in session.execute(
        select(WebhookDelivery.state, func.count()).group_by(WebhookDelivery.state)
    ):
        result[state] = count
    return result


def oldest_pending(session: Session) -> datetime | None:
    return session.scalar(
        select(func.min(WebhookDelivery.created_at)).where(
            WebhookDelivery.state == DeliveryState.PENDING.value
        )
    )

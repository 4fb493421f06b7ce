"""The grant ledger and its outbox.

The row is written (and committed) before anything is published, with the event inside it
exactly as it will be sent. Publishing is then "send, mark published"; a crash between the two
leaves an unpublished row that the outbox loop sends again with the same ``Nats-Msg-Id``, so the
event is stored once either way.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta

from scwadd_core.custodian import TokenResponse
from scwadd_core.events import GrantReceived
from scwadd_core.sealing import Keyring
from sqlalchemy import select, update
from sqlalchemy.orm import Session

from scwadd_auth.models import Grant, JobStatus
from scwadd_auth.status import WAITING_SENTENCE, start_status

_SUBSCRIPTION = re.compile(r"/Subscription/([^/?#]+)")


class IncompleteGrant(ValueError):
    """The token answer lacks what the pipeline needs (resourceURI or authorizationURI)."""


def subscription_of(resource_uri: str) -> str:
    match = _SUBSCRIPTION.search(resource_uri)
    if match is None:
        raise IncompleteGrant("the resourceURI names no Subscription")
    return match.group(1)


def build_grant_event(
    *, job_id: str, tokens: TokenResponse, keyring: Keyring, now: datetime
) -> GrantReceived:
    if not tokens.resource_uri or not tokens.authorization_uri:
        raise IncompleteGrant("the token answer has no resourceURI or no authorizationURI")
    expires_at = now + timedelta(seconds=tokens.expires_in) if tokens.expires_in else None
    return GrantReceived(
        job_id=job_id,
        occurred_at=now,
        subscription_id=subscription_of(tokens.resource_uri),
        resource_uri=tokens.resource_uri,
        authorization_uri=tokens.authorization_uri,
        scope=tokens.scope or "",
        access_token=keyring.seal(tokens.access_token, job_id=job_id),
        refresh_token=(
            keyring.seal(tokens.refresh_token, job_id=job_id) if tokens.refresh_token else None
        ),
        access_token_expires_at=expires_at,
    )


def record_grant(session: Session, *, status_id: str, event: GrantReceived) -> None:
    """Ledger row + status row in the caller's transaction."""
    session.add(
        Grant(
            job_id=event.job_id,
            status_id=status_id,
            event_id=event.event_id,
            subscription_id=event.subscription_id,
            resource_uri=event.resource_uri,
            authorization_uri=event.authorization_uri,
            scope=event.scope,
            event_json=event.model_dump_json(),
            created_at=event.occurred_at,
        )
    )
    # The status row was opened with the exchange (``exchanges.open_exchange``); a grant
    # recorded without one (older callers, tests) gets its own.
    row = session.get(JobStatus, event.job_id)
    if row is None:
        start_status(session, event.job_id, status_id)
    else:
        row.exchange, row.message = None, WAITING_SENTENCE


def unpublished(session: Session, limit: int = 100) -> list[GrantReceived]:
    rows = session.scalars(
        select(Grant).where(Grant.published_at.is_(None)).order_by(Grant.created_at).limit(limit)
    ).all()
    return [GrantReceived.model_validate_json(row.event_json) for row in rows]


def mark_published(session: Session, job_id: str) -> None:
    session.execute(
        update(Grant)
        .where(Grant.job_id == job_id, Grant.published_at.is_(None))
        .values(published_at=datetime.now(UTC))
    )


def note_publish_failure(session: Session, job_id: str) -> None:
    session.execute(
        update(Grant)
        .where(Grant.job_id == job_id)
        .values(publish_attempts=Grant.publish_attempts + 1)
    )

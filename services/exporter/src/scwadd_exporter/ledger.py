"""State transitions of the exporter's grants, each a compare-and-set on ``state``.

All functions take an open :class:`~sqlalchemy.orm.Session` and leave committing to the caller,
so a transition and the rows written with it commit together.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from datetime import UTC, datetime, timedelta

from sqlalchemy import func, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from scwadd_exporter.models import FINAL, REVOCABLE, ExporterGrant, ExportRecord, GrantState


def record_grant(
    session: Session,
    *,
    job_id: str,
    subscription_id: str,
    authorization_uri: str,
    received_at: datetime,
    deadline: datetime,
) -> bool:
    """Remember a grant to revoke. Returns False if it was already known (a redelivery)."""
    if session.get(ExporterGrant, job_id) is not None:
        return False
    now = datetime.now(UTC)
    try:
        with session.begin_nested():
            session.add(
                ExporterGrant(
                    job_id=job_id,
                    subscription_id=subscription_id,
                    authorization_uri=authorization_uri,
                    received_at=received_at,
                    deadline=deadline,
                    state=GrantState.WAITING,
                    state_changed_at=now,
                )
            )
    except IntegrityError:
        return False  # another replica recorded it first
    return True


def _transition(
    session: Session,
    job_id: str,
    from_states: Iterable[GrantState],
    to_state: GrantState,
    **values: object,
) -> bool:
    result = session.execute(
        update(ExporterGrant)
        .where(ExporterGrant.job_id == job_id, ExporterGrant.state.in_(list(from_states)))
        .values(state=to_state, state_changed_at=datetime.now(UTC), **values)
    )
    return int(result.rowcount) == 1  # type: ignore[attr-defined]


def record_export(session: Session, grant: ExporterGrant, export: ExportRecord) -> bool:
    """Store the export row; WAITING becomes EXPORTED. False if the job was already exported."""
    if session.get(ExportRecord, grant.job_id) is not None:
        return False
    try:
        with session.begin_nested():
            session.add(export)
    except IntegrityError:
        return False
    _transition(session, grant.job_id, [GrantState.WAITING], GrantState.EXPORTED)
    return True


def mark_fetch_failed(session: Session, job_id: str, detail: str) -> bool:
    return _transition(
        session,
        job_id,
        [GrantState.WAITING],
        GrantState.FETCH_FAILED,
        reason="fetch_failed",
        detail=detail,
    )


def claim_revocation(
    session: Session,
    job_id: str,
    reason: str | None = None,
    from_states: Sequence[GrantState] = REVOCABLE,
) -> bool:
    """Take the right to send the DELETE. Exactly one caller gets True per grant."""
    values: dict[str, object] = {"revoke_attempts": ExporterGrant.revoke_attempts + 1}
    if reason is not None:
        values["reason"] = reason
    return _transition(session, job_id, from_states, GrantState.REVOKING, **values)


def reclaim_revocation(
    session: Session, job_id: str, seen_state: GrantState, seen_changed_at: datetime
) -> bool:
    """The watchdog takes over a stale REVOKING claim or retries a FLAGGED grant.

    The condition on ``state_changed_at`` makes this a compare-and-set: if anyone touched the
    row since the watchdog looked, the watchdog backs off.
    """
    result = session.execute(
        update(ExporterGrant)
        .where(
            ExporterGrant.job_id == job_id,
            ExporterGrant.state == seen_state,
            ExporterGrant.state_changed_at == seen_changed_at,
        )
        .values(
            state=GrantState.REVOKING,
            state_changed_at=datetime.now(UTC),
            revoke_attempts=ExporterGrant.revoke_attempts + 1,
        )
    )
    return int(result.rowcount) == 1  # type: ignore[attr-defined]


def renew_revocation(session: Session, job_id: str, attempt: int) -> bool:
    """The claimant of revocation number ``attempt`` is alive: its claim is fresh again.
    False if the claim is no longer that one (finished, or taken over)."""
    result = session.execute(
        update(ExporterGrant)
        .where(
            ExporterGrant.job_id == job_id,
            ExporterGrant.state == GrantState.REVOKING,
            ExporterGrant.revoke_attempts == attempt,
        )
        .values(state_changed_at=datetime.now(UTC))
    )
    return int(result.rowcount) == 1  # type: ignore[attr-defined]


def finish_revocation(session: Session, job_id: str, outcome: GrantState) -> bool:
    assert outcome in FINAL
    return _transition(
        session, job_id, [GrantState.REVOKING], outcome, revoked_at=datetime.now(UTC)
    )


def flag(session: Session, job_id: str, reason: str, detail: str) -> bool:
    return _transition(
        session, job_id, [GrantState.REVOKING], GrantState.FLAGGED, reason=reason, detail=detail
    )


def overdue_waiting(session: Session, now: datetime) -> Sequence[ExporterGrant]:
    return session.scalars(
        select(ExporterGrant).where(
            ExporterGrant.state == GrantState.WAITING, ExporterGrant.deadline < now
        )
    ).all()


def stale_claims(
    session: Session, now: datetime, revoking_lease: timedelta, flagged_retry: timedelta
) -> Sequence[ExporterGrant]:
    """REVOKING rows whose claimant died, and FLAGGED rows due for another try."""
    return session.scalars(
        select(ExporterGrant).where(
            (
                (ExporterGrant.state == GrantState.REVOKING)
                & (ExporterGrant.state_changed_at < now - revoking_lease)
            )
            | (
                (ExporterGrant.state == GrantState.FLAGGED)
                & (ExporterGrant.reason == "revocation_unavailable")
                & (ExporterGrant.state_changed_at < now - flagged_retry)
            )
        )
    ).all()


def unrevoked_counts(session: Session, older_than: datetime) -> dict[str, int]:
    """Grants not revoked although received before ``older_than``, by reason.

    The reason is the flag's reason code, or the state the grant is stuck in.
    """
    rows = session.execute(
        select(ExporterGrant.state, ExporterGrant.reason, func.count())
        .where(ExporterGrant.state.not_in(list(FINAL)), ExporterGrant.received_at < older_than)
        .group_by(ExporterGrant.state, ExporterGrant.reason)
    ).all()
    counts: dict[str, int] = {}
    for state, reason, count in rows:
        label = reason if state == GrantState.FLAGGED and reason else f"stuck_{state}"
        counts[label] = counts.get(label, 0) + int(count)
    return counts


def grants_by_status(session: Session, status: str | None, limit: int = 500) -> list[ExporterGrant]:
    query = select(ExporterGrant).order_by(ExporterGrant.received_at.desc()).limit(limit)
    if status is not None:
        query = query.where(ExporterGrant.state == status)
    return list(session.scalars(query).all())

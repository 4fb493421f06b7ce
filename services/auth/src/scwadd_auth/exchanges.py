"""The exchange outbox: every code exchange is written down before the custodian is asked.

A callback that claims its state opens a ``pending`` row (the code sealed, bound to the job id)
and the status row in the same transaction. Whoever works on the exchange holds the row
(``owner``, ``claimed_until``, renewed before every try); the row ends ``granted`` (in the same
transaction as the ledger row) or ``failed``. A replica that dies mid-exchange leaves a pending
row whose claim runs out, and any replica's sweep takes it over and goes on retrying until the
row's deadline (the code's lifetime). If the crash fell between the custodian's answer and our
record, the retry is refused (the code is spent): the row ends ``failed``, and the authorization
that answer created is found and revoked by the reconciler (:mod:`scwadd_auth.reconciler`).

Every function works in the caller's transaction; the compare-and-set UPDATEs (on ``state`` and
``owner``) make two replicas unable to both finish one exchange.
"""

from __future__ import annotations

from datetime import datetime, timedelta

from sqlalchemy import select, update
from sqlalchemy.orm import Session

from scwadd_auth.models import Exchange, JobStatus
from scwadd_auth.status import CONFIRMING_SENTENCE, start_status

PENDING, GRANTED, FAILED = "pending", "granted", "failed"
# A worker renews its hold before every try; a try takes at most the HTTP timeout (30 s).
CLAIM_SECONDS = 45.0


def open_exchange(
    session: Session,
    *,
    job_id: str,
    status_id: str,
    sealed_code: str,
    owner: str,
    now: datetime,
    deadline: datetime,
) -> None:
    """The pending row and the customer's status row ("not confirmed yet")."""
    session.add(
        Exchange(
            job_id=job_id,
            status_id=status_id,
            sealed_code=sealed_code,
            state=PENDING,
            started_at=now,
            deadline=deadline,
            attempts=0,
            owner=owner,
            claimed_until=now + timedelta(seconds=CLAIM_SECONDS),
        )
    )
    row = start_status(session, job_id, status_id)
    row.exchange, row.message = PENDING, CONFIRMING_SENTENCE


def renew(session: Session, *, job_id: str, owner: str, now: datetime, tried: bool) -> bool:
    """Extend ``owner``'s hold on a pending exchange (and count a try); False if it is lost."""
    values: dict[str, object] = {"claimed_until": now + timedelta(seconds=CLAIM_SECONDS)}
    if tried:
        values["attempts"] = Exchange.attempts + 1
    result = session.execute(
        update(Exchange)
        .where(Exchange.job_id == job_id, Exchange.owner == owner, Exchange.state == PENDING)
        .values(**values)
        .execution_options(synchronize_session=False)
    )
    return int(result.rowcount) == 1  # type: ignore[attr-defined]


def take_over(session: Session, owner: str, now: datetime, limit: int = 20) -> list[str]:
    """Claim pending exchanges whose holder stopped renewing (it died); returns their job ids."""
    stale = session.scalars(
        select(Exchange.job_id)
        .where(Exchange.state == PENDING, Exchange.claimed_until < now)
        .limit(limit)
    ).all()
    taken: list[str] = []
    for job_id in stale:
        result = session.execute(
            update(Exchange)
            .where(
                Exchange.job_id == job_id,
                Exchange.state == PENDING,
                Exchange.claimed_until < now,
            )
            .values(owner=owner, claimed_until=now + timedelta(seconds=CLAIM_SECONDS))
            .execution_options(synchronize_session=False)
        )
        if int(result.rowcount) == 1:  # type: ignore[attr-defined]
            taken.append(job_id)
    return taken


def finish(
    session: Session,
    job_id: str,
    owner: str,
    now: datetime,
    *,
    state: str,
    reason: str | None = None,
    failure_sentence: str | None = None,
) -> bool:
    """Decide a pending exchange held by ``owner``: ``granted`` or ``failed`` (the code is
    dropped either way). False if it was not ours to decide (another holder, already decided)."""
    result = session.execute(
        update(Exchange)
        .where(Exchange.job_id == job_id, Exchange.owner == owner, Exchange.state == PENDING)
        .values(state=state, reason=reason, finished_at=now, sealed_code=None)
        .execution_options(synchronize_session=False)
    )
    if int(result.rowcount) != 1:  # type: ignore[attr-defined]
        return False
    status = session.get(JobStatus, job_id)
    if status is not None:
        status.exchange = None if state == GRANTED else state
        if failure_sentence is not None:
            status.failure = failure_sentence
        status.updated_at = now
    return True


def get(session: Session, job_id: str) -> Exchange | None:
    return session.get(Exchange, job_id)


def pending_since(session: Session) -> list[datetime]:
    """When each still-pending exchange started (the reconciler leaves alone what they may
    still turn into grants)."""
    return list(session.scalars(select(Exchange.started_at).where(Exchange.state == PENDING)))


def release(session: Session, job_ids: list[str], owner: str, now: datetime) -> None:
    """Give up ``owner``'s hold (a clean shutdown), so a replica takes these over at once."""
    if not job_ids:
        return
    session.execute(
        update(Exchange)
        .where(Exchange.job_id.in_(job_ids), Exchange.owner == owner, Exchange.state == PENDING)
        .values(claimed_until=now)
        .execution_options(synchronize_session=False)
    )

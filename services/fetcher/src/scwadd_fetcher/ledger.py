"""The fetch job ledger (table ``fetch_jobs``): who works on a job, and what came of it.

A replica *claims* a job before calling the custodian and keeps a lease on it while it works;
a job whose lease ran out (its replica died) may be claimed by another. The outcome event is
stored with the job before it is published, so a crash between the two republishes the same
event (same ``event_id``, so JetStream keeps one copy) instead of fetching again.

Every function takes the caller's session and leaves committing to it (the service runs each in
one transaction on a worker thread: :func:`scwadd_core.db.in_transaction`); times are UTC.
"""

from __future__ import annotations

import enum
import os
import socket
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from scwadd_core.db import as_utc
from sqlalchemy import or_, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from scwadd_fetcher.models import FetchJob

RUNNING = "running"
COMPLETED = "completed"
FAILED = "failed"


class ClaimResult(enum.Enum):
    CLAIMED = "claimed"  # ours to run
    BUSY = "busy"  # another replica holds a live lease
    FINISHED = "finished"  # done before; maybe its event still needs publishing


@dataclass(frozen=True)
class Claim:
    result: ClaimResult
    status: str
    sealed_access_token: str | None = None
    sealed_refresh_token: str | None = None
    outcome_subject: str | None = None
    outcome_event: str | None = None
    published: bool = False
    # BUSY: when the holder's lease runs out unless it renews it (UTC).
    lease_until: datetime | None = None


@dataclass(frozen=True)
class Holder:
    """This replica as the ledger knows it: its name, and how long its lease on a job lasts
    unless it renews it."""

    owner: str
    lease: timedelta

    @classmethod
    def of_this_process(cls, lease_seconds: float) -> Holder:
        """``host-pid-random``: unique per process, and says where it runs."""
        owner = f"{socket.gethostname()}-{os.getpid()}-{uuid.uuid4().hex[:6]}"
        return cls(owner, timedelta(seconds=lease_seconds))


def _now() -> datetime:
    return datetime.now(UTC)


def _aware(moment: datetime | None) -> datetime | None:
    # SQLite hands back naive datetimes; everything stored here is UTC.
    return as_utc(moment) if moment is not None else None


def claim(session: Session, job_id: str, holder: Holder) -> Claim:
    """Take the job for ``holder``: CLAIMED when it is new, ours, or its lease ran out; BUSY
    (with the holder's lease end) when another live replica has it; FINISHED when it is done."""
    now = _now()
    job = session.get(FetchJob, job_id)
    if job is None:
        try:
            with session.begin_nested():
                session.add(
                    FetchJob(
                        job_id=job_id,
                        status=RUNNING,
                        owner=holder.owner,
                        lease_until=now + holder.lease,
                        attempts=1,
                        custodian_calls=0,
                        published=False,
                        created_at=now,
                        updated_at=now,
                    )
                )
        except IntegrityError:
            return claim(session, job_id, holder)  # another replica inserted it first
        return Claim(ClaimResult.CLAIMED, RUNNING)
    if job.status != RUNNING:
        return _finished(job)
    # Take over only if the lease is ours or ran out; the UPDATE's WHERE decides races.
    # (Evaluated by the database only: SQLite hands back naive datetimes.)
    taken = session.execute(
        update(FetchJob)
        .where(FetchJob.job_id == job_id, FetchJob.status == RUNNING)
        .where(or_(FetchJob.owner == holder.owner, FetchJob.lease_until < now))
        .values(
            owner=holder.owner,
            lease_until=now + holder.lease,
            attempts=FetchJob.attempts + 1,
            updated_at=now,
        )
        .execution_options(synchronize_session=False)
    )
    session.refresh(job)
    if taken.rowcount != 1:  # type: ignore[attr-defined]
        return Claim(ClaimResult.BUSY, RUNNING, lease_until=_aware(job.lease_until))
    return Claim(
        ClaimResult.CLAIMED,
        RUNNING,
        sealed_access_token=job.sealed_access_token,
        sealed_refresh_token=job.sealed_refresh_token,
    )


def _finished(job: FetchJob) -> Claim:
    return Claim(
        ClaimResult.FINISHED,
        job.status,
        outcome_subject=job.outcome_subject,
        outcome_event=job.outcome_event,
        published=job.published,
    )


def renew(session: Session, job_id: str, holder: Holder) -> bool:
    """Extend ``holder``'s lease; False if the job is no longer its to run."""
    now = _now()
    renewed = session.execute(
        update(FetchJob)
        .where(FetchJob.job_id == job_id, FetchJob.owner == holder.owner)
        .where(FetchJob.status == RUNNING)
        .values(lease_until=now + holder.lease, updated_at=now)
    )
    return bool(renewed.rowcount == 1)  # type: ignore[attr-defined]


def release(session: Session, job_id: str, holder: Holder) -> None:
    """Give up our lease at once (a clean stop): the redelivered grant is taken by the next
    replica without waiting for the lease to run out."""
    now = _now()
    session.execute(
        update(FetchJob)
        .where(FetchJob.job_id == job_id, FetchJob.owner == holder.owner)
        .where(FetchJob.status == RUNNING)
        .values(lease_until=now, updated_at=now)
    )


def save_tokens(
    session: Session, job_id: str, sealed_access: str, sealed_refresh: str | None
) -> None:
    """Keep rotated tokens (sealed) so a takeover does not use a spent refresh token."""
    session.execute(
        update(FetchJob)
        .where(FetchJob.job_id == job_id)
        .values(
            sealed_access_token=sealed_access,
            sealed_refresh_token=sealed_refresh,
            updated_at=_now(),
        )
    )


def finish(
    session: Session,
    job_id: str,
    holder: Holder,
    status: str,
    subject: str,
    event_json: str,
    calls: int,
) -> bool:
    """Record the outcome; False if the job was no longer ours (another replica took it)."""
    done = session.execute(
        update(FetchJob)
        .where(FetchJob.job_id == job_id, FetchJob.owner == holder.owner)
        .where(FetchJob.status == RUNNING)
        .values(
            status=status,
            outcome_subject=subject,
            outcome_event=event_json,
            custodian_calls=FetchJob.custodian_calls + calls,
            lease_until=None,
            updated_at=_now(),
        )
    )
    return bool(done.rowcount == 1)  # type: ignore[attr-defined]


def mark_published(session: Session, job_id: str) -> None:
    session.execute(update(FetchJob).where(FetchJob.job_id == job_id).values(published=True))


def get(session: Session, job_id: str) -> FetchJob | None:
    """The job's row, detached (usable after the session closes), or None."""
    job = session.scalar(select(FetchJob).where(FetchJob.job_id == job_id))
    if job is not None:
        session.expunge(job)
        job.lease_until = _aware(job.lease_until)
    return job

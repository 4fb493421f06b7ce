"""The fetch job ledger: who works on a job, and what came of it.

A replica *claims* a job before calling the custodian and keeps a lease on it while it works;
a job whose lease ran out (its replica died) may be claimed by another. The outcome event is
stored with the job before it is published, so a crash between the two republishes the same
event (same ``event_id``, so JetStream keeps one copy) instead of fetching again.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from sqlalchemy import or_, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session, sessionmaker

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


def _now() -> datetime:
    return datetime.now(UTC)


def _aware(moment: datetime | None) -> datetime | None:
    # SQLite hands back naive datetimes; everything stored here is UTC.
    if moment is None or moment.tzinfo is not None:
        return moment
    return moment.replace(tzinfo=UTC)


class JobLedger:
    def __init__(self, sessions: sessionmaker[Session], owner: str, lease_seconds: float) -> None:
        self._sessions = sessions
        self.owner = owner
        self.lease = timedelta(seconds=lease_seconds)

    def claim(self, job_id: str) -> Claim:
        now = _now()
        with self._sessions() as session:
            job = session.get(FetchJob, job_id)
            if job is None:
                session.add(
                    FetchJob(
                        job_id=job_id,
                        status=RUNNING,
                        owner=self.owner,
                        lease_until=now + self.lease,
                        attempts=1,
                        custodian_calls=0,
                        published=False,
                        created_at=now,
                        updated_at=now,
                    )
                )
                try:
                    session.commit()
                except IntegrityError:
                    session.rollback()
                    return self.claim(job_id)  # another replica inserted it first
                return Claim(ClaimResult.CLAIMED, RUNNING)
            if job.status != RUNNING:
                return self._finished(job)
            # Take over only if the lease is ours or ran out; the UPDATE's WHERE decides races.
            # (Evaluated by the database only: SQLite hands back naive datetimes.)
            taken = session.execute(
                update(FetchJob)
                .where(FetchJob.job_id == job_id, FetchJob.status == RUNNING)
                .where(or_(FetchJob.owner == self.owner, FetchJob.lease_until < now))
                .values(
                    owner=self.owner,
                    lease_until=now + self.lease,
                    attempts=FetchJob.attempts + 1,
                    updated_at=now,
                )
                .execution_options(synchronize_session=False)
            )
            session.commit()
            if taken.rowcount != 1:  # type: ignore[attr-defined]
                session.refresh(job)
                return Claim(ClaimResult.BUSY, RUNNING, lease_until=_aware(job.lease_until))
            session.refresh(job)
            return Claim(
                ClaimResult.CLAIMED,
                RUNNING,
                sealed_access_token=job.sealed_access_token,
                sealed_refresh_token=job.sealed_refresh_token,
            )

    @staticmethod
    def _finished(job: FetchJob) -> Claim:
        return Claim(
            ClaimResult.FINISHED,
            job.status,
            outcome_subject=job.outcome_subject,
            outcome_event=job.outcome_event,
            published=job.published,
        )

    def renew(self, job_id: str) -> bool:
        now = _now()
        with self._sessions() as session:
            renewed = session.execute(
                update(FetchJob)
                .where(FetchJob.job_id == job_id, FetchJob.owner == self.owner)
                .where(FetchJob.status == RUNNING)
                .values(lease_until=now + self.lease, updated_at=now)
            )
            session.commit()
            return bool(renewed.rowcount == 1)  # type: ignore[attr-defined]

    def release(self, job_id: str) -> None:
        """Give up our lease at once (a clean stop): the redelivered grant is taken by the next
        replica without waiting for the lease to run out."""
        now = _now()
        with self._sessions() as session:
            session.execute(
                update(FetchJob)
                .where(FetchJob.job_id == job_id, FetchJob.owner == self.owner)
                .where(FetchJob.status == RUNNING)
                .values(lease_until=now, updated_at=now)
            )
            session.commit()

    def save_tokens(self, job_id: str, sealed_access: str, sealed_refresh: str | None) -> None:
        """Keep rotated tokens (sealed) so a takeover does not use a spent refresh token."""
        with self._sessions() as session:
            session.execute(
                update(FetchJob)
                .where(FetchJob.job_id == job_id)
                .values(
                    sealed_access_token=sealed_access,
                    sealed_refresh_token=sealed_refresh,
                    updated_at=_now(),
                )
            )
            session.commit()

    def finish(self, job_id: str, status: str, subject: str, event_json: str, calls: int) -> bool:
        """Record the outcome; False if the job was no longer ours (another replica took it)."""
        with self._sessions() as session:
            done = session.execute(
                update(FetchJob)
                .where(FetchJob.job_id == job_id, FetchJob.owner == self.owner)
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
            session.commit()
            return bool(done.rowcount == 1)  # type: ignore[attr-defined]

    def add_calls(self, job_id: str, calls: int) -> None:
        with self._sessions() as session:
            session.execute(
                update(FetchJob)
                .where(FetchJob.job_id == job_id)
                .values(custodian_calls=FetchJob.custodian_calls + calls)
            )
            session.commit()

    def mark_published(self, job_id: str) -> None:
        with self._sessions() as session:
            session.execute(
                update(FetchJob).where(FetchJob.job_id == job_id).values(published=True)
            )
            session.commit()

    def get(self, job_id: str) -> FetchJob | None:
        with self._sessions() as session:
            job = session.scalar(select(FetchJob).where(FetchJob.job_id == job_id))
            if job is not None:
                session.expunge(job)
                job.lease_until = _aware(job.lease_until)
            return job

"""The customer's status page state, folded from events in any order, any number of times.

Events arrive through a redelivering bus, so folding must be idempotent and order-insensitive:
a phase never moves backwards, "failed" is sticky, and the final sentence is derived from facts
(delivered? revoked?) rather than from whichever event came last.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime

from sqlalchemy.orm import Session

from scwadd_auth.models import JobStatus

PHASES = ("waiting", "fetching", "exporting", "done", "failed")
_RANK = {"waiting": 0, "fetching": 1, "exporting": 2, "done": 3, "failed": 3}
REVOKED_OUTCOMES = frozenset({"revoked", "already_revoked"})

DELIVERED_AND_REVOKED = "Your data was delivered and access was revoked."
WAITING_SENTENCE = "We have your permission. Your data request is queued."
CONFIRMING_SENTENCE = (
    "PG&E has not confirmed your permission to us yet; we keep asking for a few minutes. "
    "Nothing has been read."
)


def exchange_failed_sentence(minutes: int) -> str:
    """What is true after a code exchange we gave up on: we read nothing, and if PG&E did
    record the permission, the reconciler revokes it (within ``minutes``)."""
    return (
        "We could not confirm your permission with PG&E, so none of your data will be read. "
        f"If PG&E shows us as authorized, we will revoke it within {minutes} minutes; you do "
        "not need to do anything. You can start again."
    )


def start_status(session: Session, job_id: str, status_id: str) -> JobStatus:
    """The row the status page shows before any other service has said anything."""
    row = JobStatus(
        job_id=job_id,
        status_id=status_id,
        phase="waiting",
        message=WAITING_SENTENCE,
        updated_at=datetime.now(UTC),
    )
    session.add(row)
    return row


def apply_progress(session: Session, job_id: str, phase: str, message: str) -> bool:
    """Fold a ``job.progress``; returns whether anything changed.

    A failure is kept apart from the phase: the page says "failed" only once the revocation's
    outcome is known too, so a client that stops at a terminal phase sees the whole story.
    """
    row = session.get(JobStatus, job_id)
    if row is None or phase not in _RANK:
        return False
    if phase == "failed":
        if row.failure is not None:
            return False
        row.failure, row.updated_at = message, datetime.now(UTC)
        return True
    if _RANK[phase] < _RANK[row.phase] or (row.phase == phase and row.message == message):
        return False
    row.phase, row.message, row.updated_at = phase, message, datetime.now(UTC)
    return True


def apply_export_completed(session: Session, job_id: str, rows: int) -> bool:
    row = session.get(JobStatus, job_id)
    if row is None or row.delivered:
        return False
    row.delivered, row.export_rows, row.updated_at = True, rows, datetime.now(UTC)
    return True


def apply_revoked(session: Session, job_id: str, outcome: str, reason: str | None) -> bool:
    row = session.get(JobStatus, job_id)
    if row is None or row.revocation in REVOKED_OUTCOMES:
        return False
    if row.revocation == outcome and row.revocation_reason == reason:
        return False
    row.revocation, row.revocation_reason = outcome, reason
    row.updated_at = datetime.now(UTC)
    return True


@dataclass(frozen=True)
class StatusView:
    """What the page renders and the JSON endpoint returns."""

    phase: str
    message: str
    finished: bool
    delivered: bool
    revoked: bool
    rows: int | None
    start_again: bool = False

    def as_json(self) -> dict[str, object]:
        return {
            "phase": self.phase,
            "message": self.message,
            "finished": self.finished,
            "delivered": self.delivered,
            "revoked": self.revoked,
            "rows": self.rows,
            "start_again": self.start_again,
        }


def view(row: JobStatus) -> StatusView:
    if row.exchange == "failed":
        message = row.failure or exchange_failed_sentence(5)
        return StatusView("failed", message, True, False, False, None, start_again=True)
    if row.exchange == "pending":
        return StatusView("waiting", CONFIRMING_SENTENCE, False, False, False, None)
    revoked = row.revocation in REVOKED_OUTCOMES
    revocation_failed = row.revocation is not None and not revoked
    rows = row.export_rows
    if row.delivered and revoked:
        return StatusView("done", DELIVERED_AND_REVOKED, True, True, True, rows)
    if revocation_failed:
        head = "Your data was delivered" if row.delivered else "We could not get your data"
        message = (
            f"{head}, but we could not revoke our access automatically. The operator has been "
            "alerted and will revoke it; you can also revoke it yourself on pge.com."
        )
        return StatusView("failed", message, True, row.delivered, False, rows)
    if revoked:
        # Revoked without a delivery: the job failed (upstream, or it ran out of time).
        head = (row.failure or "We could not get your data.").rstrip(". ")
        message = f"{head}. Access to your data has been revoked."
        return StatusView("failed", message, True, row.delivered, True, rows)
    # Not finished: "done" and "failed" wait for the revocation's outcome.
    phase = "exporting" if row.delivered or row.phase == "done" else row.phase
    if row.failure is not None:
        message = f"{row.failure.rstrip('. ')}. We are now revoking our access to your data."
    elif row.delivered:
        message = "Your file is ready. We are now revoking our access to your data."
    else:
        message = row.message
    return StatusView(phase, message, False, row.delivered, False, rows)

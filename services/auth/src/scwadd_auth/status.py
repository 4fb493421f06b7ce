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
    """Fold a ``job.progress``; returns whether anything changed."""
    row = session.get(JobStatus, job_id)
    if row is None or phase not in _RANK:
        return False
    if row.phase == "failed" or _RANK[phase] < _RANK[row.phase]:
        return False
    if row.phase == phase and row.message == message:
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

    def as_json(self) -> dict[str, object]:
        return {
            "phase": self.phase,
            "message": self.message,
            "finished": self.finished,
            "delivered": self.delivered,
            "revoked": self.revoked,
            "rows": self.rows,
        }


def view(row: JobStatus) -> StatusView:
    revoked = row.revocation in REVOKED_OUTCOMES
    revocation_failed = row.revocation is not None and not revoked
    if row.delivered and revoked:
        return StatusView("done", DELIVERED_AND_REVOKED, True, True, True, row.export_rows)
    if revocation_failed:
        head = "Your data was delivered" if row.delivered else "We could not get your data"
        message = (
            f"{head}, but we could not revoke our access automatically. The operator has been "
            "alerted and will revoke it; you can also revoke it yourself on pge.com."
        )
        return StatusView("failed", message, True, row.delivered, False, row.export_rows)
    if row.phase == "failed":
        message = row.message
        if revoked:
            message = f"{message.rstrip('.')}. Access to your data has been revoked."
        return StatusView("failed", message, revoked, row.delivered, revoked, row.export_rows)
    if revoked:
        # Revoked without a delivery or a failure notice yet: the failure notice is on its way.
        message = "We could not get your data. Access to your data has been revoked."
        return StatusView("failed", message, True, row.delivered, True, row.export_rows)
    # "done" is only ever shown with both facts in hand (delivered, revoked), whatever order the
    # events came in; until then the job is still in its last step.
    phase = "exporting" if row.delivered or row.phase == "done" else row.phase
    if row.delivered:
        message = "Your file is ready. We are now revoking our access to your data."
    else:
        message = row.message
    return StatusView(phase, message, False, row.delivered, False, row.export_rows)

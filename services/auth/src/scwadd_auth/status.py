"""The customer's status page state, folded from events in any order, any number of times.

Events arrive through a redelivering bus, so folding must be idempotent and order-insensitive:
a phase never moves backwards, "failed" is sticky, and the final sentence is derived from facts
(delivered? revoked?) rather than from whichever event came last.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field, replace
from datetime import UTC, date, datetime, timedelta
from zoneinfo import ZoneInfo

from scwadd_core.db import as_utc
from scwadd_core.events import ExportCompleted
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


def apply_export_completed(
    session: Session, job_id: str, rows: int, export: ExportCompleted | None = None
) -> bool:
    """Fold an ``export.completed``: delivered, its rows, and (when ``export`` carries them)
    the period covered, the period requested and the UsagePoints. A redelivery changes
    nothing, except that coverage missing from an earlier copy is filled in."""
    row = session.get(JobStatus, job_id)
    if row is None:
        return False
    changed = False
    if not row.delivered:
        row.delivered, row.export_rows, changed = True, rows, True
    if export is not None and row.usage_points is None and export.usage_points:
        row.covered_start, row.covered_end = export.period_start, export.period_end
        row.requested_start, row.requested_end = export.requested_start, export.requested_end
        row.usage_points = json.dumps(
            [point.model_dump(mode="json") for point in export.usage_points]
        )
        changed = True
    if changed:
        row.updated_at = datetime.now(UTC)
    return changed


def apply_revoked(session: Session, job_id: str, outcome: str, reason: str | None) -> bool:
    row = session.get(JobStatus, job_id)
    if row is None or row.revocation in REVOKED_OUTCOMES:
        return False
    if row.revocation == outcome and row.revocation_reason == reason:
        return False
    row.revocation, row.revocation_reason = outcome, reason
    row.updated_at = datetime.now(UTC)
    return True


# PG&E serves California: the dates a customer reads are Pacific dates.
PACIFIC = ZoneInfo("America/Los_Angeles")
# A shortfall smaller than this is the data's ordinary lag (yesterday not read yet), not a
# shorter history.
SHORTFALL_TOLERANCE = timedelta(days=3)
_HISTORY_LENGTH = re.compile(r"(?:^|;)\s*HistoryLength=(\d{1,12})\s*(?:;|$)")
# The step of the page's list that failed, in words (the list's keys are PHASES).
FAILED_STEP_WORDS = {
    "exchange": "Confirming your permission with PG&E",
    "fetching": "Reading your data from PG&E",
    "exporting": "Building your file",
    "revoking": "Revoking our access to your data",
}
# ... and the page's step (app.STEPS key) it marks as the one that did not work.
FAILED_STEP_PHASE = {
    "exchange": "waiting",
    "fetching": "fetching",
    "exporting": "exporting",
    "revoking": "done",
}
SERVICE_WORDS = {"electricity": "Electricity", "gas": "Gas", "water": "Water"}


def history_length_seconds(scope: str | None) -> int | None:
    """The history the customer granted, from the scope's ``HistoryLength`` (seconds; PG&E's
    scope grammar, ``../shared/reference/pge-share-my-data.md`` item 4); None when absent."""
    match = _HISTORY_LENGTH.search(scope or "")
    return int(match.group(1)) if match else None


def span_words(span: timedelta) -> str:
    """``"12 months"`` from about 28 days on (30.44-day months), else ``"N days"``."""
    days = span.total_seconds() / 86400
    if days >= 28:
        months = max(1, round(days / 30.44))
        return f"{months} month{'s' * (months != 1)}"
    whole = max(1, round(days))
    return f"{whole} day{'s' * (whole != 1)}"


def pacific_dates(start: datetime, end: datetime) -> tuple[date, date]:
    """The first and the last Pacific day of ``[start, end)`` (end is exclusive)."""
    first = as_utc(start).astimezone(PACIFIC).date()
    last = (as_utc(end) - timedelta(seconds=1)).astimezone(PACIFIC).date()
    return first, max(first, last)


def day_words(day: date) -> str:
    return f"{day.day} {day:%B %Y}"


@dataclass(frozen=True)
class Meter:
    """One UsagePoint as the page lists it."""

    id: str
    service: str
    what: str

    def as_json(self) -> dict[str, str]:
        return {"id": self.id, "service": self.service, "what": self.what}


@dataclass(frozen=True)
class StatusView:
    """What the page renders and the JSON endpoint returns.

    ``period`` is the covered span in words (``"1 December 2025 to 30 November 2026"``),
    ``shorter`` the plain sentence when it is shorter than promised, ``failed_step`` the step
    that failed in words; all None when they do not apply.
    """

    phase: str
    message: str
    finished: bool
    delivered: bool
    revoked: bool
    rows: int | None
    start_again: bool = False
    failed_step: str | None = None
    period: str | None = None
    shorter: str | None = None
    meters: tuple[Meter, ...] = field(default_factory=tuple)

    @property
    def failed_phase(self) -> str | None:
        """The page's step that did not work (a ``PHASES`` key), for the step list."""
        for key, words in FAILED_STEP_WORDS.items():
            if words == self.failed_step:
                return FAILED_STEP_PHASE[key]
        return None

    def as_json(self) -> dict[str, object]:
        return {
            "phase": self.phase,
            "message": self.message,
            "finished": self.finished,
            "delivered": self.delivered,
            "revoked": self.revoked,
            "rows": self.rows,
            "start_again": self.start_again,
            "failed_step": self.failed_step,
            "failed_phase": self.failed_phase,
            "period": self.period,
            "shorter": self.shorter,
            "meters": [meter.as_json() for meter in self.meters],
        }


def view(row: JobStatus, scope: str | None = None) -> StatusView:
    """The page's state for ``row``; ``scope`` is the grant's scope (its ``HistoryLength`` says
    how much history the customer chose to share), when the ledger has it."""
    state = _state(row)
    if not row.delivered:
        return state
    period, shorter, meters = _coverage(row, scope)
    return replace(state, period=period, shorter=shorter, meters=meters)


def _state(row: JobStatus) -> StatusView:
    if row.exchange == "failed":
        message = row.failure or exchange_failed_sentence(5)
        return StatusView(
            "failed",
            message,
            True,
            False,
            False,
            None,
            start_again=True,
            failed_step=FAILED_STEP_WORDS["exchange"],
        )
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
        step = "revoking" if row.delivered else _failed_step(row)
        # Delivered: the data reached the operator, and a new grant would only add a second
        # authorization to revoke; so "start again" only when nothing was delivered.
        return StatusView(
            "failed",
            message,
            True,
            row.delivered,
            False,
            rows,
            start_again=not row.delivered,
            failed_step=FAILED_STEP_WORDS[step],
        )
    if revoked:
        # Revoked without a delivery: the job failed (upstream, or it ran out of time).
        head = (row.failure or "We could not get your data.").rstrip(". ")
        message = f"{head}. Access to your data has been revoked."
        return StatusView(
            "failed",
            message,
            True,
            row.delivered,
            True,
            rows,
            start_again=True,
            failed_step=FAILED_STEP_WORDS[_failed_step(row)],
        )
    # Not finished: "done" and "failed" wait for the revocation's outcome.
    phase = "exporting" if row.delivered or row.phase == "done" else row.phase
    if row.failure is not None:
        message = f"{row.failure.rstrip('. ')}. We are now revoking our access to your data."
    elif row.delivered:
        message = "Your file is ready. We are now revoking our access to your data."
    else:
        message = row.message
    return StatusView(phase, message, False, row.delivered, False, rows)


def _failed_step(row: JobStatus) -> str:
    """Where a job without a delivery stopped: building the file once the exporter said it was
    exporting, else reading the data (a job that never got past "waiting" failed reading)."""
    return "exporting" if row.phase in ("exporting", "done") else "fetching"


def _coverage(
    row: JobStatus, scope: str | None
) -> tuple[str | None, str | None, tuple[Meter, ...]]:
    """(period, shorter, meters) of a delivered job; None/empty before the exporter said."""
    meters = tuple(_meter(point) for point in json.loads(row.usage_points or "[]"))
    if row.covered_start is None or row.covered_end is None:
        return None, None, meters
    first, last = pacific_dates(row.covered_start, row.covered_end)
    period = f"{day_words(first)} to {day_words(last)}"
    if row.requested_start is None or row.requested_end is None:
        return period, None, meters
    covered = as_utc(row.covered_end) - as_utc(row.covered_start)
    promised = as_utc(row.requested_end) - as_utc(row.requested_start)
    if covered >= promised - SHORTFALL_TOLERANCE:
        return period, None, meters
    head = f"Your file covers {span_words(covered)}, not the {span_words(promised)} we asked for"
    chosen_seconds = history_length_seconds(scope)
    chosen = timedelta(seconds=chosen_seconds) if chosen_seconds is not None else None
    if chosen is not None and chosen < promised - SHORTFALL_TOLERANCE:
        sentence = f"{head}: on PG&E's page you chose to share {span_words(chosen)} of history"
        if covered < chosen - SHORTFALL_TOLERANCE:
            sentence += ", and PG&E had readings for only part of that"
    else:
        sentence = f"{head}: PG&E had readings for only this part of the period"
    return period, sentence + ".", meters


def _meter(point: dict[str, object]) -> Meter:
    service = str(point.get("service") or "electricity")
    name = SERVICE_WORDS.get(service, service.capitalize())
    if service == "electricity":
        what = "energy used" + (" and energy sent to the grid" if point.get("received") else "")
    elif service == "gas":
        what = "gas used"
    else:
        what = "usage"
    return Meter(id=str(point.get("id", "")), service=name, what=what)

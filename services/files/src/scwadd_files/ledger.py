"""The console's read model: events from the bus folded into ``files_console_jobs``.

The files service's durable consumer ``files`` reads every job event (it starts from the
beginning of stream ``SCWADD_EVENTS``, so a new or emptied database rebuilds itself). Folding is
idempotent and order-tolerant: a row is created by whichever event of a job comes first, a
terminal state is never moved back, and the export's figures are computed once from the export
itself (see :mod:`scwadd_files.analysis`).
"""

from __future__ import annotations

import asyncio
import io
import json
import logging
from collections import OrderedDict
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import nats.js.errors
from scwadd_core.bus import Bus, read_object
from scwadd_core.db import as_utc, in_transaction
from scwadd_core.events import (
    EXPORTS_BUCKET,
    RAW_BUCKET,
    Event,
    ExportCompleted,
    FetchCompleted,
    FetchFailed,
    GrantReceived,
    GrantRevoked,
    GrantRevokeRequested,
    JobProgress,
    stable_event_id,
)
from scwadd_espi.convert import convert
from sqlalchemy import Select, and_, func, or_, select
from sqlalchemy.orm import Session, sessionmaker

from scwadd_files import analysis
from scwadd_files.models import ConsoleAction, ConsoleJob

log = logging.getLogger(__name__)
audit = logging.getLogger("scwadd_files.audit")

DURABLE = "files"
SUBJECTS = [
    "scwadd.events.grant.received",
    "scwadd.events.fetch.completed",
    "scwadd.events.fetch.failed",
    "scwadd.events.export.completed",
    "scwadd.events.grant.revoked",
    "scwadd.events.job.progress",
]
STATES = ("waiting", "fetching", "exporting", "exported", "failed")
GRANT_STATES = ("active", "revoked", "already_revoked", "flagged")
_STATE_ORDER = {name: index for index, name in enumerate(STATES)}
SORTS = {
    "received": ConsoleJob.received_at,
    "subscription": ConsoleJob.subscription_id,
    "delivered": ConsoleJob.delivered_sort,
}
MAX_PAGE = 200
MAX_SEARCH = 100


class ExportUnavailable(Exception):
    """Neither the raw documents nor a default-layout CSV of this job can be read any more."""


@dataclass(frozen=True)
class JobQuery:
    """A page of the job list. ``after`` is the keyset cursor: the last row's sort value and
    job id, as :func:`encode_cursor` made it."""

    q: str = ""
    state: str | None = None
    grant: str | None = None
    since: datetime | None = None
    until: datetime | None = None
    sort: str = "received"
    descending: bool = True
    limit: int = 50
    after: str | None = None


def encode_cursor(job: ConsoleJob, sort: str) -> str:
    value = getattr(job, SORTS[sort].key)
    if isinstance(value, datetime):
        value = as_utc(value).isoformat()
    return json.dumps([value, job.job_id], separators=(",", ":"))


def _decode_cursor(cursor: str, sort: str) -> tuple[Any, str]:
    try:
        value, job_id = json.loads(cursor)
        if sort == "received":
            value = datetime.fromisoformat(value)
        elif sort == "delivered":
            value = float(value)
        elif not isinstance(value, str):
            raise TypeError
        if not isinstance(job_id, str):
            raise TypeError
    except (ValueError, TypeError):
        raise ValueError("the page cursor is not one this console made") from None
    return value, job_id


def filtered(query: JobQuery) -> Select[Any]:
    statement = select(ConsoleJob)
    if query.state:
        statement = statement.where(ConsoleJob.state == query.state)
    if query.grant:
        statement = statement.where(ConsoleJob.grant_state == query.grant)
    if query.since:
        statement = statement.where(ConsoleJob.received_at >= query.since)
    if query.until:
        statement = statement.where(ConsoleJob.received_at < query.until)
    if query.q:
        needle = query.q.lower()[:MAX_SEARCH]
        escaped = needle.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
        statement = statement.where(ConsoleJob.search_text.like(f"%{escaped}%", escape="\\"))
    return statement


def page_statement(query: JobQuery) -> Select[Any]:
    """The SELECT for one page: filters, then keyset on (sort column, job id), ``limit + 1``
    rows (the extra one says whether there is a next page). No OFFSET: the database walks the
    sort's index from the cursor, so page 200 costs what page 1 costs."""
    column = SORTS[query.sort]
    statement = filtered(query)
    if query.after:
        value, job_id = _decode_cursor(query.after, query.sort)
        if query.descending:
            statement = statement.where(
                or_(column < value, and_(column == value, ConsoleJob.job_id < job_id))
            )
        else:
            statement = statement.where(
                or_(column > value, and_(column == value, ConsoleJob.job_id > job_id))
            )
    order = (
        (column.desc(), ConsoleJob.job_id.desc())
        if query.descending
        else (column.asc(), ConsoleJob.job_id.asc())
    )
    return statement.order_by(*order).limit(query.limit + 1)


@dataclass
class Page:
    jobs: list[ConsoleJob]
    total: int
    next_cursor: str | None


class Console:
    """The read model, its queries, the per-export analysis and the "revoke again" command."""

    def __init__(
        self,
        bus: Bus,
        sessions: sessionmaker[Session],
        *,
        unrevoked_after: timedelta = timedelta(minutes=60),
        cache_size: int = 4,
    ) -> None:
        self.bus = bus
        self.sessions = sessions
        self.unrevoked_after = unrevoked_after
        self._cache: OrderedDict[str, analysis.Analysis] = OrderedDict()
        self._cache_size = cache_size

    # -- folding -------------------------------------------------------------------------
    async def handle(self, event: Event) -> None:
        """Fold one event; raises (and the bus redelivers) when the store or database fails."""
        if isinstance(event, ExportCompleted):
            figures = await self._figures(event)
            await in_transaction(self.sessions, lambda s: self._fold_export(s, event, figures))
        elif isinstance(event, GrantReceived | FetchCompleted | FetchFailed | GrantRevoked):
            await in_transaction(self.sessions, lambda s: self._fold(s, event))
        elif isinstance(event, JobProgress):
            await in_transaction(self.sessions, lambda s: self._fold_progress(s, event))

    @staticmethod
    def _row(session: Session, event: Event, job_id: str) -> ConsoleJob:
        job = session.get(ConsoleJob, job_id, with_for_update=True)
        if job is None:
            job = ConsoleJob(
                job_id=job_id,
                received_at=as_utc(event.occurred_at),
                updated_at=as_utc(event.occurred_at),
                state="waiting",
                grant_state="active",
                subscription_id="",
                raw_objects="[]",
                usage_points="[]",
                services="",
                delivered_sort=-1.0,
                search_text=job_id.lower(),
            )
            session.add(job)
        job.updated_at = max(as_utc(job.updated_at), as_utc(event.occurred_at))
        return job

    @staticmethod
    def _advance(job: ConsoleJob, state: str) -> None:
        if job.state == "failed":
            return  # sticky
        if state == "failed" or _STATE_ORDER[state] > _STATE_ORDER.get(job.state, 0):
            job.state = state

    def _fold(self, session: Session, event: Event) -> None:
        if isinstance(event, GrantReceived):
            job = self._row(session, event, event.job_id)
            job.subscription_id = event.subscription_id
            job.received_at = as_utc(event.occurred_at)
            job.scope = event.scope
        elif isinstance(event, FetchCompleted):
            job = self._row(session, event, event.job_id)
            job.subscription_id = job.subscription_id or event.subscription_id
            # What the fetcher asked the custodian for: the history the customer was promised.
            job.promised_start = as_utc(event.period_start)
            job.promised_end = as_utc(event.period_end)
            job.raw_objects = json.dumps(event.raw_objects)
            self._advance(job, "exporting")
        elif isinstance(event, FetchFailed):
            job = self._row(session, event, event.job_id)
            job.failure_reason = f"fetch failed: {event.reason}"
            self._advance(job, "failed")
        elif isinstance(event, GrantRevoked):
            job = self._row(session, event, event.job_id)
            if event.outcome == "failed":
                # A later success overrides a flag; a flag never overrides a success.
                if job.grant_state not in ("revoked", "already_revoked"):
                    job.grant_state = "flagged"
                    job.grant_reason = event.reason or "the revocation failed"
            else:
                job.grant_state = event.outcome
                job.grant_reason = None
        else:  # pragma: no cover - handle() routes only the types above
            return
        self._reindex(job)

    def _fold_progress(self, session: Session, event: JobProgress) -> None:
        job = self._row(session, event, event.job_id)
        if event.phase == "failed":
            job.failure_reason = job.failure_reason or event.message
            self._advance(job, "failed")
        elif event.phase in ("fetching", "exporting"):
            self._advance(job, event.phase)
        self._reindex(job)

    def _fold_export(
        self, session: Session, event: ExportCompleted, figures: analysis.Summary | None
    ) -> None:
        job = self._row(session, event, event.job_id)
        job.csv_object = event.csv_object
        job.manifest_object = event.manifest_object
        job.rows = event.rows
        self._advance(job, "exported")
        if figures is not None:
            summary = figures
            job.usage_points = json.dumps(summary.usage_points)
            job.services = ", ".join(summary.services)
            job.delivered_kwh = summary.delivered_kwh
            job.received_kwh = summary.received_kwh
            job.therms = summary.therms
            job.delivered_sort = float(summary.delivered_kwh or -1)
            job.peak_kwh = summary.peak_kwh
            job.peak_start = summary.peak_start
            job.peak_seconds = summary.peak_seconds
            job.estimated_share = summary.estimated_share
        self._reindex(job)

    @staticmethod
    def _reindex(job: ConsoleJob) -> None:
        points = " ".join(p.get("id", "") for p in json.loads(job.usage_points or "[]"))
        parts = [
            job.job_id,
            job.subscription_id,
            points,
            job.services,
            job.grant_reason or "",
            job.failure_reason or "",
            job.customer_name or "",
        ]
        job.search_text = " ".join(p for p in parts if p).lower()

    async def _figures(self, event: ExportCompleted) -> analysis.Summary | None:
        """The export's summary and gap facts; None (and a warning) if nothing can be read."""
        try:
            manifest = json.loads(await self._get(EXPORTS_BUCKET, event.manifest_object))
        except nats.js.errors.ObjectNotFoundError:
            manifest = {}
        try:
            result = await self.analysis(event.job_id, manifest=manifest, csv=event.csv_object)
        except ExportUnavailable as error:
            log.warning("export figures unavailable: %s", error)
            result = None
        gaps = manifest.get("usage_points", [])
        covered = (manifest.get("period_start_utc"), manifest.get("period_end_utc"))

        def record(session: Session) -> None:
            job = self._row(session, event, event.job_id)
            job.csv_layout = manifest.get("csv_layout")
            job.gap_count = sum(int(p.get("gap_count", 0)) for p in gaps) if gaps else None
            job.gap_seconds = sum(int(p.get("gap_seconds", 0)) for p in gaps) if gaps else None
            job.rows_without_value = (
                sum(int(p.get("rows_without_value", 0)) for p in gaps) if gaps else None
            )
            job.covered_start, job.covered_end = covered
            _record_bills(job, manifest)
            requested = manifest.get("requested_period") or {}
            if job.promised_start is None and requested.get("start"):
                job.promised_start = as_utc(datetime.fromisoformat(requested["start"]))
                job.promised_end = as_utc(datetime.fromisoformat(requested["end"]))

        await in_transaction(self.sessions, record)
        return result.summary if result else None

    async def _get(self, bucket: str, name: str) -> bytes:
        return await read_object(await self.bus.object_store(bucket), name)

    # -- one export's data ---------------------------------------------------------------
    async def raw_documents(self, job: ConsoleJob) -> list[tuple[str, bytes]]:
        names: list[str] = json.loads(job.raw_objects or "[]")
        try:
            return [(name, await self._get(RAW_BUCKET, name)) for name in names]
        except nats.js.errors.ObjectNotFoundError:
            raise ExportUnavailable("a raw document is no longer in scwadd-raw") from None

    async def csv_in_layout(self, job: ConsoleJob, layout: str) -> bytes:
        """The job's CSV in ``layout``, converted again by the ESPI engine from the raw Green
        Button documents the fetcher stored (the same engine and inputs as the exporter's)."""
        documents = await self.raw_documents(job)
        if not documents:
            if layout == job.csv_layout and job.csv_object:
                return await self._get(EXPORTS_BUCKET, job.csv_object)
            raise ExportUnavailable("no raw documents are recorded for this job")

        def run() -> bytes:
            out = io.BytesIO()
            convert(
                [io.BytesIO(data) for _, data in documents],
                out,
                layout=layout,
                names=[name for name, _ in documents],
            )
            return out.getvalue()

        return await asyncio.to_thread(run)

    async def analysis(
        self, job_id: str, *, manifest: dict[str, Any] | None = None, csv: str | None = None
    ) -> analysis.Analysis:
        """The export's figures and chart series, from its default-layout CSV (kept in a small
        in-process cache: a year of 15-minute data is a few MB to convert again)."""
        cached = self._cache.get(job_id)
        if cached is not None:
            self._cache.move_to_end(job_id)
            return cached
        data = await self.default_csv(job_id, manifest=manifest, csv=csv)
        result = await asyncio.to_thread(lambda: analysis.analyse(analysis.read_rows(data)))
        self._cache[job_id] = result
        while len(self._cache) > self._cache_size:
            self._cache.popitem(last=False)
        return result

    async def default_csv(
        self, job_id: str, *, manifest: dict[str, Any] | None = None, csv: str | None = None
    ) -> bytes:
        job = await self.job(job_id)
        if job is None:
            raise ExportUnavailable(f"no job {job_id}")
        layout = job.csv_layout or (manifest or {}).get("csv_layout")
        csv_object = job.csv_object or csv
        if layout == "default" and csv_object:
            # The exporter's own file: the bytes the operator downloads.
            try:
                return await self._get(EXPORTS_BUCKET, csv_object)
            except nats.js.errors.ObjectNotFoundError:
                pass  # past retention: convert the raw documents again
        job.csv_layout = layout
        return await self.csv_in_layout(job, "default")

    # -- queries -------------------------------------------------------------------------
    async def job(self, job_id: str) -> ConsoleJob | None:
        def read(session: Session) -> ConsoleJob | None:
            job = session.get(ConsoleJob, job_id)
            if job is not None:
                session.expunge(job)
            return job

        return await in_transaction(self.sessions, read)

    async def page(self, query: JobQuery) -> Page:
        def read(session: Session) -> Page:
            rows = list(session.scalars(page_statement(query)))
            total = session.scalar(select(func.count()).select_from(filtered(query).subquery()))
            more = len(rows) > query.limit
            rows = rows[: query.limit]
            for row in rows:
                session.expunge(row)
            cursor = encode_cursor(rows[-1], query.sort) if more and rows else None
            return Page(rows, int(total or 0), cursor)

        return await in_transaction(self.sessions, read)

    async def needs_action(self, now: datetime | None = None, limit: int = 100) -> list[ConsoleJob]:
        """Flagged grants, then grants still not revoked ``unrevoked_after`` after consent."""
        cutoff = (now or datetime.now(UTC)) - self.unrevoked_after

        def read(session: Session) -> list[ConsoleJob]:
            rows = list(
                session.scalars(
                    select(ConsoleJob)
                    .where(
                        or_(
                            ConsoleJob.grant_state == "flagged",
                            and_(
                                ConsoleJob.grant_state == "active",
                                ConsoleJob.received_at < cutoff,
                            ),
                        )
                    )
                    .order_by(ConsoleJob.grant_state.desc(), ConsoleJob.received_at.asc())
                    .limit(limit)
                )
            )
            for row in rows:
                session.expunge(row)
            return rows

        return await in_transaction(self.sessions, read)

    # -- actions -------------------------------------------------------------------------
    async def request_revocation(self, job_id: str, *, operator: str, client: str) -> str:
        """Ask the exporter to revoke a flagged grant again; returns the outcome recorded in the
        audit (``requested``, ``not_flagged``, ``unknown_job``). Raises when the bus is away."""
        job = await self.job(job_id)
        if job is None:
            outcome = "unknown_job"
        elif job.grant_state != "flagged":
            outcome = "not_flagged"
        else:
            moment = datetime.now(UTC)
            await self.bus.publish(
                GrantRevokeRequested(
                    # One command per operator click, a retried publish stored once.
                    event_id=stable_event_id(job_id, "revoke_requested", moment.isoformat()),
                    job_id=job_id,
                    requested_by=operator,
                )
            )
            outcome = "requested"

        def record(session: Session) -> None:
            session.add(
                ConsoleAction(
                    at=datetime.now(UTC),
                    operator=operator,
                    action="revoke_again",
                    job_id=job_id[:64],
                    outcome=outcome,
                    client=client[:100],
                )
            )

        await in_transaction(self.sessions, record)
        audit.info(
            "revoke again",
            extra={
                "audit": "revoke_again",
                "user": operator,
                "job": job_id,
                "outcome": outcome,
                "client": client,
                "at": datetime.now(UTC).isoformat(),
            },
        )
        return outcome

    async def actions(self, job_id: str) -> Sequence[ConsoleAction]:
        def read(session: Session) -> list[ConsoleAction]:
            rows = list(
                session.scalars(
                    select(ConsoleAction)
                    .where(ConsoleAction.job_id == job_id)
                    .order_by(ConsoleAction.id.desc())
                    .limit(50)
                )
            )
            for row in rows:
                session.expunge(row)
            return rows

        return await in_transaction(self.sessions, read)


def _record_bills(job: ConsoleJob, manifest: dict[str, Any]) -> None:
    """The manifest's customer details and bills (``docs/csv.md``) onto the job's row."""
    customer = manifest.get("customer") or {}
    name = customer.get("name")
    job.customer_name = str(name)[:500] if name else None
    addresses = [
        {
            "usage_point_id": a.get("usage_point_id"),
            "address": str(a.get("address") or "")[:500],
        }
        for a in (customer.get("service_addresses") or [])[:100]
        if isinstance(a, dict)
    ]
    job.service_addresses = json.dumps(addresses)
    bills_csv = manifest.get("bills_csv")
    job.bills_object = str(bills_csv) if bills_csv else None
    bills = manifest.get("bills")
    missing = [str(m)[:500] for m in (manifest.get("missing_resources") or [])[:100]]
    if (isinstance(bills, dict) and bills.get("count")) or missing:
        job.bills = json.dumps(
            {
                "bills": bills if isinstance(bills, dict) else {},
                "reconciliation": manifest.get("reconciliation") or {},
                "missing": missing,
            }
        )
    else:
        job.bills = None

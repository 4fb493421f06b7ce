"""What the exporter decides: what each event leads to, and the watchdog's pass, independent of
how events arrive (the wiring is :mod:`scwadd_exporter.runtime`).

The handlers are idempotent by construction, not by luck:
- ``grant.received`` inserts the grant once (primary key on ``job_id``);
- ``fetch.completed`` writes objects under a name derived from the job (a rerun overwrites the
  same objects) and records the export in the row that holds a unique ``job_id``;
- the DELETE is sent only by whoever wins the compare-and-set into ``revoking``;
- every event is published with an id derived from the fact it states
  (:func:`~scwadd_core.events.stable_event_id`), so re-announcing after a crash stores one copy.

A handler raises :class:`NotReady` when it must be retried later (a fetch result that overtook
its grant); the bus redelivers with backoff.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import logging
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from functools import partial
from typing import Any, Protocol, TypeVar

from scwadd_core.bus import RetryLater
from scwadd_core.custodian import CallPolicy, CustodianError, RevokeOutcome, call_with_retries
from scwadd_core.db import as_utc, in_transaction
from scwadd_core.events import (
    EXPORTS_BUCKET,
    RAW_BUCKET,
    Event,
    ExportCompleted,
    ExportedUsagePoint,
    FetchCompleted,
    FetchFailed,
    GrantReceived,
    GrantRevoked,
    GrantRevokeRequested,
    JobPhase,
    JobProgress,
    stable_event_id,
)
from scwadd_core.logs import job_context
from sqlalchemy.orm import Session, sessionmaker

from scwadd_exporter import ledger, metrics
from scwadd_exporter.models import ExporterGrant, ExportRecord, GrantState
from scwadd_exporter.naming import export_base_name
from scwadd_exporter.settings import ExporterSettings

log = logging.getLogger("scwadd_exporter")

T = TypeVar("T")


class NotReady(Exception):
    """The event cannot be handled yet; redeliver it later."""


class Blobs(Protocol):
    """The object store, as the exporter needs it."""

    async def get(self, bucket: str, name: str) -> bytes: ...

    async def put(self, bucket: str, name: str, data: bytes) -> None: ...


class Revoker(Protocol):
    async def revoke(self, authorization_uri: str) -> RevokeOutcome: ...


Publish = Callable[[Event], Awaitable[Any]]


@dataclass(frozen=True)
class Built:
    """One job's export, ready to store."""

    csv: bytes
    manifest: dict[str, Any]
    rows: int
    readings: int
    # Further files of the export by suffix (``bills.csv`` → ``<base>.bills.csv``).
    extras: dict[str, bytes] = field(default_factory=dict)


# (object name, bytes) of each raw document, and the CSV layout.
Convert = Callable[[Sequence[tuple[str, bytes]], str], Built]


class Unconvertible(Exception):
    """The raw documents cannot be turned into a CSV; retrying will not change that."""


@dataclass(frozen=True)
class ExporterPolicy:
    grant_deadline: timedelta = timedelta(hours=2)
    # Attempts for 5xx, timeouts and transport errors; 429s are counted apart.
    revoke_attempts: int = 6
    # 429s waited out before the grant is flagged (the custodian keeps refusing: a day's budget
    # used up, or a custodian that answers nothing else).
    revoke_rate_limited_attempts: int = 60
    revoke_backoff_seconds: float = 1.0
    revoke_backoff_max_seconds: float = 60.0
    # A REVOKING claim not renewed for this long belonged to a replica that died mid-DELETE;
    # a live claimant renews it every third of it while its DELETE (and retries) run.
    revoking_lease: timedelta = timedelta(seconds=20)
    # How often a grant flagged because the custodian was unreachable is tried again.
    flagged_retry: timedelta = timedelta(minutes=15)
    # Grants not revoked this long after they arrived are counted in scwadd_grants_unrevoked.
    unrevoked_after: timedelta = timedelta(minutes=60)
    csv_layout: str = "default"

    @classmethod
    def from_settings(cls, settings: ExporterSettings) -> ExporterPolicy:
        return cls(
            grant_deadline=timedelta(minutes=settings.GRANT_DEADLINE_MINUTES),
            revoke_attempts=settings.REVOKE_MAX_ATTEMPTS,
            revoke_backoff_seconds=settings.REVOKE_BACKOFF_SECONDS,
            revoke_backoff_max_seconds=settings.REVOKE_BACKOFF_MAX_SECONDS,
            revoking_lease=timedelta(seconds=settings.REVOKING_LEASE_SECONDS),
            flagged_retry=timedelta(minutes=settings.REVOKE_RETRY_FLAGGED_MINUTES),
            unrevoked_after=timedelta(minutes=settings.UNREVOKED_ALERT_MINUTES),
            csv_layout=settings.CSV_LAYOUT,
        )

    @property
    def revocation_calls(self) -> CallPolicy:
        """The custodian call policy of one revocation's DELETEs."""
        return CallPolicy(
            attempts=self.revoke_attempts,
            initial_wait=self.revoke_backoff_seconds,
            max_wait=self.revoke_backoff_max_seconds,
            rate_limited_attempts=self.revoke_rate_limited_attempts,
        )


DONE_SENTENCE = "Your data was delivered and access was revoked."
EXPORTING_SENTENCE = "We are building your file."
EXPORT_FAILED_SENTENCE = (
    "PG&E sent data we could not read, so we stopped. The operator has been alerted."
)
OVERDUE_SENTENCE = "Your data did not arrive from PG&E in time, so we stopped."


class Exporter:
    def __init__(
        self,
        *,
        sessions: sessionmaker[Session],
        blobs: Blobs,
        revoker: Revoker,
        publish: Publish,
        convert: Convert,
        policy: ExporterPolicy | None = None,
        unconvertible: tuple[type[Exception], ...] = (ValueError,),
    ) -> None:
        self.sessions = sessions
        self.blobs = blobs
        self.revoker = revoker
        self.publish = publish
        self.convert = convert
        self.policy = policy or ExporterPolicy()
        # The converter's "this input is bad" exceptions (anything else is retried).
        self.unconvertible = unconvertible

    async def _db(self, work: Callable[[Session], T]) -> T:
        """Run ``work`` in one transaction off the event loop; commit if it returns."""
        return await in_transaction(self.sessions, work)

    async def _progress(self, job_id: str, phase: JobPhase, message: str) -> None:
        await self.publish(
            JobProgress(
                event_id=stable_event_id(job_id, "exporter.progress", phase, message),
                job_id=job_id,
                phase=phase,
                message=message,
            )
        )

    async def on_event(self, event: Event) -> None:
        """The consumer's handler: each subscribed event to its own handler below."""
        if isinstance(event, GrantReceived):
            await self.on_grant_received(event)
        elif isinstance(event, FetchCompleted):
            await self.on_fetch_completed(event)
        elif isinstance(event, FetchFailed):
            await self.on_fetch_failed(event)
        elif isinstance(event, GrantRevokeRequested):
            await self.on_revoke_requested(event)

    # -- grant.received ------------------------------------------------------------------
    async def on_grant_received(self, event: GrantReceived) -> None:
        received_at = event.occurred_at.astimezone(UTC)
        created = await self._db(
            lambda s: ledger.record_grant(
                s,
                job_id=event.job_id,
                subscription_id=event.subscription_id,
                authorization_uri=event.authorization_uri,
                received_at=received_at,
                deadline=received_at + self.policy.grant_deadline,
            )
        )
        log.info("grant recorded for revocation" if created else "grant already known")

    # -- fetch.completed -----------------------------------------------------------------
    async def on_fetch_completed(self, event: FetchCompleted) -> None:
        grant = await self._load_grant(event.job_id)
        export = await self._db(lambda s: s.get(ExportRecord, event.job_id))
        manifest: dict[str, Any] | None = None
        if export is None:
            try:
                export, manifest = await self._export(grant, event)
            except Unconvertible as error:
                await self._export_failed(event.job_id, str(error))
                return
        else:
            manifest = await self._stored_manifest(export.manifest_name)
        await self.publish(
            ExportCompleted(
                event_id=stable_event_id(event.job_id, "export.completed"),
                job_id=event.job_id,
                csv_object=export.csv_name,
                manifest_object=export.manifest_name,
                rows=export.rows,
                **coverage(manifest or {}),
            )
        )
        await self.revoke(event.job_id, reason="exported")

    async def _load_grant(self, job_id: str) -> ExporterGrant:
        def load(session: Session) -> ExporterGrant | None:
            grant = session.get(ExporterGrant, job_id)
            if grant is not None:
                session.expunge(grant)
            return grant

        grant = await self._db(load)
        if grant is None:
            raise NotReady(f"no grant.received seen yet for job {job_id}")
        return grant

    async def _stored_manifest(self, name: str) -> dict[str, Any] | None:
        """The manifest written by an earlier attempt (a redelivery), or None if unreadable:
        the announcement then carries no coverage rather than failing again."""
        try:
            loaded = json.loads(await self.blobs.get(EXPORTS_BUCKET, name))
        except Exception as error:
            log.warning("stored manifest unreadable: %s", type(error).__name__)
            return None
        return loaded if isinstance(loaded, dict) else None

    async def _export(
        self, grant: ExporterGrant, event: FetchCompleted
    ) -> tuple[ExportRecord, dict[str, Any]]:
        await self._progress(grant.job_id, "exporting", EXPORTING_SENTENCE)
        names = [*event.raw_objects, *event.summary_objects, *event.customer_objects]
        documents = [(name, await self.blobs.get(RAW_BUCKET, name)) for name in names]
        try:
            built = await asyncio.to_thread(self.convert, documents, self.policy.csv_layout)
        except self.unconvertible as error:
            raise Unconvertible(str(error)) from error
        base = export_base_name(grant.subscription_id, grant.job_id, as_utc(grant.received_at))
        csv_name, manifest_name = f"{base}.csv", f"{base}.manifest.json"
        csv_sha256 = hashlib.sha256(built.csv).hexdigest()
        manifest = {
            "job_id": grant.job_id,
            "subscription_id": grant.subscription_id,
            "csv": csv_name,
            "csv_sha256": csv_sha256,
            "csv_layout": self.policy.csv_layout,
            "rows": built.rows,
            "custodian_calls": event.custodian_calls,
            "requested_period": {
                "start": event.period_start.isoformat(),
                "end": event.period_end.isoformat(),
            },
            **built.manifest,
        }
        if event.extras_missing:
            # Granted but not received (bills, customer details): said, never silently absent.
            manifest["missing_resources"] = list(event.extras_missing)
        # The CSV first: a manifest never points at a file that is not there.
        await self.blobs.put(EXPORTS_BUCKET, csv_name, built.csv)
        for suffix, data in sorted(built.extras.items()):
            extra_name = f"{base}.{suffix}"
            await self.blobs.put(EXPORTS_BUCKET, extra_name, data)
            manifest[suffix.replace(".", "_")] = extra_name
        manifest_bytes = json.dumps(manifest, indent=2, sort_keys=True, default=str).encode()
        await self.blobs.put(EXPORTS_BUCKET, manifest_name, manifest_bytes)
        record = ExportRecord(
            job_id=grant.job_id,
            csv_name=csv_name,
            manifest_name=manifest_name,
            rows=built.rows,
            readings=built.readings,
            sha256=csv_sha256,
            created_at=datetime.now(UTC),
        )

        def store(session: Session) -> ExportRecord:
            if ledger.record_export(session, grant, record):
                metrics.EXPORTS.labels("written").inc()
                metrics.READINGS.inc(built.readings)
                log.info("export written", extra={"csv": csv_name, "rows": built.rows})
                stored = record
            else:
                existing = session.get(ExportRecord, grant.job_id)
                assert existing is not None
                stored = existing
            session.flush()
            session.expunge(stored)
            return stored

        return await self._db(store), manifest

    async def _export_failed(self, job_id: str, why: str) -> None:
        """Bad input from the custodian: no CSV, but the grant is still revoked."""
        metrics.EXPORTS.labels("failed").inc()
        # The engine's message names the document, line and expectation; no meter values.
        log.error("export failed: the raw documents cannot be converted", extra={"why": why})
        await self._progress(job_id, "failed", EXPORT_FAILED_SENTENCE)
        await self.revoke(job_id, reason="export_failed")

    # -- fetch.failed --------------------------------------------------------------------
    async def on_fetch_failed(self, event: FetchFailed) -> None:
        await self._load_grant(event.job_id)
        changed = await self._db(lambda s: ledger.mark_fetch_failed(s, event.job_id, event.reason))
        if changed:
            log.info("fetch failed upstream; revoking")
        await self._progress(event.job_id, "failed", event.reason)
        await self.revoke(event.job_id, reason="fetch_failed")

    # -- revocation ----------------------------------------------------------------------
    async def revoke(self, job_id: str, *, reason: str) -> None:
        """Revoke once: claim, DELETE with retries, record, announce. A second call re-announces.

        A second call that finds the revocation claimed by a replica that died (its claim not
        renewed for ``revoking_lease``) takes it over at once; one that finds a live claim hands
        the event back (:class:`RetryLater`) until that claim would have gone stale, so an
        exporter killed mid-revocation is replaced by the event's redelivery, not by the
        watchdog's next pass.
        """
        claimed = await self._db(lambda s: ledger.claim_revocation(s, job_id, reason))
        if claimed:
            await self._revoke_claimed(job_id)
            return
        grant = await self._load_grant(job_id)
        if grant.state == GrantState.REVOKING:
            age = datetime.now(UTC) - as_utc(grant.state_changed_at)
            if age < self.policy.revoking_lease:
                wait = (self.policy.revoking_lease - age).total_seconds() + 0.5
                raise RetryLater(f"revocation of {job_id} is under way elsewhere", delay=wait)
            take_over = partial(
                ledger.reclaim_revocation,
                job_id=job_id,
                seen_state=GrantState.REVOKING,
                seen_changed_at=grant.state_changed_at,
            )
            if await self._db(take_over):
                log.warning("taking over a revocation whose replica stopped renewing it")
                await self._revoke_claimed(job_id)
                return
        await self._announce_final(job_id)

    async def _keep_claim(self, job_id: str, attempt: int) -> None:
        """Renew our REVOKING claim while the DELETE and its retries run."""
        interval = self.policy.revoking_lease.total_seconds() / 3
        while True:
            await asyncio.sleep(interval)
            try:
                if not await self._db(lambda s: ledger.renew_revocation(s, job_id, attempt)):
                    return
            except Exception:
                log.warning("could not renew the revocation claim; trying again")

    async def _revoke_claimed(self, job_id: str) -> None:
        grant = await self._load_grant(job_id)
        keep_claim = asyncio.create_task(self._keep_claim(job_id, grant.revoke_attempts))
        try:
            outcome = await self._delete_with_retries(grant.authorization_uri)
        except CustodianError as error:
            permanent = not error.retryable
            code = "revocation_refused" if permanent else "revocation_unavailable"
            detail = str(error)
            keep_claim.cancel()
            await self._db(lambda s: ledger.flag(s, job_id, code, detail))
            metrics.REVOCATIONS.labels("failed").inc()
            log.error(
                "grant NOT revoked: flagged for the operator",
                extra={"reason": code, "detail": detail},
            )
        except BaseException:
            keep_claim.cancel()
            raise
        else:
            keep_claim.cancel()
            final = (
                GrantState.REVOKED
                if outcome == RevokeOutcome.REVOKED
                else GrantState.ALREADY_REVOKED
            )
            await self._db(lambda s: ledger.finish_revocation(s, job_id, final))
            metrics.REVOCATIONS.labels(final.value).inc()
            log.info("grant revoked", extra={"outcome": final.value})
        await self._announce_final(job_id)

    async def _delete_with_retries(self, authorization_uri: str) -> RevokeOutcome:
        """DELETE until it is answered, under the custodian call policy every service shares
        (:func:`~scwadd_core.custodian.call_with_retries`). A 429 means "wait", not "failed":
        it is waited out (its Retry-After also holds the shared budget back) without using up
        one of the ``revoke_attempts`` that 5xx, timeouts and transport errors get."""

        async def delete() -> RevokeOutcome:
            try:
                return await self.revoker.revoke(authorization_uri)
            except CustodianError as error:
                if _already(error):
                    return RevokeOutcome.ALREADY_REVOKED
                raise

        return await call_with_retries(self.policy.revocation_calls, delete, what="revocation")

    async def _announce_final(self, job_id: str) -> None:
        """Publish the grant's end state, if it has one; the same fact gets the same event id."""
        grant = await self._load_grant(job_id)
        state = GrantState(grant.state)
        if state in (GrantState.REVOKED, GrantState.ALREADY_REVOKED):
            await self.publish(
                GrantRevoked(
                    event_id=stable_event_id(job_id, "grant.revoked", state.value),
                    job_id=job_id,
                    outcome=state.value,  # type: ignore[arg-type]
                )
            )
            exported = await self._db(lambda s: s.get(ExportRecord, job_id) is not None)
            if exported:
                await self._progress(job_id, "done", DONE_SENTENCE)
        elif state == GrantState.FLAGGED:
            await self.publish(
                GrantRevoked(
                    event_id=stable_event_id(job_id, "grant.revoked", "failed", grant.reason or ""),
                    job_id=job_id,
                    outcome="failed",
                    reason=grant.detail,
                )
            )

    async def on_revoke_requested(self, event: GrantRevokeRequested) -> None:
        """The operator's "revoke again" (files console): retry a FLAGGED grant now, with the
        watchdog's compare-and-set, so a repeated request or a racing watchdog sends one DELETE.
        A grant in any other state is left alone; its current end is announced again."""
        grant = await self._load_grant(event.job_id)
        if GrantState(grant.state) != GrantState.FLAGGED:
            log.info("revoke-again request for a grant that is not flagged; nothing to do")
            await self._announce_final(event.job_id)
            return
        take_over = partial(
            ledger.reclaim_revocation,
            job_id=event.job_id,
            seen_state=GrantState.FLAGGED,
            seen_changed_at=grant.state_changed_at,
        )
        if await self._db(take_over):
            log.warning("operator asked to revoke again", extra={"operator": event.requested_by})
            await self._revoke_claimed(event.job_id)

    # -- watchdog ------------------------------------------------------------------------
    async def watchdog_pass(self, now: datetime | None = None) -> None:
        """Revoke overdue grants, take over dead claims, refresh the unrevoked gauge."""
        now = now or datetime.now(UTC)

        def overdue(session: Session) -> list[str]:
            return [g.job_id for g in ledger.overdue_waiting(session, now)]

        for job_id in await self._db(overdue):
            claim = partial(
                ledger.claim_revocation,
                job_id=job_id,
                reason="fetch_overdue",
                from_states=[GrantState.WAITING],
            )
            with job_context(job_id):
                if await self._db(claim):
                    log.warning("fetch did not finish by the deadline; revoking")
                    await self._progress(job_id, "failed", OVERDUE_SENTENCE)
                    await self._revoke_claimed(job_id)

        def stale(session: Session) -> list[tuple[str, str, datetime]]:
            rows = ledger.stale_claims(
                session, now, self.policy.revoking_lease, self.policy.flagged_retry
            )
            return [(g.job_id, g.state, g.state_changed_at) for g in rows]

        for job_id, state, changed_at in await self._db(stale):
            take_over = partial(
                ledger.reclaim_revocation,
                job_id=job_id,
                seen_state=GrantState(state),
                seen_changed_at=changed_at,
            )
            with job_context(job_id):
                if await self._db(take_over):
                    log.warning("retrying a revocation", extra={"previous_state": state})
                    await self._revoke_claimed(job_id)
        await self.refresh_gauge(now)

    async def refresh_gauge(self, now: datetime | None = None) -> dict[str, int]:
        now = now or datetime.now(UTC)
        counts = await self._db(
            lambda s: ledger.unrevoked_counts(s, now - self.policy.unrevoked_after)
        )
        metrics.set_unrevoked(counts)
        return counts


def _already(error: CustodianError) -> bool:
    """Some custodians answer a second DELETE with a 400 saying so, rather than 404."""
    return "already revoked" in str(error).lower()


def coverage(manifest: dict[str, Any]) -> dict[str, Any]:
    """``ExportCompleted``'s coverage fields from a manifest (see docs/csv.md's manifest).

    Shapes: ``period_start_utc``/``period_end_utc`` ISO 8601 UTC strings (or null);
    ``requested_period`` ``{"start", "end"}``; ``usage_points`` the conversion report's
    UsagePoints, each with ``reading_types[].flow_direction`` (19 = received, ESPI's
    FlowDirectionKind "reverse"). Missing or malformed facts are left out, never guessed.
    """
    requested = manifest.get("requested_period") or {}
    points = []
    for point in manifest.get("usage_points") or []:
        if not isinstance(point, dict) or not point.get("id"):
            continue
        points.append(
            ExportedUsagePoint(
                id=str(point["id"])[:200],
                service=str(point.get("service") or "electricity")[:40],
                received=any(
                    isinstance(rt, dict) and rt.get("flow_direction") == 19
                    for rt in point.get("reading_types") or []
                ),
                start=point.get("first_interval_start_utc"),
                end=point.get("last_interval_end_utc"),
            )
        )
    return {
        "period_start": manifest.get("period_start_utc"),
        "period_end": manifest.get("period_end_utc"),
        "requested_start": requested.get("start"),
        "requested_end": requested.get("end"),
        # Bounded: the status page lists the meters; a commercial account's hundreds are cut.
        "usage_points": points[:100],
    }

"""The exporter process: bus consumer, watchdog loop and operator endpoints in one event loop."""

from __future__ import annotations

import asyncio
import logging
from datetime import datetime, timedelta
from typing import Any

from fastapi import FastAPI, Query
from scwadd_core.bus import Bus, ConsumerPolicy
from scwadd_core.custodian import Custodian, CustodianConfig, count_custodian_calls
from scwadd_core.db import as_utc, make_engine, run_migrations, session_factory
from scwadd_core.events import (
    FETCH_COMPLETED,
    FETCH_FAILED,
    GRANT_RECEIVED,
    GRANT_REVOKE_REQUESTED,
    RATELIMIT_BUCKET,
    Event,
    FetchCompleted,
    FetchFailed,
    GrantReceived,
    GrantRevokeRequested,
)
from scwadd_core.objects import ObjectBuckets
from scwadd_core.ratelimit import Limits, SharedRateLimit, pace_custodian_calls
from scwadd_core.web import bus_check, create_app, database_check, serve
from sqlalchemy.orm import Session, sessionmaker

from scwadd_exporter import ledger
from scwadd_exporter.conversion import UNCONVERTIBLE, convert_documents
from scwadd_exporter.models import ExporterGrant, GrantState
from scwadd_exporter.processor import Exporter, ExporterPolicy
from scwadd_exporter.settings import ExporterSettings

log = logging.getLogger("scwadd_exporter")

MIGRATIONS = "scwadd_exporter.migrations"
DURABLE = "exporter"
SUBJECTS = [GRANT_RECEIVED, FETCH_COMPLETED, FETCH_FAILED, GRANT_REVOKE_REQUESTED]


def policy_from(settings: ExporterSettings) -> ExporterPolicy:
    return ExporterPolicy(
        grant_deadline=timedelta(minutes=settings.GRANT_DEADLINE_MINUTES),
        revoke_attempts=settings.REVOKE_MAX_ATTEMPTS,
        revoke_backoff_seconds=settings.REVOKE_BACKOFF_SECONDS,
        revoke_backoff_max_seconds=settings.REVOKE_BACKOFF_MAX_SECONDS,
        revoking_lease=timedelta(seconds=settings.REVOKING_LEASE_SECONDS),
        flagged_retry=timedelta(minutes=settings.REVOKE_RETRY_FLAGGED_MINUTES),
        unrevoked_after=timedelta(minutes=settings.UNREVOKED_ALERT_MINUTES),
        csv_layout=settings.CSV_LAYOUT,
    )


def migrate(settings: ExporterSettings) -> None:
    # run_migrations waits (bounded) for a database that starts after us.
    run_migrations(settings.DATABASE_URL, package=MIGRATIONS)


def _grant_json(grant: ExporterGrant) -> dict[str, Any]:
    def iso(moment: datetime | None) -> str | None:
        return as_utc(moment).isoformat() if moment is not None else None

    return {
        "job_id": grant.job_id,
        "subscription_id": grant.subscription_id,
        "status": grant.state,
        "reason": grant.reason,
        "detail": grant.detail,
        "received_at": iso(grant.received_at),
        "deadline": iso(grant.deadline),
        "state_changed_at": iso(grant.state_changed_at),
        "revoke_attempts": grant.revoke_attempts,
        "revoked_at": iso(grant.revoked_at),
    }


def add_operator_routes(app: FastAPI, sessions: sessionmaker[Session]) -> None:
    statuses = [state.value for state in GrantState]

    @app.get("/grants")
    async def grants(status: str | None = Query(default=None)) -> Any:
        """Grants and where they stand; ``?status=flagged`` lists those the operator must act on."""
        if status is not None and status not in statuses:
            from fastapi.responses import JSONResponse

            return JSONResponse(
                {"error": f"unknown status {status!r}; one of {', '.join(statuses)}"},
                status_code=400,
            )

        def read() -> list[dict[str, Any]]:
            with sessions() as session:
                return [_grant_json(g) for g in ledger.grants_by_status(session, status)]

        rows = await asyncio.to_thread(read)
        return {"status": status, "count": len(rows), "grants": rows}


async def main(settings: ExporterSettings, *, stop: asyncio.Event | None = None) -> int:
    await asyncio.to_thread(migrate, settings)
    engine = make_engine(settings.DATABASE_URL)
    sessions = session_factory(engine)
    bus = await Bus.from_settings(settings, name="exporter")
    await bus.ensure_streams()
    custodian = Custodian(CustodianConfig.from_settings(settings))
    # PG&E counts the client ID's calls, the fetchers' and ours together: every request of the
    # custodian client (the DELETE and the client-token request) takes a call from the budget
    # the fetchers use, and a 429 holds all of them back.
    limits = Limits.from_settings(settings)
    limiter = SharedRateLimit(await bus.key_value(RATELIMIT_BUCKET), limits, service="exporter")
    pace_custodian_calls(custodian.http, limiter)
    count_custodian_calls(custodian.http)
    exporter = Exporter(
        sessions=sessions,
        blobs=ObjectBuckets(bus),
        revoker=custodian,
        publish=bus.publish,
        convert=convert_documents,
        policy=policy_from(settings),
        unconvertible=UNCONVERTIBLE,
    )

    async def handle(event: Event) -> None:
        if isinstance(event, GrantReceived):
            await exporter.on_grant_received(event)
        elif isinstance(event, FetchCompleted):
            await exporter.on_fetch_completed(event)
        elif isinstance(event, FetchFailed):
            await exporter.on_fetch_failed(event)
        elif isinstance(event, GrantRevokeRequested):
            await exporter.on_revoke_requested(event)

    async def consume() -> None:
        await bus.run_consumer(
            DURABLE,
            SUBJECTS,
            handle,
            # An event held by an exporter that died comes back after 15 s.
            policy=ConsumerPolicy(concurrency=settings.EXPORTER_CONCURRENCY, ack_wait=15.0),
        )

    async def watchdog() -> None:
        while not bus.stopping:
            try:
                await exporter.watchdog_pass()
            except Exception:
                # A database or custodian outage must not end the loop that guards revocation.
                log.exception("watchdog pass failed; trying again next interval")
            try:
                await asyncio.wait_for(
                    _until_stopping(bus), timeout=settings.WATCHDOG_INTERVAL_SECONDS
                )
            except TimeoutError:
                continue

    app = create_app(
        "scwadd exporter",
        checks={"nats": bus_check(bus), "database": database_check(engine)},
    )
    add_operator_routes(app, sessions)

    async def close() -> None:
        await custodian.aclose()
        engine.dispose()

    return await serve(
        app, settings, bus=bus, background=[consume, watchdog], on_shutdown=[close], stop=stop
    )


async def _until_stopping(bus: Bus) -> None:
    while not bus.stopping:
        await asyncio.sleep(0.5)

"""The exporter process, wiring only: settings → database, bus, custodian client, object store
→ the consumer, the watchdog loop and the routes (decisions: :mod:`scwadd_exporter.service`)."""

from __future__ import annotations

import asyncio
import logging

from scwadd_core.bus import Bus, ConsumerPolicy
from scwadd_core.custodian import Custodian, CustodianConfig, count_custodian_calls
from scwadd_core.db import make_engine, run_migrations, session_factory
from scwadd_core.events import (
    FETCH_COMPLETED,
    FETCH_FAILED,
    GRANT_RECEIVED,
    GRANT_REVOKE_REQUESTED,
    RATELIMIT_BUCKET,
)
from scwadd_core.objects import ObjectBuckets
from scwadd_core.ratelimit import Limits, SharedRateLimit, pace_custodian_calls
from scwadd_core.web import bus_check, create_app, database_check, serve

from scwadd_exporter.conversion import UNCONVERTIBLE, convert_documents
from scwadd_exporter.http import build_router
from scwadd_exporter.service import Exporter, ExporterPolicy
from scwadd_exporter.settings import ExporterSettings

log = logging.getLogger("scwadd_exporter")

MIGRATIONS = "scwadd_exporter.migrations"
DURABLE = "exporter"
SUBJECTS = [GRANT_RECEIVED, FETCH_COMPLETED, FETCH_FAILED, GRANT_REVOKE_REQUESTED]


def migrate(settings: ExporterSettings) -> None:
    # run_migrations waits (bounded) for a database that starts after us.
    run_migrations(
        settings.DATABASE_URL, package=MIGRATIONS, create_database=settings.DATABASE_CREATE
    )


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
        policy=ExporterPolicy.from_settings(settings),
        unconvertible=UNCONVERTIBLE,
    )

    async def consume() -> None:
        await bus.run_consumer(
            DURABLE,
            SUBJECTS,
            exporter.on_event,
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
            await bus.sleep_unless_stopping(settings.WATCHDOG_INTERVAL_SECONDS)

    app = create_app(
        "scwadd exporter",
        checks={"nats": bus_check(bus), "database": database_check(engine)},
    )
    app.include_router(build_router(sessions))

    async def close() -> None:
        await custodian.aclose()
        engine.dispose()

    return await serve(
        app, settings, bus=bus, background=[consume, watchdog], on_shutdown=[close], stop=stop
    )

"""The auth process, wiring only: web pages, the outbox sweep, the status consumer and the
reconciler in one event loop (what each does is in service.py, http.py and reconciler.py)."""

from __future__ import annotations

import asyncio
import logging

from scwadd_core.bus import Bus
from scwadd_core.custodian import Custodian, CustodianConfig, count_custodian_calls
from scwadd_core.db import make_engine, run_migrations, session_factory
from scwadd_core.events import EXPORT_COMPLETED, GRANT_REVOKED, JOB_PROGRESS, RATELIMIT_BUCKET
from scwadd_core.ratelimit import Limits, SharedRateLimit, pace_custodian_calls
from scwadd_core.sealing import Keyring
from scwadd_core.web import bus_check, create_app, database_check, serve

from scwadd_auth.http import build_router
from scwadd_auth.reconciler import Reconciler
from scwadd_auth.service import AuthService
from scwadd_auth.settings import AuthSettings

log = logging.getLogger("scwadd_auth")

MIGRATIONS = "scwadd_auth.migrations"
DURABLE = "auth"
SUBJECTS = [JOB_PROGRESS, EXPORT_COMPLETED, GRANT_REVOKED]
OUTBOX_INTERVAL_SECONDS = 5.0


def migrate(settings: AuthSettings) -> None:
    # run_migrations waits (bounded) for a database that starts after us.
    run_migrations(
        settings.DATABASE_URL, package=MIGRATIONS, create_database=settings.DATABASE_CREATE
    )


async def main(settings: AuthSettings, *, stop: asyncio.Event | None = None) -> int:
    keyring = Keyring.parse(settings.TOKEN_SEALING_KEYS.get_secret_value())
    await asyncio.to_thread(migrate, settings)
    engine = make_engine(settings.DATABASE_URL)
    sessions = session_factory(engine)
    bus = await Bus.from_settings(settings, name="auth")
    await bus.ensure_streams()
    config = CustodianConfig.from_settings(settings)
    # The code exchange is not paced: a customer is waiting, and its retries back off anyway.
    custodian = Custodian(config)
    count_custodian_calls(custodian.http)
    # The reconciler's calls (client token, the Authorization list, DELETEs) take their share
    # of the client ID's budget, which the fetchers and the exporter draw on too.
    reconcile_custodian = Custodian(config)
    limiter = SharedRateLimit(
        await bus.key_value(RATELIMIT_BUCKET), Limits.from_settings(settings), service="auth"
    )
    pace_custodian_calls(reconcile_custodian.http, limiter)
    count_custodian_calls(reconcile_custodian.http)
    service = AuthService(
        settings=settings,
        sessions=sessions,
        keyring=keyring,
        custodian=custodian,
        publish=bus.publish,
    )

    reconciler = Reconciler(
        settings=settings,
        sessions=sessions,
        custodian=reconcile_custodian,
        holder=service.owner,
    )

    async def reconcile() -> None:
        await reconciler.run(bus)

    async def consume() -> None:
        await bus.run_consumer(DURABLE, SUBJECTS, service.on_event)

    async def outbox() -> None:
        # The first sweep runs at start: a crash between "ledger row committed" and "published"
        # is repaired before anything else happens.
        while not bus.stopping:
            try:
                await service.outbox_pass()
            except Exception:
                log.exception("outbox sweep failed; trying again")
            await bus.sleep_unless_stopping(OUTBOX_INTERVAL_SECONDS)

    app = create_app(
        "scwadd auth",
        checks={"nats": bus_check(bus), "database": database_check(engine)},
    )
    app.include_router(build_router(service))

    async def close() -> None:
        await service.stop_exchanges()
        await custodian.aclose()
        await reconcile_custodian.aclose()
        engine.dispose()

    return await serve(
        app,
        settings,
        bus=bus,
        background=[consume, outbox, reconcile],
        on_shutdown=[close],
        stop=stop,
    )

"""The auth process: web pages, the outbox sweep and the status consumer in one event loop."""

from __future__ import annotations

import asyncio
import logging

from scwadd_core.bus import Bus
from scwadd_core.custodian import Custodian, CustodianConfig
from scwadd_core.db import make_engine, run_migrations, session_factory
from scwadd_core.events import EXPORT_COMPLETED, GRANT_REVOKED, JOB_PROGRESS
from scwadd_core.sealing import Keyring
from scwadd_core.web import bus_check, create_app, database_check, serve
from sqlalchemy.orm import Session, sessionmaker

from scwadd_auth import oauth_state
from scwadd_auth.app import build_router
from scwadd_auth.service import AuthService
from scwadd_auth.settings import AuthSettings

log = logging.getLogger("scwadd_auth")

MIGRATIONS = "scwadd_auth.migrations"
DURABLE = "auth"
SUBJECTS = [JOB_PROGRESS, EXPORT_COMPLETED, GRANT_REVOKED]
OUTBOX_INTERVAL_SECONDS = 5.0


def migrate(settings: AuthSettings) -> None:
    # run_migrations waits (bounded) for a database that starts after us.
    run_migrations(settings.DATABASE_URL, package=MIGRATIONS)


async def main(settings: AuthSettings, *, stop: asyncio.Event | None = None) -> int:
    keyring = Keyring.parse(settings.TOKEN_SEALING_KEYS.get_secret_value())
    await asyncio.to_thread(migrate, settings)
    engine = make_engine(settings.DATABASE_URL)
    sessions = session_factory(engine)
    bus = await Bus.from_settings(settings, name="auth")
    await bus.ensure_streams()
    custodian = Custodian(CustodianConfig.from_settings(settings))
    service = AuthService(
        settings=settings,
        sessions=sessions,
        keyring=keyring,
        custodian=custodian,
        publish=bus.publish,
    )

    async def consume() -> None:
        await bus.run_consumer(DURABLE, SUBJECTS, service.on_event)

    async def outbox() -> None:
        # The first sweep runs at start: a crash between "ledger row committed" and "published"
        # is repaired before anything else happens.
        while not bus.stopping:
            try:
                sent = await service.sweep_outbox()
                if sent:
                    log.info("outbox: published grants left unpublished", extra={"count": sent})
                await asyncio.to_thread(_purge_states, sessions)
            except Exception:
                log.exception("outbox sweep failed; trying again")
            await _sleep_unless_stopping(bus, OUTBOX_INTERVAL_SECONDS)

    app = create_app(
        "scwadd auth",
        checks={"nats": bus_check(bus), "database": database_check(engine)},
    )
    app.include_router(build_router(service))

    async def close() -> None:
        await custodian.aclose()
        engine.dispose()

    return await serve(
        app, settings, bus=bus, background=[consume, outbox], on_shutdown=[close], stop=stop
    )


def _purge_states(sessions: sessionmaker[Session]) -> None:
    with sessions.begin() as session:
        oauth_state.purge_expired(session)


async def _sleep_unless_stopping(bus: Bus, seconds: float) -> None:
    deadline = asyncio.get_running_loop().time() + seconds
    while not bus.stopping and asyncio.get_running_loop().time() < deadline:
        await asyncio.sleep(0.25)

"""The files process, wiring only: bus, database, credentials, routes, the read model's consumer and
retention, run until SIGTERM."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from datetime import timedelta
from typing import Any
from urllib.parse import urlsplit

from scwadd_core.bus import Bus, ConsumerPolicy
from scwadd_core.db import make_engine, run_migrations, session_factory
from scwadd_core.events import EXPORTS_BUCKET
from scwadd_core.throttle import LoginThrottle
from scwadd_core.web import database_check, serve

from scwadd_files.htpasswd import Verifier
from scwadd_files.http import build_app
from scwadd_files.ledger import DURABLE, SUBJECTS, Console
from scwadd_files.service import FilesService, purge_expired
from scwadd_files.settings import Settings

log = logging.getLogger(__name__)


def make_service(
    bus: Bus, settings: Settings, users: dict[str, bytes], console: Console | None = None
) -> FilesService:
    throttle = LoginThrottle(
        free_failures=settings.AUTH_FREE_FAILURES,
        base_delay=settings.AUTH_BACKOFF_BASE_SECONDS,
        max_delay=settings.AUTH_BACKOFF_MAX_SECONDS,
    )
    return FilesService(
        bus,
        Verifier(users),
        throttle,
        retention_days=settings.EXPORT_RETENTION_DAYS,
        console=console,
    )


def migrate(settings: Settings) -> None:
    """Apply the console's migrations (``scwadd files migrate``, and at every start)."""
    run_migrations(
        settings.DATABASE_URL, "scwadd_files.migrations", create_database=settings.DATABASE_CREATE
    )


async def main(settings: Settings, users: dict[str, bytes]) -> int:
    await asyncio.to_thread(migrate, settings)
    engine = make_engine(settings.DATABASE_URL)
    try:
        bus = await Bus.from_settings(settings, name="files")
    except Exception as error:
        # The URL may carry credentials: name the host only.
        where = urlsplit(settings.NATS_URL)
        log.error(
            "cannot reach NATS at %s:%s, giving up: %s",
            where.hostname,
            where.port,
            type(error).__name__,
        )
        return 1
    # Created here too, so the listing works before the first export exists.
    await bus.object_store(EXPORTS_BUCKET)
    await bus.ensure_streams()
    console = Console(
        bus,
        session_factory(engine),
        unrevoked_after=timedelta(minutes=settings.UNREVOKED_ALERT_MINUTES),
    )
    service = make_service(bus, settings, users, console)
    app = build_app(service)
    from scwadd_core.web import add_readiness_check

    add_readiness_check(app, "database", database_check(engine))

    async def consume() -> None:
        # One event at a time: the read model is small and a job's events stay in order.
        await bus.run_consumer(DURABLE, SUBJECTS, console.handle, policy=ConsumerPolicy())

    async def retention() -> None:
        # At start, then every interval; a failed pass (NATS briefly away) is tried again at the
        # next one.
        while not bus.stopping:
            try:
                await purge_expired(bus, settings.EXPORT_RETENTION_DAYS)
            except Exception:
                log.exception("retention pass failed; retrying at the next interval")
            await bus.sleep_unless_stopping(settings.RETENTION_INTERVAL_SECONDS)

    log.info(
        "files service starting",
        extra={"operators": len(users), "retention_days": settings.EXPORT_RETENTION_DAYS},
    )
    return await serve(
        app,
        settings,
        bus=bus,
        on_shutdown=[_dispose(engine)],
        background=[consume, retention],
    )


def _dispose(engine: Any) -> Callable[[], Awaitable[None]]:
    async def dispose() -> None:
        engine.dispose()

    return dispose

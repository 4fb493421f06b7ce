"""Wiring of the files service: bus, credentials, app, retention, run until SIGTERM."""

from __future__ import annotations

import logging
from urllib.parse import urlsplit

from scwadd_core.bus import Bus
from scwadd_core.events import EXPORTS_BUCKET
from scwadd_core.web import serve

from scwadd_files.app import FilesService, build_app, retention_loop
from scwadd_files.htpasswd import Verifier
from scwadd_files.settings import Settings
from scwadd_files.throttle import LoginThrottle

log = logging.getLogger(__name__)


def make_service(bus: Bus, settings: Settings, users: dict[str, bytes]) -> FilesService:
    throttle = LoginThrottle(
        free_failures=settings.AUTH_FREE_FAILURES,
        base_delay=settings.AUTH_BACKOFF_BASE_SECONDS,
        max_delay=settings.AUTH_BACKOFF_MAX_SECONDS,
    )
    return FilesService(
        bus, Verifier(users), throttle, retention_days=settings.EXPORT_RETENTION_DAYS
    )


async def main(settings: Settings, users: dict[str, bytes]) -> int:
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
    service = make_service(bus, settings, users)
    log.info(
        "files service starting",
        extra={"operators": len(users), "retention_days": settings.EXPORT_RETENTION_DAYS},
    )
    return await serve(
        build_app(service),
        settings,
        bus=bus,
        background=[
            lambda: retention_loop(
                bus, settings.EXPORT_RETENTION_DAYS, settings.RETENTION_INTERVAL_SECONDS
            )
        ],
    )

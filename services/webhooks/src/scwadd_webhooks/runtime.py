"""The webhooks process, wiring only: database, bus consumer, delivery loop, routes."""

from __future__ import annotations

import asyncio
import logging

import httpx
from scwadd_core.bus import Bus
from scwadd_core.db import make_engine, run_migrations, session_factory
from scwadd_core.events import EXPORT_COMPLETED, GRANT_REVOKED
from scwadd_core.web import bus_check, create_app, database_check, serve

from scwadd_webhooks.delivery import Signer
from scwadd_webhooks.http import build_router
from scwadd_webhooks.service import RetryPolicy, WebhookService
from scwadd_webhooks.settings import WebhookSettings

log = logging.getLogger("scwadd_webhooks")

MIGRATIONS = "scwadd_webhooks.migrations"
DURABLE = "webhooks"
SUBJECTS = [EXPORT_COMPLETED, GRANT_REVOKED]


def migrate(settings: WebhookSettings) -> None:
    run_migrations(
        settings.DATABASE_URL, package=MIGRATIONS, create_database=settings.DATABASE_CREATE
    )


async def main(settings: WebhookSettings, *, stop: asyncio.Event | None = None) -> int:
    await asyncio.to_thread(migrate, settings)
    engine = make_engine(settings.DATABASE_URL)
    sessions = session_factory(engine)
    bus = await Bus.from_settings(settings, name="webhooks")
    await bus.ensure_streams()
    secrets = settings.secrets()
    endpoints = settings.endpoints()
    if not endpoints:
        log.info("no WEBHOOK_ENDPOINTS configured: events are read and not sent anywhere")
    # No redirects (a 3xx is a failed attempt), no proxy from the environment, bounded time.
    client = httpx.AsyncClient(
        follow_redirects=False, trust_env=False, timeout=settings.WEBHOOK_TIMEOUT_SECONDS
    )
    service = WebhookService(
        sessions=sessions,
        client=client,
        endpoints=endpoints,
        signer=Signer(secrets) if secrets else None,
        allowed=settings.allowed_networks(),
        policy=RetryPolicy.from_settings(settings),
    )

    async def consume() -> None:
        await bus.run_consumer(DURABLE, SUBJECTS, service.on_event)

    async def deliver() -> None:
        while not bus.stopping:
            try:
                await service.deliver_due()
            except Exception:
                log.exception("delivery pass failed; trying again")
            await bus.sleep_unless_stopping(settings.WEBHOOK_INTERVAL_SECONDS)

    app = create_app(
        "scwadd webhooks", checks={"nats": bus_check(bus), "database": database_check(engine)}
    )
    app.include_router(build_router(service))

    async def close() -> None:
        await client.aclose()
        engine.dispose()

    return await serve(
        app, settings, bus=bus, background=[consume, deliver], on_shutdown=[close], stop=stop
    )

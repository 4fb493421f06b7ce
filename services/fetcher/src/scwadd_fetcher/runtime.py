"""The fetcher process, wiring only: settings → database, bus, custodian client, shared rate
limit, object store → the consumer and the routes (decisions: :mod:`scwadd_fetcher.service`)."""

from __future__ import annotations

import asyncio
import logging

from scwadd_core.bus import Bus
from scwadd_core.custodian import (
    Custodian,
    CustodianConfig,
    count_custodian_calls,
)
from scwadd_core.db import make_engine, run_migrations, session_factory
from scwadd_core.events import GRANT_RECEIVED, RATELIMIT_BUCKET, RAW_BUCKET
from scwadd_core.objects import ObjectBuckets
from scwadd_core.ratelimit import Limits, SharedRateLimit, pace_custodian_calls
from scwadd_core.sealing import Keyring
from scwadd_core.web import create_app, database_check, serve

from scwadd_fetcher.http import build_router
from scwadd_fetcher.ledger import Holder
from scwadd_fetcher.service import Fetcher, FetcherOptions
from scwadd_fetcher.settings import FetcherSettings

log = logging.getLogger(__name__)

MIGRATIONS = "scwadd_fetcher.migrations"
DURABLE = "fetcher"


def migrate(settings: FetcherSettings) -> None:
    # run_migrations waits (bounded) for a database that starts after us.
    run_migrations(
        settings.DATABASE_URL, package=MIGRATIONS, create_database=settings.DATABASE_CREATE
    )


async def main(settings: FetcherSettings, *, stop: asyncio.Event | None = None) -> int:
    await asyncio.to_thread(migrate, settings)
    engine = make_engine(settings.DATABASE_URL)
    bus = await Bus.from_settings(settings, name="fetcher")
    await bus.ensure_streams()
    objects = ObjectBuckets(bus)
    await objects.open(RAW_BUCKET)  # created at start, not at the first fetch
    config = CustodianConfig.from_settings(settings)
    custodian = Custodian(config)
    # The same budget as the exporter's revocations: PG&E counts the client ID's calls.
    limits = Limits.from_settings(settings)
    limiter = SharedRateLimit(await bus.key_value(RATELIMIT_BUCKET), limits, service="fetcher")
    pace_custodian_calls(custodian.http, limiter)
    count_custodian_calls(custodian.http)
    fetcher = Fetcher(
        bus=bus,
        sessions=session_factory(engine),
        holder=Holder.of_this_process(settings.JOB_LEASE_SECONDS),
        custodian=custodian,
        keyring=Keyring.parse(settings.TOKEN_SEALING_KEYS.get_secret_value()),
        raw_store=objects,
        options=FetcherOptions.from_settings(settings),
    )
    # Every replica hears every batch.ready: the job waiting for it may be on any of them.
    await fetcher.listen_batch_ready()

    async def consume() -> None:
        await bus.run_consumer(DURABLE, GRANT_RECEIVED, fetcher.handle_grant, policy=fetcher.policy)

    app = create_app("fetcher", checks={"nats": bus.ready, "database": database_check(engine)})
    app.include_router(build_router(fetcher))

    async def close() -> None:
        await custodian.aclose()
        engine.dispose()

    return await serve(app, settings, bus=bus, background=[consume], on_shutdown=[close], stop=stop)

"""Wiring: settings → database, bus, custodian client, rate limit → the running service."""

from __future__ import annotations

import asyncio
import logging
import math
import os
import socket
import uuid
from dataclasses import dataclass

import httpx
from fastapi import FastAPI, Request, Response
from scwadd_core.bus import Bus
from scwadd_core.custodian import Custodian, CustodianConfig, make_http_client
from scwadd_core.db import make_engine, run_migrations, session_factory
from scwadd_core.events import GRANT_RECEIVED, RATELIMIT_BUCKET, RAW_BUCKET
from scwadd_core.ratelimit import Limits, SharedRateLimit, pace_custodian_calls
from scwadd_core.sealing import Keyring
from scwadd_core.web import create_app, database_check, serve
from sqlalchemy import Engine

from scwadd_fetcher import metrics
from scwadd_fetcher.api import RetryPolicy
from scwadd_fetcher.jobs import JobLedger
from scwadd_fetcher.notify import NotifyLimits, SourceRateLimit
from scwadd_fetcher.service import Fetcher, FetcherOptions, ObjectStoreRaw
from scwadd_fetcher.settings import FetcherSettings

log = logging.getLogger(__name__)

MIGRATIONS = "scwadd_fetcher.migrations"
DURABLE = "fetcher"


def migrate(settings: FetcherSettings) -> None:
    # run_migrations waits (bounded) for a database that starts after us.
    run_migrations(settings.DATABASE_URL, package=MIGRATIONS)


def options_from(settings: FetcherSettings) -> FetcherOptions:
    return FetcherOptions(
        api_base=settings.PGE_API_BASE,
        history_days=settings.HISTORY_DAYS,
        max_range_days=settings.CUSTODIAN_MAX_RANGE_DAYS,
        notification_timeout=settings.BATCH_NOTIFICATION_TIMEOUT_SECONDS,
        rerequests=settings.BATCH_REREQUESTS,
        batch_scope=settings.BATCH_SCOPE,
        bulk_gather_seconds=settings.BULK_GATHER_SECONDS,
        bulk_id=settings.PGE_BULK_ID,
        concurrency=settings.concurrency,
        retry=RetryPolicy(
            attempts=settings.FETCH_RETRY_ATTEMPTS,
            initial_wait=settings.FETCH_RETRY_INITIAL_SECONDS,
            max_wait=settings.FETCH_RETRY_MAX_SECONDS,
        ),
        notify=NotifyLimits(
            per_source_rate=settings.NOTIFY_RATE_PER_SECOND,
            per_source_burst=settings.NOTIFY_BURST,
        ),
    )


def add_notify_route(app: FastAPI, fetcher: Fetcher) -> None:
    limits = fetcher.notify_limits
    rate_limit = SourceRateLimit(limits)

    @app.post("/espi/notify")
    async def notify(request: Request) -> Response:
        """The custodian's BatchList. Answered at once; the waiting job (on any replica) gets it
        through ``batch.ready``. Bounded in rate (per sender and in all), size and resources."""
        source = request.client.host if request.client else "unknown"
        wait = rate_limit.allow(source)
        if wait > 0:
            metrics.BATCH_NOTIFICATIONS.labels("rate_limited").inc()
            return Response(
                "too many notifications\n",
                status_code=429,
                headers={"Retry-After": str(max(1, math.ceil(wait)))},
            )
        declared = request.headers.get("content-length", "")
        if declared.isdigit() and int(declared) > limits.max_bytes:
            metrics.BATCH_NOTIFICATIONS.labels("refused").inc()
            return Response("a BatchList is never this large\n", status_code=413)
        body = bytearray()
        async for chunk in request.stream():
            body += chunk
            if len(body) > limits.max_bytes:
                # Stop reading: an unauthenticated sender must not make us buffer gigabytes.
                metrics.BATCH_NOTIFICATIONS.labels("refused").inc()
                return Response("a BatchList is never this large\n", status_code=413)
        try:
            event = fetcher.accept_notification(bytes(body))
        except ValueError as error:
            metrics.BATCH_NOTIFICATIONS.labels("refused").inc()
            log.warning("refused a notification: %s", error)
            return Response(f"not a usable ESPI BatchList: {error}\n", status_code=400)
        stored = await fetcher.bus.publish(event)
        metrics.BATCH_NOTIFICATIONS.labels("accepted" if stored else "duplicate").inc()
        return Response(status_code=200)


@dataclass
class FetcherRuntime:
    """Everything one fetcher process holds; :func:`build` makes it, :meth:`serve` runs it."""

    settings: FetcherSettings
    engine: Engine
    bus: Bus
    custodian: Custodian
    fetcher: Fetcher
    app: FastAPI

    async def serve(self, stop: asyncio.Event | None = None) -> int:
        async def consume() -> None:
            await self.bus.run_consumer(
                DURABLE, GRANT_RECEIVED, self.fetcher.handle_grant, policy=self.fetcher.policy
            )

        try:
            return await serve(
                self.app,
                self.settings,
                bus=self.bus,
                background=[consume],
                on_shutdown=[self.custodian.aclose],
                stop=stop,
            )
        finally:
            self.engine.dispose()


async def build(settings: FetcherSettings) -> FetcherRuntime:
    migrate(settings)
    engine = make_engine(settings.DATABASE_URL)
    owner = f"{socket.gethostname()}-{os.getpid()}-{uuid.uuid4().hex[:6]}"
    ledger = JobLedger(session_factory(engine), owner, settings.JOB_LEASE_SECONDS)
    bus = await Bus.from_settings(settings, name="fetcher")
    await bus.ensure_streams()
    kv = await bus.key_value(RATELIMIT_BUCKET)
    raw = await bus.object_store(RAW_BUCKET)
    config = CustodianConfig.from_settings(settings)
    timeout = httpx.Timeout(settings.CUSTODIAN_TIMEOUT_SECONDS, connect=10.0)
    custodian = Custodian(config, http=make_http_client(config, timeout=timeout))
    # The same budget as the exporter's revocations: PG&E counts the client ID's calls.
    limiter = SharedRateLimit(kv, Limits.from_settings(settings), service="fetcher")
    pace_custodian_calls(custodian.http, limiter)
    fetcher = Fetcher(
        bus=bus,
        ledger=ledger,
        custodian=custodian,
        keyring=Keyring.parse(settings.TOKEN_SEALING_KEYS.get_secret_value()),
        raw_store=ObjectStoreRaw(raw),
        options=options_from(settings),
    )
    await fetcher.listen_batch_ready()
    app = create_app("fetcher", checks={"nats": bus.ready, "database": database_check(engine)})
    add_notify_route(app, fetcher)
    return FetcherRuntime(settings, engine, bus, custodian, fetcher, app)


async def main(settings: FetcherSettings) -> int:
    runtime = await build(settings)
    return await runtime.serve()

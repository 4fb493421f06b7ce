"""A real files service (uvicorn on a free port) over a real nats-server, with a few exports."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import bcrypt
import pytest
from files_support import (
    CSV_BODY,
    CSV_NAME,
    MANIFEST_BODY,
    MANIFEST_NAME,
    OPERATOR,
    ConsoleServer,
    FilesServer,
)
from scwadd_core.bus import Bus
from scwadd_core.events import EXPORTS_BUCKET
from scwadd_core.settings import ServiceSettings
from scwadd_core.throttle import LoginThrottle
from scwadd_core.web import serve
from scwadd_files.htpasswd import Verifier
from scwadd_files.http import build_app
from scwadd_files.service import FilesService
from scwadd_testing import free_port


@pytest.fixture
async def files_server(nats_server: str) -> AsyncIterator[FilesServer]:
    bus = await Bus.connect(nats_server, name="files-test")
    store = await bus.object_store(EXPORTS_BUCKET)
    await store.put(CSV_NAME, CSV_BODY)
    await store.put(MANIFEST_NAME, MANIFEST_BODY)
    # Cost 4 keeps the suite fast; the cost does not change what is tested.
    users = {OPERATOR[0]: bcrypt.hashpw(OPERATOR[1].encode(), bcrypt.gensalt(4))}
    service = FilesService(
        bus,
        Verifier(users),
        LoginThrottle(free_failures=3, base_delay=30.0),
        retention_days=30,
    )
    port = free_port()
    settings = ServiceSettings(NATS_URL=nats_server, HTTP_HOST="127.0.0.1", HTTP_PORT=port)
    stop = asyncio.Event()
    runner = asyncio.create_task(serve(build_app(service), settings, stop=stop))
    url = f"http://127.0.0.1:{port}"
    import httpx

    async with httpx.AsyncClient() as client:
        for _ in range(200):
            try:
                await client.get(url + "/healthz")
                break
            except httpx.TransportError:
                await asyncio.sleep(0.05)
    try:
        yield FilesServer(url, bus, store, service)
    finally:
        stop.set()
        await asyncio.wait_for(runner, 30)
        await bus.close()


@pytest.fixture
async def console_server(nats_server: str, sqlite_url: str) -> AsyncIterator[ConsoleServer]:
    """The files service as `scwadd files` runs it: read model migrated, its consumer running."""
    from datetime import timedelta

    from scwadd_core.bus import ConsumerPolicy
    from scwadd_core.db import make_engine, session_factory
    from scwadd_files.ledger import DURABLE, SUBJECTS, Console
    from scwadd_files.runtime import migrate
    from scwadd_files.settings import Settings

    settings = Settings(
        NATS_URL=nats_server,
        HTTP_HOST="127.0.0.1",
        HTTP_PORT=free_port(),
        DATABASE_URL=sqlite_url,
        HTPASSWD="x:$2b$04$" + "a" * 53,
    )
    migrate(settings)
    engine = make_engine(sqlite_url)
    bus = await Bus.connect(nats_server, name="files-console-test")
    await bus.ensure_streams()
    await bus.object_store(EXPORTS_BUCKET)
    users = {OPERATOR[0]: bcrypt.hashpw(OPERATOR[1].encode(), bcrypt.gensalt(4))}
    console = Console(bus, session_factory(engine), unrevoked_after=timedelta(minutes=60))
    service = FilesService(
        bus,
        Verifier(users),
        LoginThrottle(free_failures=50, base_delay=1.0),
        retention_days=30,
        console=console,
    )

    async def consume() -> None:
        await bus.run_consumer(DURABLE, SUBJECTS, console.handle, policy=ConsumerPolicy())

    stop = asyncio.Event()
    runner = asyncio.create_task(
        serve(build_app(service), settings, bus=bus, background=[consume], stop=stop)
    )
    url = f"http://127.0.0.1:{settings.HTTP_PORT}"
    import httpx

    async with httpx.AsyncClient() as client:
        for _ in range(200):
            try:
                await client.get(url + "/healthz")
                break
            except httpx.TransportError:
                await asyncio.sleep(0.05)
    try:
        yield ConsoleServer(url, bus, service, sqlite_url)
    finally:
        stop.set()
        await asyncio.wait_for(runner, 30)
        engine.dispose()

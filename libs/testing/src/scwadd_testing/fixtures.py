"""pytest fixtures shared by every test area (registered in the root ``tests/conftest.py``).

- ``nats_server``: a fresh nats-server with JetStream per test; yields its URL.
- ``nats``: the :class:`~scwadd_testing.nats.NatsServer` itself (to stop/restart it).
- ``database_url``: runs the test twice, on SQLite (a temp file) and on PostgreSQL (a fresh schema
  at ``SCWADD_TEST_POSTGRES_URL``, default postgres@127.0.0.1:5432/test); where PostgreSQL is not
  reachable the PostgreSQL run is skipped with the reason
  "PostgreSQL not reachable at ...: not run".
- ``sqlite_url`` / ``postgres_database_url``: one engine only.
- ``chromium``: Debian's headless chromium (a playwright async ``Browser``) for an anyio test;
  where it is not installed the test is skipped with "needs Debian chromium ...: not run".
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

from scwadd_testing.browser import chromium_unavailable_reason, launch_chromium
from scwadd_testing.nats import NatsServer
from scwadd_testing.postgres import isolated_schema, postgres_unavailable_reason

if TYPE_CHECKING:
    from playwright.async_api import Browser


@pytest.fixture
def nats(tmp_path: Path) -> Iterator[NatsServer]:
    server = NatsServer(tmp_path / "nats")
    server.start()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture
def nats_server(nats: NatsServer) -> str:
    return nats.url


@pytest.fixture
def sqlite_url(tmp_path: Path) -> str:
    return f"sqlite:///{tmp_path / 'test.db'}"


@pytest.fixture
def postgres_database_url() -> Iterator[str]:
    reason = postgres_unavailable_reason()
    if reason is not None:
        pytest.skip(reason)
    with isolated_schema() as url:
        yield url


@pytest.fixture(
    params=[
        pytest.param("sqlite", id="sqlite"),
        pytest.param("postgresql", id="postgresql", marks=pytest.mark.postgres),
    ]
)
def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'test.db'}"
        return
    reason = postgres_unavailable_reason()
    if reason is not None:
        pytest.skip(reason)
    with isolated_schema() as url:
        yield url


@pytest.fixture(scope="session")
def anyio_backend() -> str:
    """Async tests (``pytest.mark.anyio``) run on asyncio, which nats-py and uvicorn need."""
    return "asyncio"


@pytest.fixture
async def chromium() -> AsyncIterator[Browser]:
    reason = chromium_unavailable_reason()
    if reason is not None:
        pytest.skip(reason)
    async with launch_chromium() as browser:
        yield browser

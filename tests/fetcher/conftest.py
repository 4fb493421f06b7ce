"""Fixtures for the fetcher tests: a real sandbox on free ports that POSTs its notifications to
the fetcher under test, a real nats-server (``nats_server`` from scwadd_testing) and the
test's own view of the bus (``observer``)."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable, Iterator
from contextlib import AbstractContextManager
from pathlib import Path
from typing import Any

import pytest
from fetcher_harness import Observer, fetcher_settings
from scwadd_core import devpki
from scwadd_core.bus import Bus
from scwadd_core.sealing import generate_key
from scwadd_fetcher.settings import FetcherSettings
from scwadd_sandbox.testing import RunningSandbox, start_sandbox
from scwadd_testing.nats import free_port


@pytest.fixture(scope="session")
def pki_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    directory = tmp_path_factory.mktemp("fetcher-pki")
    devpki.ensure_dev_pki(directory)
    return directory


@pytest.fixture
def fetcher_port() -> int:
    return free_port()


@pytest.fixture
def sealing_keys() -> str:
    return generate_key("test")


SettingsFactory = Callable[..., FetcherSettings]


@pytest.fixture
def settings_for(
    nats_server: str, sqlite_url: str, fetcher_port: int, sealing_keys: str
) -> SettingsFactory:
    """``settings_for(sandbox, **overrides)``: :func:`fetcher_harness.fetcher_settings` with this
    test's nats-server, port and sealing keys, on a SQLite file unless ``database_url=`` is
    given; other overrides are settings fields."""

    def factory(
        sandbox: RunningSandbox, *, database_url: str = sqlite_url, **overrides: Any
    ) -> FetcherSettings:
        return fetcher_settings(
            sandbox,
            nats_url=nats_server,
            database_url=database_url,
            port=fetcher_port,
            sealing_keys=sealing_keys,
            **overrides,
        )

    return factory


SandboxFactory = Callable[..., AbstractContextManager[RunningSandbox]]


@pytest.fixture
def make_sandbox(pki_dir: Path, fetcher_port: int) -> SandboxFactory:
    """Start a sandbox whose notification URI is the fetcher under test (overrides are
    SandboxConfig fields, e.g. max_range_seconds)."""

    def factory(**overrides: Any) -> AbstractContextManager[RunningSandbox]:
        return start_sandbox(
            pki_dir, notification_uri=f"https://127.0.0.1:{fetcher_port}/espi/notify", **overrides
        )

    return factory


@pytest.fixture
def sandbox(make_sandbox: SandboxFactory) -> Iterator[RunningSandbox]:
    with make_sandbox() as running:
        yield running


@pytest.fixture
async def observer(nats_server: str) -> AsyncIterator[Observer]:
    """The test's own connection to the bus: publishes grants, collects fetch outcomes."""
    bus = await Bus.connect(nats_server, name="test")
    try:
        watcher = Observer(bus)
        await watcher.start()
        yield watcher
    finally:
        await bus.close()

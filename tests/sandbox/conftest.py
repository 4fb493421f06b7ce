"""Fixtures for the sandbox tests: a running sandbox, the consent dance, a notification receiver."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
import uvicorn
from sandbox_helpers import Receiver
from scwadd_core import devpki
from scwadd_sandbox.server import bind
from scwadd_sandbox.testing import RunningSandbox, start_sandbox
from scwadd_sandbox.tls import server_context
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route


@pytest.fixture(scope="session")
def pki_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    directory = tmp_path_factory.mktemp("pki")
    devpki.ensure_dev_pki(directory)
    return directory


@pytest.fixture(scope="session")
def pki(pki_dir: Path) -> devpki.DevPki:
    return devpki.ensure_dev_pki(pki_dir)


@pytest.fixture
def sandbox(pki_dir: Path) -> Iterator[RunningSandbox]:
    with start_sandbox(pki_dir) as running:
        yield running


@pytest.fixture
def api(sandbox: RunningSandbox) -> Iterator[httpx.Client]:
    with sandbox.api_client() as client:
        yield client


@pytest.fixture
def receiver(pki: devpki.DevPki) -> Iterator[Receiver]:
    sock = bind("127.0.0.1", 0)
    found = Receiver(url=f"https://127.0.0.1:{sock.getsockname()[1]}/espi/notify")

    async def notify(request: Request) -> Response:
        body = await request.body()
        with found.arrived:
            found.bodies.append(body)
            found.arrived.notify_all()
        return Response(status_code=200)

    app = Starlette(routes=[Route("/espi/notify", notify, methods=["POST"])])
    context = server_context(pki.server_cert, pki.server_key, client_ca=None)
    config = uvicorn.Config(
        app,
        ssl_context_factory=lambda _c, _d: context,
        lifespan="off",
        log_level="warning",
        access_log=False,
    )
    server = uvicorn.Server(config)
    loop = asyncio.new_event_loop()
    thread = threading.Thread(
        target=lambda: loop.run_until_complete(server.serve(sockets=[sock])), daemon=True
    )
    thread.start()
    yield found
    server.should_exit = True
    thread.join(10)
    sock.close()

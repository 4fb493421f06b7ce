"""Fixtures for the conformance suite: a sandbox with PG&E's limits, a client with the registered
certificate, and a real HTTPS notification receiver (the third party's Notification URI)."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Iterator

import httpx
import pytest
import uvicorn
from conformance_client import NotificationInbox, PgeClient
from scwadd_core import devpki
from scwadd_sandbox.server import bind
from scwadd_sandbox.testing import RunningSandbox, start_sandbox
from scwadd_sandbox.tls import server_context
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route


@pytest.fixture(scope="module")
def conformance_pki(tmp_path_factory: pytest.TempPathFactory) -> devpki.DevPki:
    return devpki.ensure_dev_pki(tmp_path_factory.mktemp("conformance-pki"))


@pytest.fixture
def inbox(conformance_pki: devpki.DevPki) -> Iterator[NotificationInbox]:
    """The third party's Notification URI: HTTPS with the dev server certificate."""
    sock = bind("127.0.0.1", 0)
    found = NotificationInbox(url=f"https://127.0.0.1:{sock.getsockname()[1]}/espi/notify")

    async def notify(request: Request) -> Response:
        found.add(await request.body())
        return Response(status_code=200)

    app = Starlette(routes=[Route("/espi/notify", notify, methods=["POST"])])
    context = server_context(
        conformance_pki.server_cert, conformance_pki.server_key, client_ca=None
    )
    server = uvicorn.Server(
        uvicorn.Config(
            app,
            ssl_context_factory=lambda _c, _d: context,
            lifespan="off",
            log_level="warning",
            access_log=False,
        )
    )
    loop = asyncio.new_event_loop()
    thread = threading.Thread(
        target=lambda: loop.run_until_complete(server.serve(sockets=[sock])), daemon=True
    )
    thread.start()
    yield found
    server.should_exit = True
    thread.join(10)
    sock.close()


@pytest.fixture
def sandbox(conformance_pki: devpki.DevPki, inbox: NotificationInbox) -> Iterator[RunningSandbox]:
    with start_sandbox(
        conformance_pki.directory,
        notification_uri=inbox.url,
        notification_delay=(0.5, 1.5),
    ) as running:
        yield running


@pytest.fixture
def pge(sandbox: RunningSandbox) -> Iterator[PgeClient]:
    with sandbox.api_client() as http:
        yield PgeClient(sandbox, http)


@pytest.fixture
def raw(sandbox: RunningSandbox) -> Iterator[httpx.Client]:
    with sandbox.api_client() as http:
        yield http

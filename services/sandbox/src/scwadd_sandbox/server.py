"""Both faces as two uvicorn servers in one process and one event loop, sharing one state."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
import socket
import ssl
import threading
from collections.abc import Callable, Generator
from pathlib import Path
from typing import Any

import uvicorn
from starlette.types import ASGIApp, Receive, Scope, Send

from scwadd_sandbox.config import SandboxConfig
from scwadd_sandbox.http.api import create_api_app
from scwadd_sandbox.http.web import create_web_app
from scwadd_sandbox.notify import Notifier
from scwadd_sandbox.persist import StateStore
from scwadd_sandbox.state import SandboxState
from scwadd_sandbox.tls import ClientCertH11Protocol, server_context

log = logging.getLogger(__name__)


class _SaveAfterRequest:
    """Hands the state to its store after each request (a no-op without ``--state-file``)."""

    def __init__(self, app: ASGIApp, state: SandboxState) -> None:
        self.app = app
        self.state = state

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        try:
            await self.app(scope, receive, send)
        finally:
            if scope["type"] == "http":
                self.state.changed()


class _QuietServer(uvicorn.Server):
    """A uvicorn server that leaves signals to us: two servers must stop together."""

    @contextlib.contextmanager
    def capture_signals(self) -> Generator[None, None, None]:
        yield


def bind(host: str, port: int) -> socket.socket:
    """A listening socket; port 0 picks a free one (read it back with ``getsockname``)."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    # proto must be IPPROTO_TCP: asyncio only sets TCP_NODELAY on such sockets, and without it
    # Nagle + delayed ACK add 40 ms to every response written in two parts.
    sock = socket.socket(family, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind((host, port))
    sock.listen(128)
    sock.set_inheritable(True)
    return sock


class SandboxServer:
    """The two faces of one sandbox. ``serve()`` runs until ``stop()`` (or SIGINT/SIGTERM)."""

    def __init__(
        self,
        config: SandboxConfig,
        *,
        web_socket: socket.socket,
        api_socket: socket.socket,
        server_cert: Path,
        server_key: Path,
        state: SandboxState | None = None,
    ) -> None:
        self.config = config
        self.state = state if state is not None else SandboxState(config)
        self.store: StateStore | None = None
        if config.state_file is not None:
            self.store = StateStore(config.state_file)
            restored = self.store.load(self.state)
            log.info("restored %d records from the state file", restored)
            store, kept = self.store, self.state
            self.state.on_change = lambda: store.save(kept)
        self.web_socket = web_socket
        self.api_socket = api_socket
        self.notifier = Notifier(self.state)
        self.api_app = _SaveAfterRequest(
            create_api_app(config, self.state, self.notifier), self.state
        )
        self.web_app = _SaveAfterRequest(create_web_app(config, self.state), self.state)
        web_context = server_context(server_cert, server_key, client_ca=None)
        api_context = server_context(
            server_cert,
            server_key,
            client_ca=config.ca_file,
            require_client_cert=config.require_cert_in_handshake,
        )
        self.web = _QuietServer(self._uvicorn_config(self.web_app, web_context, "h11"))
        self.api = _QuietServer(
            self._uvicorn_config(self.api_app, api_context, ClientCertH11Protocol)
        )
        self.started = threading.Event()

    @staticmethod
    def _uvicorn_config(app: Any, context: ssl.SSLContext, http: Any) -> uvicorn.Config:
        def factory(
            _config: uvicorn.Config, _default: Callable[[], ssl.SSLContext]
        ) -> ssl.SSLContext:
            return context

        return uvicorn.Config(
            app,
            http=http,
            ssl_context_factory=factory,
            lifespan="off",
            # Request lines carry codes and tokens (the token endpoint accepts the query string).
            access_log=False,
            log_level="warning",
            timeout_graceful_shutdown=2,
        )

    async def serve(self, install_signal_handlers: bool = False) -> None:
        if install_signal_handlers:
            loop = asyncio.get_running_loop()
            for sig in (signal.SIGINT, signal.SIGTERM):
                loop.add_signal_handler(sig, self.stop)
        # Batches still pending when the sandbox stopped: their notification leaves now, late.
        for job in list(self.state.batches.values()):
            if job.pending:
                job.delay_seconds = self.state.notification_delay()
                self.notifier.schedule(job)
        watcher = asyncio.create_task(self._announce_started())
        try:
            await asyncio.gather(
                self.web.serve(sockets=[self.web_socket]),
                self.api.serve(sockets=[self.api_socket]),
            )
        finally:
            watcher.cancel()
            await self.notifier.drain()
            if self.store is not None:
                self.store.save(self.state)
                self.store.close()

    async def _announce_started(self) -> None:
        while not (self.web.started and self.api.started):
            if self.web.should_exit or self.api.should_exit:
                return
            await asyncio.sleep(0.01)
        self.started.set()

    def stop(self) -> None:
        self.web.should_exit = True
        self.api.should_exit = True

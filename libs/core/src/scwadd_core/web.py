"""The HTTP side every service shares: an app factory with ``/healthz``, ``/readyz`` and
``/metrics`` and security headers on every response, and :func:`serve`, which runs that app
with uvicorn (HTTPS when TLS_CERT_FILE and TLS_KEY_FILE are set) next to the service's bus
consumers in one asyncio loop, and stops the whole lot cleanly on SIGTERM/SIGINT.

A service's ``cli.py`` is then roughly::

    def run(args):
        settings = load_settings(Settings)
        configure_logging(settings.LOG_LEVEL)
        return run_async(main(settings))

    async def main(settings):
        bus = await Bus.from_settings(settings, name="exporter")
        await bus.ensure_streams()
        app = create_app("exporter", checks={"nats": bus.ready, "database": db_check})
        return await serve(app, settings, bus=bus,
                           background=[lambda: bus.run_consumer("exporter", SUBJECTS, handle)])
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import secrets
import signal
from collections.abc import Awaitable, Callable, Coroutine, Generator, Mapping, Sequence
from typing import Any

import uvicorn
from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse, Response
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from sqlalchemy import Engine
from starlette.datastructures import MutableHeaders
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from scwadd_core.bus import Bus
from scwadd_core.db import database_reachable
from scwadd_core.metrics import MetricsMiddleware
from scwadd_core.settings import ServiceSettings

log = logging.getLogger(__name__)

ReadinessCheck = Callable[[], Awaitable[bool] | bool]

_CHECK_TIMEOUT = 3.0

# One year, the value the HSTS preload list asks for (RFC 6797 section 6.1.1).
HSTS = "max-age=31536000; includeSubDomains"


def content_security_policy(nonce: str) -> str:
    """The default policy: everything from our own origin, inline ``<script>``/``<style>`` only
    with this response's nonce, no plugins, no ``<base>``, never framed (CSP Level 3). No
    ``form-action``: auth's consent form is answered with a redirect to the custodian, which
    browsers check against it."""
    return (
        "default-src 'self'; "
        f"script-src 'self' 'nonce-{nonce}'; "
        f"style-src 'self' 'nonce-{nonce}'; "
        "img-src 'self' data:; object-src 'none'; base-uri 'none'; frame-ancestors 'none'"
    )


class SecurityHeadersMiddleware:
    """Security headers on every response of every service, set here once.

    ``Content-Security-Policy`` (:func:`content_security_policy`; a page with inline script or
    style gives the element ``nonce="{{ request.state.csp_nonce }}"``), ``X-Frame-Options: DENY``
    (for browsers without ``frame-ancestors``), ``X-Content-Type-Options: nosniff``,
    ``Referrer-Policy: no-referrer`` (status URLs carry a job's id), and
    ``Strict-Transport-Security`` when the request came over TLS (our own listener, or an
    ingress's ``X-Forwarded-Proto: https`` from an address in ``FORWARDED_ALLOW_IPS``; RFC 6797
    forbids it over plain HTTP). A header the route already set (a stricter policy) is kept.
    """

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        nonce = secrets.token_urlsafe(16)
        scope.setdefault("state", {})["csp_nonce"] = nonce
        tls = scope.get("scheme") == "https"

        async def add_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = MutableHeaders(scope=message)
                defaults = {
                    "Content-Security-Policy": content_security_policy(nonce),
                    "X-Frame-Options": "DENY",
                    "X-Content-Type-Options": "nosniff",
                    "Referrer-Policy": "no-referrer",
                }
                if tls:
                    defaults["Strict-Transport-Security"] = HSTS
                for name, value in defaults.items():
                    if name not in headers:
                        headers[name] = value
            await send(message)

        await self.app(scope, receive, add_headers)


def create_app(
    title: str,
    *,
    checks: Mapping[str, ReadinessCheck] | None = None,
    **fastapi_options: Any,
) -> FastAPI:
    """A FastAPI app with the operational endpoints and the HTTP metrics middleware.

    ``checks`` name readiness checks (sync or async callables returning bool); more can be added
    later with :func:`add_readiness_check`. The interactive API docs are off: these are not
    public APIs and the fewer unauthenticated pages, the better.
    """
    fastapi_options.setdefault("docs_url", None)
    fastapi_options.setdefault("redoc_url", None)
    fastapi_options.setdefault("openapi_url", None)
    app = FastAPI(title=title, **fastapi_options)
    app.state.readiness_checks = dict(checks or {})
    app.state.stopping = False
    # Set by serve() when METRICS_PORT moves /metrics off the service port.
    app.state.metrics_elsewhere = False
    app.add_middleware(SecurityHeadersMiddleware)
    app.add_middleware(MetricsMiddleware)

    @app.get("/healthz", include_in_schema=False)
    async def healthz() -> dict[str, str]:
        # Liveness: the loop answers. Dependencies are /readyz's business, so a NATS outage
        # takes the pod out of rotation instead of restarting it in a loop.
        return {"status": "ok"}

    @app.get("/readyz", include_in_schema=False)
    async def readyz(request: Request) -> JSONResponse:
        results = await run_readiness_checks(request.app)
        ready = all(results.values()) and not request.app.state.stopping
        return JSONResponse(
            {"status": "ready" if ready else "not ready", "checks": results},
            status_code=200 if ready else 503,
        )

    @app.get("/metrics", include_in_schema=False)
    async def metrics(request: Request) -> Response:
        if request.app.state.metrics_elsewhere:
            return JSONResponse({"detail": "Not Found"}, status_code=404)
        return _metrics_response()

    return app


def _metrics_response() -> Response:
    return Response(generate_latest(), media_type=CONTENT_TYPE_LATEST)


def metrics_app() -> FastAPI:
    """The app on ``METRICS_PORT``: ``/metrics`` and nothing else."""
    app = FastAPI(title="metrics", docs_url=None, redoc_url=None, openapi_url=None)
    app.add_middleware(SecurityHeadersMiddleware)

    @app.get("/metrics", include_in_schema=False)
    async def metrics() -> Response:
        return _metrics_response()

    return app


def add_readiness_check(app: FastAPI, name: str, check: ReadinessCheck) -> None:
    app.state.readiness_checks[name] = check


async def _run_check(check: ReadinessCheck) -> bool:
    try:
        if asyncio.iscoroutinefunction(check):
            return bool(await asyncio.wait_for(check(), _CHECK_TIMEOUT))
        # A sync check (a database ping) must not block the loop that serves /healthz.
        result = await asyncio.wait_for(asyncio.to_thread(check), _CHECK_TIMEOUT)
        if asyncio.iscoroutine(result) or isinstance(result, Awaitable):
            result = await asyncio.wait_for(result, _CHECK_TIMEOUT)
        return bool(result)
    except Exception:
        return False


async def run_readiness_checks(app: FastAPI) -> dict[str, bool]:
    checks: dict[str, ReadinessCheck] = app.state.readiness_checks
    names = list(checks)
    results = await asyncio.gather(*(_run_check(checks[name]) for name in names))
    return dict(zip(names, results, strict=True))


def bus_check(bus: Bus) -> ReadinessCheck:
    return bus.ready


def database_check(engine: Engine) -> ReadinessCheck:
    return lambda: database_reachable(engine)


class _Server(uvicorn.Server):
    """uvicorn without its own signal handling: :func:`serve` owns SIGTERM/SIGINT so it can stop
    the consumers before the HTTP server, and uvicorn must not re-raise the signal afterwards."""

    @contextlib.contextmanager
    def capture_signals(self) -> Generator[None, None, None]:
        yield


def uvicorn_config(app: FastAPI, settings: ServiceSettings, **options: Any) -> uvicorn.Config:
    if settings.tls_enabled():
        options.setdefault("ssl_certfile", str(settings.TLS_CERT_FILE))
        options.setdefault("ssl_keyfile", str(settings.TLS_KEY_FILE))
    return uvicorn.Config(
        app,
        host=settings.HTTP_HOST,
        port=settings.HTTP_PORT,
        log_config=None,  # keep the JSON handlers from scwadd_core.logs
        server_header=False,
        lifespan="on",
        timeout_graceful_shutdown=10,
        **options,
    )


async def _serve_http(server: uvicorn.Server) -> None:
    try:
        await server.serve()
    except SystemExit as error:
        # uvicorn exits the process when it cannot listen (port taken, unreadable certificate);
        # turned into an error here so the service still shuts its other parts down cleanly.
        raise RuntimeError(f"the HTTP server could not start (uvicorn exit {error.code})") from None


async def serve(
    app: FastAPI,
    settings: ServiceSettings,
    *,
    bus: Bus | None = None,
    background: Sequence[Callable[[], Coroutine[Any, Any, None]]] = (),
    on_shutdown: Sequence[Callable[[], Awaitable[None]]] = (),
    stop: asyncio.Event | None = None,
    grace_seconds: float = 25.0,
    **uvicorn_options: Any,
) -> int:
    """Serve ``app`` and run ``background`` coroutines until SIGTERM/SIGINT (or ``stop``).

    Shutdown order: /readyz turns 503; the bus stops fetching and in-flight handlers finish
    (up to ``grace_seconds``, then they are cancelled and their messages handed back); the HTTP
    server finishes open requests; ``on_shutdown`` callbacks run; the bus is drained.
    Returns the exit code: 0 after a requested stop, 1 if the server or a background task died.
    """
    stop = stop or asyncio.Event()
    loop = asyncio.get_running_loop()
    installed: list[signal.Signals] = []
    for sig in (signal.SIGTERM, signal.SIGINT):
        with contextlib.suppress(NotImplementedError, RuntimeError):
            loop.add_signal_handler(sig, stop.set)
            installed.append(sig)

    server = _Server(uvicorn_config(app, settings, **uvicorn_options))
    server_task = asyncio.create_task(_serve_http(server), name="http")
    metrics_server: _Server | None = None
    servers = [server_task]
    if settings.METRICS_PORT is not None:
        app.state.metrics_elsewhere = True
        metrics_server = _Server(
            uvicorn.Config(
                metrics_app(),
                host=settings.HTTP_HOST,
                port=settings.METRICS_PORT,
                log_config=None,
                server_header=False,
                lifespan="off",
                access_log=False,
            )
        )
        servers.append(asyncio.create_task(_serve_http(metrics_server), name="metrics-http"))
    workers = [
        asyncio.create_task(factory(), name=f"background-{n}")
        for n, factory in enumerate(background)
    ]
    stop_task = asyncio.create_task(stop.wait(), name="stop")
    exit_code = 0
    try:
        done, _ = await asyncio.wait(
            [*servers, stop_task, *workers], return_when=asyncio.FIRST_COMPLETED
        )
        for task in done:
            if task is stop_task:
                log.info("stop requested; shutting down")
                continue
            error = task.exception()
            if error is not None:
                log.error("%s stopped with an error", task.get_name(), exc_info=error)
            else:
                log.error("%s stopped unexpectedly", task.get_name())
            exit_code = 1
    finally:
        app.state.stopping = True
        if bus is not None:
            bus.request_stop()
        pending = [task for task in workers if not task.done()]
        if pending:
            _, still_running = await asyncio.wait(pending, timeout=grace_seconds)
            for task in still_running:
                task.cancel()
            await asyncio.gather(*still_running, return_exceptions=True)
        server.should_exit = True
        if metrics_server is not None:
            metrics_server.should_exit = True
        for task in servers:
            with contextlib.suppress(Exception):
                await task
        if server_task.done() and not server_task.cancelled() and not server.started:
            exit_code = 1  # never listened (port taken, bad certificate): uvicorn logged why
        stop_task.cancel()
        for callback in on_shutdown:
            try:
                await callback()
            except Exception:
                log.exception("shutdown step failed")
        if bus is not None:
            await bus.close()
        for sig in installed:
            loop.remove_signal_handler(sig)
    return exit_code


def run_async(main: Coroutine[Any, Any, int]) -> int:
    """``asyncio.run`` for a service's ``main``; its return value is the process exit code."""
    return asyncio.run(main)

"""The shared HTTP side: operational endpoints, metrics per route template, HTTPS, and the runner
stopping consumers and server together."""

from __future__ import annotations

import asyncio
import os
import signal
import ssl
import subprocess
import sys
import textwrap
from pathlib import Path

import httpx
import pytest
import trustme
from scwadd_core.bus import Bus
from scwadd_core.events import JOB_PROGRESS, Event, JobProgress
from scwadd_core.settings import ServiceSettings
from scwadd_core.testing import free_port
from scwadd_core.web import create_app, serve

pytestmark = pytest.mark.anyio


async def wait_for_http(url: str, **client_options: object) -> None:
    async with httpx.AsyncClient(**client_options) as client:  # type: ignore[arg-type]
        for _ in range(200):
            try:
                await client.get(url)
                return
            except httpx.TransportError:
                await asyncio.sleep(0.05)
    raise AssertionError(f"{url} never answered")


async def test_operational_endpoints_and_route_metrics() -> None:
    port = free_port()
    settings = ServiceSettings(NATS_URL="nats://unused", HTTP_HOST="127.0.0.1", HTTP_PORT=port)

    async def broken() -> bool:
        raise ConnectionError("database down")

    app = create_app("test", checks={"always": lambda: True})

    @app.get("/items/{item_id}")
    async def item(item_id: str) -> dict[str, str]:
        return {"id": item_id}

    stop = asyncio.Event()
    runner = asyncio.create_task(serve(app, settings, stop=stop))
    base = f"http://127.0.0.1:{port}"
    await wait_for_http(base + "/healthz")
    async with httpx.AsyncClient(base_url=base) as client:
        assert (await client.get("/healthz")).json() == {"status": "ok"}
        ready = await client.get("/readyz")
        assert ready.status_code == 200 and ready.json()["checks"] == {"always": True}
        app.state.readiness_checks["database"] = broken
        not_ready = await client.get("/readyz")
        assert not_ready.status_code == 503
        assert not_ready.json()["checks"] == {"always": True, "database": False}
        await client.get("/items/customer-secret-id")
        metrics = (await client.get("/metrics")).text
    assert 'route="/items/{item_id}"' in metrics
    assert "customer-secret-id" not in metrics
    assert "scwadd_http_request_duration_seconds_bucket" in metrics
    stop.set()
    assert await asyncio.wait_for(runner, 30) == 0


async def test_https_when_a_certificate_is_configured(tmp_path: Path) -> None:
    ca = trustme.CA()
    cert = ca.issue_cert("127.0.0.1", "localhost")
    cert_file, key_file, ca_file = tmp_path / "c.pem", tmp_path / "k.pem", tmp_path / "ca.pem"
    cert.cert_chain_pems[0].write_to_path(str(cert_file))
    cert.private_key_pem.write_to_path(str(key_file))
    ca.cert_pem.write_to_path(str(ca_file))
    port = free_port()
    settings = ServiceSettings(
        NATS_URL="nats://unused",
        HTTP_HOST="127.0.0.1",
        HTTP_PORT=port,
        TLS_CERT_FILE=cert_file,
        TLS_KEY_FILE=key_file,
    )
    stop = asyncio.Event()
    runner = asyncio.create_task(serve(create_app("tls"), settings, stop=stop))
    context = ssl.create_default_context(cafile=str(ca_file))
    url = f"https://127.0.0.1:{port}/healthz"
    await wait_for_http(url, verify=context)
    async with httpx.AsyncClient(verify=context) as client:
        assert (await client.get(url)).status_code == 200
    stop.set()
    assert await asyncio.wait_for(runner, 30) == 0


async def test_stop_lets_the_consumer_finish_its_message_first(nats_server: str) -> None:
    bus = await Bus.connect(nats_server, name="graceful")
    await bus.ensure_streams()
    await bus.publish(JobProgress(job_id="job-g", phase="fetching", message="."))
    started, finished = asyncio.Event(), asyncio.Event()
    stop = asyncio.Event()

    async def slow_handler(event: Event) -> None:
        started.set()
        stop.set()  # the stop request arrives while the handler is still working
        await asyncio.sleep(0.3)
        finished.set()

    settings = ServiceSettings(NATS_URL=nats_server, HTTP_HOST="127.0.0.1", HTTP_PORT=free_port())
    code = await asyncio.wait_for(
        serve(
            create_app("graceful"),
            settings,
            bus=bus,
            stop=stop,
            background=[lambda: bus.run_consumer("graceful", JOB_PROGRESS, slow_handler)],
        ),
        30,
    )
    assert code == 0 and finished.is_set()
    check = await Bus.connect(nats_server, name="check")
    info = await check.js.consumer_info("SCWADD_EVENTS", "graceful")
    assert info.num_ack_pending == 0 and info.num_pending == 0  # acked before the exit
    await check.close()


async def test_a_crashing_background_task_stops_the_service_with_exit_code_1() -> None:
    async def crash() -> None:
        raise RuntimeError("consumer died")

    settings = ServiceSettings(
        NATS_URL="nats://unused", HTTP_HOST="127.0.0.1", HTTP_PORT=free_port()
    )
    assert await asyncio.wait_for(serve(create_app("x"), settings, background=[crash]), 30) == 1


def test_sigterm_stops_a_service_process_cleanly(tmp_path: Path) -> None:
    port = free_port()
    script = tmp_path / "service.py"
    script.write_text(
        textwrap.dedent(
            f"""
            import asyncio, sys
            from scwadd_core.settings import ServiceSettings
            from scwadd_core.web import create_app, serve, run_async
            from scwadd_core.logs import configure_logging

            async def main() -> int:
                settings = ServiceSettings(
                    NATS_URL="nats://unused", HTTP_HOST="127.0.0.1", HTTP_PORT={port}
                )
                app = create_app("sig")
                async def forever() -> None:
                    print("worker running", flush=True)
                    await asyncio.Event().wait()
                return await serve(app, settings, background=[forever], grace_seconds=1)

            configure_logging("INFO")
            sys.exit(run_async(main()))
            """
        )
    )
    process = subprocess.Popen(
        [sys.executable, str(script)], stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True
    )
    try:
        assert process.stdout is not None
        for _ in range(200):
            try:
                if httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=1).status_code == 200:
                    break
            except httpx.TransportError:
                import time

                time.sleep(0.05)
        process.send_signal(signal.SIGTERM)
        output, _ = process.communicate(timeout=30)
    finally:
        if process.poll() is None:
            process.kill()
    assert process.returncode == 0, output
    assert "stop requested" in output
    assert os.path.exists(script)


async def test_a_port_in_use_ends_serve_with_exit_code_1() -> None:
    import socket

    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        settings = ServiceSettings(NATS_URL="nats://unused", HTTP_HOST="127.0.0.1", HTTP_PORT=port)
        assert await asyncio.wait_for(serve(create_app("x"), settings), 30) == 1

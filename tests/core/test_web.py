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
from scwadd_core.web import create_app, serve
from scwadd_testing import free_port
from starlette.responses import HTMLResponse

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
        answer = await client.get(url)
    assert answer.status_code == 200
    # Served over TLS: browsers are told to keep to it (RFC 6797).
    assert answer.headers["strict-transport-security"].startswith("max-age=31536000")
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


def series(metrics: str, name: str) -> set[str]:
    return {line.split(" ")[0] for line in metrics.splitlines() if line.startswith(name + "{")}


async def test_made_up_methods_and_unknown_paths_add_no_series() -> None:
    # Anyone can send "FOO1 /x1": the labels must stay a small fixed set whatever they send.
    port = free_port()
    settings = ServiceSettings(NATS_URL="nats://unused", HTTP_HOST="127.0.0.1", HTTP_PORT=port)
    stop = asyncio.Event()
    runner = asyncio.create_task(serve(create_app("labels"), settings, stop=stop))
    base = f"http://127.0.0.1:{port}"
    await wait_for_http(base + "/healthz")
    async with httpx.AsyncClient(base_url=base) as client:
        # One of each kind first, so every label combination exists before counting series.
        await client.request("BREW", "/healthz")
        await client.request("BREW", "/nowhere")
        await client.get("/nowhere-0")
        await client.get("/metrics")
        before = (await client.get("/metrics")).text
        for n in range(20):
            await client.request(f"BREW{n}", f"/nowhere-{n}")
            await client.request(f"X{n}", "/healthz")
            await client.get(f"/nowhere/{n}/deeper")
        after = (await client.get("/metrics")).text
    stop.set()
    assert await asyncio.wait_for(runner, 30) == 0
    for name in ("scwadd_http_requests_total", "scwadd_http_request_duration_seconds_bucket"):
        assert series(after, name) == series(before, name)
    assert 'method="other"' in after and 'route="unmatched"' in after
    assert "BREW" not in after and "nowhere" not in after


async def test_security_headers_on_every_response() -> None:
    port = free_port()
    settings = ServiceSettings(NATS_URL="nats://unused", HTTP_HOST="127.0.0.1", HTTP_PORT=port)
    app = create_app("headers")

    @app.get("/page")
    async def page() -> HTMLResponse:
        return HTMLResponse("<p>hello</p>")

    @app.get("/strict")
    async def strict() -> HTMLResponse:
        return HTMLResponse("x", headers={"Content-Security-Policy": "default-src 'none'"})

    stop = asyncio.Event()
    runner = asyncio.create_task(serve(app, settings, stop=stop))
    base = f"http://127.0.0.1:{port}"
    await wait_for_http(base + "/healthz")
    async with httpx.AsyncClient(base_url=base) as client:
        answers = [await client.get(path) for path in ("/page", "/healthz", "/metrics", "/gone")]
        first, second = (await client.get("/page")), (await client.get("/strict"))
    stop.set()
    assert await asyncio.wait_for(runner, 30) == 0
    for answer in answers:
        assert answer.headers["x-frame-options"] == "DENY"
        assert answer.headers["x-content-type-options"] == "nosniff"
        assert answer.headers["referrer-policy"] == "no-referrer"
        policy = answer.headers["content-security-policy"]
        assert "frame-ancestors 'none'" in policy and "object-src 'none'" in policy
        # Plain HTTP: HSTS only where TLS is served.
        assert "strict-transport-security" not in answer.headers
        assert len(answer.headers.get_list("x-frame-options")) == 1
    # A fresh nonce per response, so an injected <script> cannot guess it.
    nonces = {
        a.headers["content-security-policy"].split("'nonce-")[1].split("'")[0]
        for a in (answers[0], first)
    }
    assert len(nonces) == 2
    # A route's own stricter policy is kept, not replaced.
    assert second.headers.get_list("content-security-policy") == ["default-src 'none'"]


async def test_metrics_port_takes_metrics_off_the_service_port() -> None:
    port, metrics_port = free_port(), free_port()
    settings = ServiceSettings(
        NATS_URL="nats://unused",
        HTTP_HOST="127.0.0.1",
        HTTP_PORT=port,
        METRICS_PORT=metrics_port,
    )
    stop = asyncio.Event()
    runner = asyncio.create_task(serve(create_app("split"), settings, stop=stop))
    await wait_for_http(f"http://127.0.0.1:{port}/healthz")
    await wait_for_http(f"http://127.0.0.1:{metrics_port}/metrics")
    async with httpx.AsyncClient() as client:
        public = await client.get(f"http://127.0.0.1:{port}/metrics")
        scraped = await client.get(f"http://127.0.0.1:{metrics_port}/metrics")
        elsewhere = await client.get(f"http://127.0.0.1:{metrics_port}/healthz")
    stop.set()
    assert await asyncio.wait_for(runner, 30) == 0
    assert public.status_code == 404 and "scwadd_http_requests_total" not in public.text
    assert scraped.status_code == 200 and "scwadd_http_requests_total" in scraped.text
    assert elsewhere.status_code == 404

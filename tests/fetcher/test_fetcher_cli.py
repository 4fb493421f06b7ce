"""`scwadd fetcher` as its own process, configured only by the environment."""

from __future__ import annotations

import os
import signal
import ssl
import subprocess
import sys
import time
from pathlib import Path

import httpx
from scwadd_core.sealing import generate_key

SCWADD = str(Path(sys.executable).parent / "scwadd")


def test_a_missing_setting_stops_the_service_naming_it(tmp_path):
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PGE_", "NATS_", "TOKEN_"))}
    env["NATS_URL"] = "nats://127.0.0.1:1"
    done = subprocess.run(
        [SCWADD, "fetcher"], env=env, capture_output=True, text=True, timeout=60, cwd=tmp_path
    )
    assert done.returncode == 2
    assert "PGE_API_BASE" in done.stderr
    assert "TOKEN_SEALING_KEYS" in done.stderr


def test_the_process_serves_https_health_and_metrics_and_stops_cleanly(
    sandbox, nats_server, tmp_path, fetcher_port
):
    env = {
        **os.environ,
        "NATS_URL": nats_server,
        "DATABASE_URL": f"sqlite:///{tmp_path / 'fetcher.db'}",
        "HTTP_HOST": "127.0.0.1",
        "HTTP_PORT": str(fetcher_port),
        "TLS_CERT_FILE": str(sandbox.pki.server_cert),
        "TLS_KEY_FILE": str(sandbox.pki.server_key),
        "PGE_CLIENT_ID": sandbox.client_id,
        "PGE_CLIENT_SECRET": sandbox.client_secret,
        "PGE_CLIENT_CERT_FILE": str(sandbox.pki.client_cert),
        "PGE_CLIENT_KEY_FILE": str(sandbox.pki.client_key),
        "PGE_CA_FILE": str(sandbox.pki.ca_cert),
        "PGE_TOKEN_URL": sandbox.token_url,
        "PGE_API_BASE": sandbox.espi_base,
        "TOKEN_SEALING_KEYS": generate_key(),
    }
    log = (tmp_path / "fetcher.log").open("wb")
    process = subprocess.Popen([SCWADD, "fetcher"], env=env, stdout=log, stderr=subprocess.STDOUT)
    base = f"https://127.0.0.1:{fetcher_port}"
    verify = ssl.create_default_context(cafile=str(sandbox.pki.ca_cert))
    try:
        with httpx.Client(verify=verify, timeout=5) as client:
            for _ in range(300):
                assert process.poll() is None, (tmp_path / "fetcher.log").read_text()
                try:
                    if client.get(f"{base}/readyz").status_code == 200:
                        break
                except httpx.HTTPError:
                    pass
                time.sleep(0.1)
            else:
                raise AssertionError("the fetcher never became ready")
            assert client.get(f"{base}/healthz").json() == {"status": "ok"}
            metrics = client.get(f"{base}/metrics").text
            assert "scwadd_rate_limit_waits_total" in metrics
            refused = client.post(f"{base}/espi/notify", content=b"<not-a-batchlist/>")
            assert refused.status_code == 400
    finally:
        process.send_signal(signal.SIGTERM)
        code = process.wait(timeout=60)
        log.close()
    assert code == 0
    lines = (tmp_path / "fetcher.log").read_text().splitlines()
    assert lines and all(line.startswith("{") for line in lines if line.strip())

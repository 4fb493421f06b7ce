"""`scwadd sandbox` as a separate process: starts both faces, says how to use them, stops."""

from __future__ import annotations

import json
import os
import signal
import ssl
import subprocess
import sys
from pathlib import Path

import httpx
from scwadd_core import devpki
from scwadd_testing import free_port

SCWADD = str(Path(sys.executable).with_name("scwadd"))


def _start_sandbox(*args: str) -> subprocess.Popen[str]:
    """``scwadd sandbox ARGS`` with a known admin credential, its output on one text pipe."""
    return subprocess.Popen(
        [SCWADD, "sandbox", *args],
        env={**os.environ, "SANDBOX_ADMIN_TOKEN": "admin-credential"},
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )


def test_scwadd_sandbox_serves_with_a_registration_file(tmp_path: Path) -> None:
    pki_dir = tmp_path / "pki"
    pki = devpki.ensure_dev_pki(pki_dir)
    client_id = "c" * 32
    registration = tmp_path / "registration.json"
    registration.write_text(
        json.dumps(
            {
                "registrations": [
                    {
                        "client_id": client_id,
                        "client_secret": "s3cret",
                        "redirect_uris": ["http://127.0.0.1:8080/OAuthCallback"],
                        "notification_uri": "https://127.0.0.1:8081/espi/notify",
                        "client_cert": str(pki.client_cert),
                    }
                ]
            }
        )
    )
    web_port, api_port = free_port(), free_port()
    process = _start_sandbox(
        "--pki-dir",
        str(pki_dir),
        "--web-port",
        str(web_port),
        "--api-port",
        str(api_port),
        "--registration",
        str(registration),
    )
    try:
        assert process.stdout is not None
        banner = [process.stdout.readline() for _ in range(3)]
        assert banner[0].strip() == "ShareMyData sandbox is running."
        assert f"https://127.0.0.1:{web_port}/myAuthorization" in banner[1]
        mutual = ssl.create_default_context(cafile=str(pki.ca_cert))
        mutual.load_cert_chain(str(pki.client_cert), str(pki.client_key))
        with httpx.Client(verify=mutual, timeout=10) as api:
            token = api.post(
                f"https://127.0.0.1:{api_port}/datacustodian/oauth/v2/token",
                auth=(client_id, "s3cret"),
                data={"grant_type": "client_credentials"},
            )
        assert token.status_code == 200
        trust = ssl.create_default_context(cafile=str(pki.ca_cert))
        with httpx.Client(verify=trust, timeout=10) as web:
            calls = web.get(
                f"https://127.0.0.1:{web_port}/admin/calls",
                headers={"Authorization": "Bearer admin-credential"},
            )
        assert calls.json()["by_client"] == {client_id: {"token": 1}}
    finally:
        process.send_signal(signal.SIGTERM)
        output, _ = process.communicate(timeout=20)
    assert process.returncode == 0
    assert "s3cret" not in output and "admin-credential" not in output


def test_a_bad_registration_file_is_a_clear_error(tmp_path: Path) -> None:
    registration = tmp_path / "registration.json"
    registration.write_text(json.dumps({"registrations": [{"client_id": "short"}]}))
    result = subprocess.run(
        [
            SCWADD,
            "sandbox",
            "--pki-dir",
            str(tmp_path / "pki"),
            "--registration",
            str(registration),
        ],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 2
    assert "registration lacks 'client_secret'" in result.stderr


def test_public_host_names_the_sandbox_in_the_urls_it_hands_out(tmp_path: Path) -> None:
    """Bound to every address behind a Kubernetes Service, the sandbox must name itself by the
    Service (the chart passes --public-host): its resourceURIs and BatchLists are checked
    against the client's API host, and 127.0.0.1 is not the sandbox from another pod."""
    web_port, api_port = free_port(), free_port()
    process = _start_sandbox(
        "--pki-dir",
        str(tmp_path / "pki"),
        "--host",
        "0.0.0.0",
        "--public-host",
        "scwadd-sandbox",
        "--web-port",
        str(web_port),
        "--api-port",
        str(api_port),
    )
    try:
        assert process.stdout is not None
        banner = [process.stdout.readline() for _ in range(4)]
    finally:
        process.send_signal(signal.SIGTERM)
        process.communicate(timeout=20)
    assert f"https://scwadd-sandbox:{web_port}/myAuthorization" in banner[1]
    assert f"https://scwadd-sandbox:{api_port}/GreenButtonConnect/espi/1_1/resource" in banner[3]

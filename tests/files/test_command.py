"""`scwadd files` as the process the chart and `make run` start."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import bcrypt
import httpx
import pytest
from scwadd_testing import free_port

SCWADD = str(Path(sys.executable).parent / "scwadd")


def base_env(nats_url: str, port: int) -> dict[str, str]:
    return {
        "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
        "NATS_URL": nats_url,
        "HTTP_HOST": "127.0.0.1",
        "HTTP_PORT": str(port),
        # The console's read model: never a files.db in the working directory.
        "DATABASE_URL": f"sqlite:///{tempfile.mkdtemp(prefix='scwadd-files-')}/files.db",
    }


def test_the_service_runs_serves_audits_and_stops_on_sigterm(
    nats_server: str, tmp_path: Path
) -> None:
    password = "s3cret-operator-pass"
    htpasswd = tmp_path / "htpasswd"
    htpasswd.write_text(f"ops:{bcrypt.hashpw(password.encode(), bcrypt.gensalt(4)).decode()}\n")
    port = free_port()
    env = base_env(nats_server, port) | {"HTPASSWD_FILE": str(htpasswd)}
    process = subprocess.Popen(
        [SCWADD, "files"], env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True
    )
    try:
        url = f"http://127.0.0.1:{port}"
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            assert process.poll() is None, process.communicate()[0]
            try:
                if httpx.get(url + "/readyz", timeout=2).status_code == 200:
                    break
            except httpx.TransportError:
                time.sleep(0.1)
        listing = httpx.get(url + "/output/?format=json", auth=("ops", password), timeout=10)
        assert listing.status_code == 200 and listing.json()["exports"] == []
        missing = httpx.get(url + "/output/x.csv", auth=("ops", password), timeout=10)
        assert missing.status_code == 404
        refused = httpx.get(url + "/output/", auth=("ops", "wrong"), timeout=10)
        assert refused.status_code == 401
        process.send_signal(signal.SIGTERM)
        output, _ = process.communicate(timeout=30)
    finally:
        if process.poll() is None:
            process.kill()
    assert process.returncode == 0, output
    lines = [json.loads(line) for line in output.splitlines() if line.startswith("{")]
    assert lines and all("job_id" in line for line in lines)
    assert any(line["message"] == "failed sign-in" for line in lines)
    assert password not in output and "wrong" not in output


def test_a_sha_entry_stops_the_start_with_instructions(nats_server: str, tmp_path: Path) -> None:
    env = base_env(nats_server, free_port()) | {
        "HTPASSWD": "ops:{SHA}W6ph5Mm5Pz8GgiULbPgzG37mj9g=\n"
    }
    result = subprocess.run([SCWADD, "files"], env=env, capture_output=True, text=True, timeout=60)
    assert result.returncode == 2
    assert "{SHA} (unsalted SHA-1)" in result.stderr
    assert "htpasswd -nbB USER PASSWORD" in result.stderr
    assert "W6ph5Mm5Pz8GgiULbPgzG37mj9g" not in result.stderr


@pytest.mark.parametrize(
    ("drop", "named"),
    [("NATS_URL", "NATS_URL"), ("HTPASSWD", "HTPASSWD_FILE")],
)
def test_missing_settings_are_named(tmp_path: Path, drop: str, named: str) -> None:
    env = base_env("nats://127.0.0.1:1", free_port()) | {"HTPASSWD": "x:y"}
    env.pop(drop)
    result = subprocess.run([SCWADD, "files"], env=env, capture_output=True, text=True, timeout=60)
    assert result.returncode == 2
    assert named in result.stderr and "Traceback" not in result.stderr


def test_hash_password_makes_an_entry_the_service_accepts() -> None:
    result = subprocess.run(
        [SCWADD, "files", "hash-password", "ops", "--password-stdin", "--rounds", "4"],
        input="pässword\n",
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 0, result.stderr
    user, _, hashed = result.stdout.strip().partition(":")
    assert user == "ops" and hashed.startswith("$2b$04$")
    assert bcrypt.checkpw("pässword".encode(), hashed.encode())


def test_the_running_service_deletes_expired_exports(nats_server: str, tmp_path: Path) -> None:
    """The periodic retention task is wired in: with a retention of about a second, an export
    disappears from the store while the service runs."""
    import asyncio

    from scwadd_core.bus import Bus
    from scwadd_core.events import EXPORTS_BUCKET
    from scwadd_core.objects import list_entries

    async def put_export() -> None:
        bus = await Bus.connect(nats_server, name="writer")
        store = await bus.object_store(EXPORTS_BUCKET)
        await store.put("old-2026-01-01-00000000.csv", b"a,b\n")
        await bus.close()

    async def names() -> list[str]:
        bus = await Bus.connect(nats_server, name="reader")
        entries = await list_entries(bus.js, EXPORTS_BUCKET)
        await bus.close()
        return [e.name for e in entries]

    asyncio.run(put_export())
    env = base_env(nats_server, free_port()) | {
        "HTPASSWD": f"ops:{bcrypt.hashpw(b'pw', bcrypt.gensalt(4)).decode()}",
        "EXPORT_RETENTION_DAYS": "0.00001",  # 0.864 s
        "RETENTION_INTERVAL_SECONDS": "0.2",
    }
    process = subprocess.Popen(
        [SCWADD, "files"], env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True
    )
    try:
        deadline = time.monotonic() + 60
        while asyncio.run(names()) and time.monotonic() < deadline:
            assert process.poll() is None
            time.sleep(0.2)
        assert asyncio.run(names()) == []
        process.send_signal(signal.SIGTERM)
        output, _ = process.communicate(timeout=30)
    finally:
        if process.poll() is None:
            process.kill()
    deletions = [
        json.loads(line)
        for line in output.splitlines()
        if line.startswith("{") and "export deleted by retention" in line
    ]
    assert [d["object"] for d in deletions] == ["old-2026-01-01-00000000.csv"]

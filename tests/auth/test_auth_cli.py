"""`scwadd auth` and `scwadd exporter` as an operator starts them: configuration errors name the
variable and exit 2; `migrate` applies the migrations and exits 0."""

from __future__ import annotations

import base64
import os
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest

SCWADD = str(Path(sys.executable).with_name("scwadd"))


def run(*args: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [SCWADD, *args],
        env={"PATH": os.environ.get("PATH", ""), **env},
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


CUSTODIAN = {
    "NATS_URL": "nats://127.0.0.1:1",
    "PGE_CLIENT_ID": "client",
    "PGE_CLIENT_SECRET": "secret",
    "PGE_CLIENT_CERT_FILE": "/nonexistent/cert.pem",
    "PGE_CLIENT_KEY_FILE": "/nonexistent/key.pem",
    "PGE_TOKEN_URL": "https://custodian.test/token",
    "PGE_API_BASE": "https://custodian.test/espi/1_1/resource",
}


@pytest.mark.parametrize("service", ["auth", "exporter"])
def test_a_missing_setting_stops_the_service_naming_it(service):
    result = run(service, env={})
    assert result.returncode == 2
    assert "missing required setting NATS_URL" in result.stderr
    assert "PGE_CLIENT_ID" in result.stderr


def test_a_malformed_sealing_key_stops_auth_without_echoing_it():
    env = {
        **CUSTODIAN,
        "PGE_AUTHORIZE_URL": "https://custodian.test/authorize",
        "PUBLIC_BASE_URL": "https://scwadd.test",
        "TOKEN_SEALING_KEYS": "k1:c2hvcnQ=",  # 5 bytes, not 32
    }
    result = run("auth", "migrate", env=env)
    assert result.returncode == 2
    assert "TOKEN_SEALING_KEYS" in result.stderr
    assert "c2hvcnQ=" not in result.stderr


@pytest.mark.parametrize("service", ["auth", "exporter"])
def test_migrate_creates_the_tables_and_exits(service, tmp_path):
    database = tmp_path / f"{service}.db"
    env = {
        **CUSTODIAN,
        "DATABASE_URL": f"sqlite:///{database}",
        "PGE_AUTHORIZE_URL": "https://custodian.test/authorize",
        "PUBLIC_BASE_URL": "https://scwadd.test",
        "TOKEN_SEALING_KEYS": "k1:" + base64.b64encode(os.urandom(32)).decode(),
    }
    for _ in range(2):  # idempotent
        result = run(service, "migrate", env=env)
        assert result.returncode == 0, result.stderr
    with sqlite3.connect(database) as connection:
        tables = {row[0] for row in connection.execute("SELECT name FROM sqlite_master")}
    assert f"alembic_version_scwadd_{service}" in tables
    assert any(name.startswith(f"{service}_") for name in tables)

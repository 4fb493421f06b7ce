from __future__ import annotations

import subprocess
import sys

import pytest
from scwadd_core.settings import (
    CustodianSettings,
    DatabaseSettings,
    SealingSettings,
    SettingsError,
    read_settings,
)


class ExampleSettings(CustodianSettings, DatabaseSettings, SealingSettings):
    DATABASE_URL: str = "sqlite:///./example.db"
    HTTP_PORT: int = 8099


def test_a_complete_environment_loads(monkeypatch: pytest.MonkeyPatch) -> None:
    for name, value in {
        "NATS_URL": "nats://127.0.0.1:4222",
        "PGE_CLIENT_ID": "id",
        "PGE_CLIENT_SECRET": "shh",
        "PGE_CLIENT_CERT_FILE": "/c.pem",
        "PGE_CLIENT_KEY_FILE": "/k.pem",
        "PGE_TOKEN_URL": "https://sandbox/token",
        "TOKEN_SEALING_KEYS": "k:AAAA",
        "HTTP_PORT": "9000",
    }.items():
        monkeypatch.setenv(name, value)
    settings = read_settings(ExampleSettings)
    assert settings.HTTP_PORT == 9000
    assert settings.DATABASE_URL == "sqlite:///./example.db"
    assert settings.PGE_CLIENT_SECRET.get_secret_value() == "shh"
    assert "shh" not in repr(settings)
    assert not settings.tls_enabled()


def test_missing_settings_are_named(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("NATS_URL", raising=False)
    monkeypatch.delenv("PGE_CLIENT_ID", raising=False)
    with pytest.raises(SettingsError) as caught:
        read_settings(ExampleSettings)
    message = str(caught.value)
    assert "missing required setting NATS_URL" in message
    assert "missing required setting PGE_CLIENT_ID" in message


def test_an_invalid_value_is_named_but_not_echoed(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("NATS_URL", "nats://x")
    monkeypatch.setenv("HTTP_PORT", "not-a-port-secretish")
    with pytest.raises(SettingsError) as caught:
        read_settings(DatabaseSettings)
    assert "invalid setting HTTP_PORT" in str(caught.value)
    assert "secretish" not in str(caught.value)


def test_load_settings_exits_2_with_the_variable_named() -> None:
    code = (
        "from scwadd_core.settings import ServiceSettings, load_settings\n"
        "load_settings(ServiceSettings)\n"
    )
    env = {"PATH": "/usr/bin:/bin"}
    result = subprocess.run(
        [sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 2
    assert "missing required setting NATS_URL" in result.stderr
    assert "Traceback" not in result.stderr


def test_the_default_stream_limits_fit_the_charts_jetstream_store() -> None:
    """JetStream reserves every stream's max_bytes: defaults that add up to more than the chart's
    nats.jetstream.maxFileStore make the services' first start fail with "insufficient storage
    resources available" (seen running the chart's pod with the images)."""
    import re
    from pathlib import Path

    from scwadd_core.settings import ServiceSettings

    values = (Path(__file__).parents[2] / "helm" / "scwadd" / "values.yaml").read_text()
    size = re.search(r"^\s+maxFileStore: (\d+)G$", values, re.MULTILINE)
    assert size is not None
    store = int(size.group(1)) * 1024**3
    settings = ServiceSettings(NATS_URL="nats://127.0.0.1:4222")
    reserved = sum(
        getattr(settings, name)
        for name in (
            "NATS_EVENTS_MAX_BYTES",
            "NATS_DLQ_MAX_BYTES",
            "NATS_RAW_MAX_BYTES",
            "NATS_EXPORTS_MAX_BYTES",
            "NATS_KV_MAX_BYTES",
        )
    )
    assert reserved < store

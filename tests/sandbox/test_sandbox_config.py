"""Registrations from JSON or TOML files, and clear errors for files the sandbox cannot use."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import pytest
from scwadd_core import devpki
from scwadd_sandbox.cli import config_from_args, register
from scwadd_sandbox.config import ConfigError, OverLimit, RateLimits, load_registrations


def test_toml_and_json_registrations(pki: devpki.DevPki, tmp_path: Path) -> None:
    toml = tmp_path / "registration.toml"
    toml.write_text(
        f"""
[[registrations]]
client_id = "{"a" * 32}"
client_secret = "one"
redirect_uris = ["http://127.0.0.1:8080/OAuthCallback"]
notification_uri = "https://127.0.0.1:8081/espi/notify"
client_cert = "{pki.client_cert}"
"""
    )
    [registration] = load_registrations(toml)
    assert registration.client_id == "a" * 32
    assert registration.cert_fingerprints == {
        devpki.certificate_fingerprint(pki.client_cert.read_bytes())
    }
    assert "one" not in repr(registration)
    single = tmp_path / "single.json"
    single.write_text(
        json.dumps(
            {
                "client_id": "b" * 32,
                "client_secret": "x",
                "redirect_uri": "http://h/cb",
                "notification_uri": "https://h/n",
                "client_cert": str(pki.client_cert),
            }
        )
    )
    assert load_registrations(single)[0].redirect_uris == ("http://h/cb",)


@pytest.mark.parametrize(
    ("content", "message"),
    [
        ("{not json", "does not parse"),
        ('{"registrations": []}', "holds no registration"),
        (
            '{"client_id": "short", "client_secret": "x", "notification_uri": "n",'
            ' "redirect_uris": ["r"], "client_cert": "c.pem"}',
            "must be 32 characters",
        ),
        (
            '{"client_id": "%s", "client_secret": "x", "notification_uri": "n",'
            ' "redirect_uris": ["r"], "client_cert": "missing.pem"}' % ("c" * 32),
            "cannot be read",
        ),
    ],
)
def test_bad_registration_files_say_what_is_wrong(
    tmp_path: Path, content: str, message: str
) -> None:
    path = tmp_path / "registration.json"
    path.write_text(content)
    with pytest.raises(ConfigError, match=message):
        load_registrations(path)


def _args(*argv: str) -> argparse.Namespace:
    parser = argparse.ArgumentParser()
    register(parser.add_subparsers())
    return parser.parse_args(["sandbox", *argv])


def test_flags_build_the_configuration(
    pki: devpki.DevPki, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("SANDBOX_ADMIN_TOKEN", raising=False)
    monkeypatch.delenv("SANDBOX_CLIENT_SECRET", raising=False)
    faults = tmp_path / "faults.json"
    faults.write_text('{"seed": 3, "endpoints": {"*": {"error_503_rate": 0.5}}}')
    config, notes = config_from_args(
        _args(
            "--client-secret",
            "given",
            "--admin-token",
            "admin",
            "--no-rate-limit",
            "--faults",
            f"@{faults}",
            "--api-port",
            "9555",
            "--max-range-days",
            "31",
        ),
        pki,
    )
    assert notes == []  # nothing generated, nothing printed
    assert config.registrations[0].redirect_uris == ("http://127.0.0.1:8080/OAuthCallback",)
    assert config.registrations[0].notification_uri == "https://127.0.0.1:8081/espi/notify"
    assert config.rate_limits.per_second > 1000
    assert config.faults.seed == 3 and config.faults.endpoints["*"].error_503_rate == 0.5
    assert config.token_url == "https://127.0.0.1:9555/datacustodian/oauth/v2/token"
    assert config.max_range_seconds == 31 * 86400
    default, generated = config_from_args(_args(), pki)
    assert default.rate_limits == RateLimits()
    assert len(generated) == 2  # the generated secret and admin token are printed once
    with pytest.raises(ConfigError, match="--faults"):
        config_from_args(_args("--faults", '{"endpoints": {"*": {"bogus": 1}}}'), pki)


def test_pge_behaviour_flags(pki: devpki.DevPki, tmp_path: Path) -> None:
    default, _ = config_from_args(_args(), pki)
    assert default.over_limit is OverLimit.STRICT
    assert default.notification_delay == (10.0, 40.0)
    assert default.state_file is None
    config, _ = config_from_args(
        _args(
            "--over-limit",
            "unavailable",
            "--notification-delay",
            "2-5",
            "--state-file",
            str(tmp_path / "state.sqlite3"),
        ),
        pki,
    )
    assert config.over_limit is OverLimit.UNAVAILABLE
    assert config.notification_delay == (2.0, 5.0)
    assert config.state_file == tmp_path / "state.sqlite3"
    fixed, _ = config_from_args(_args("--notification-delay", "15"), pki)
    assert fixed.notification_delay == (15.0, 15.0)
    for bad in ("5-2", "x", "-1", "4000"):
        with pytest.raises(SystemExit):
            _args("--notification-delay", bad)
    with pytest.raises(SystemExit):
        _args("--over-limit", "polite")


def test_a_registration_keeps_one_bulk_id(pki: devpki.DevPki, tmp_path: Path) -> None:
    path = tmp_path / "registration.json"
    base = {
        "client_id": "c" * 32,
        "client_secret": "s",
        "redirect_uris": ["http://127.0.0.1:1/cb"],
        "notification_uri": "https://127.0.0.1:2/espi/notify",
        "client_cert": str(pki.client_cert),
    }
    path.write_text(json.dumps({"registrations": [base]}))
    [derived] = load_registrations(path)
    [again] = load_registrations(path)
    assert derived.bulk_id.isdigit() and derived.bulk_id == again.bulk_id
    path.write_text(json.dumps({"registrations": [{**base, "bulk_id": 50916}]}))
    assert load_registrations(path)[0].bulk_id == "50916"
    path.write_text(json.dumps({"registrations": [{**base, "bulk_id": "fifty"}]}))
    with pytest.raises(ConfigError, match="bulk_id"):
        load_registrations(path)

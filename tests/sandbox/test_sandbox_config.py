"""Registrations from JSON or TOML files, and clear errors for files the sandbox cannot use."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from scwadd_core import devpki
from scwadd_sandbox.config import ConfigError, load_registrations


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

"""The API face over real mutual TLS: who gets in, who is refused, and how."""

from __future__ import annotations

import ssl
from pathlib import Path

import httpx
import pytest
from sandbox_helpers import client_token
from scwadd_core import devpki
from scwadd_sandbox.config import registration_from_mapping
from scwadd_sandbox.testing import RunningSandbox, start_sandbox
from scwadd_sandbox.tls import server_context


def _context(
    pki: devpki.DevPki, cert: Path | None = None, key: Path | None = None
) -> ssl.SSLContext:
    context = ssl.create_default_context(cafile=str(pki.ca_cert))
    if cert is not None and key is not None:
        context.load_cert_chain(str(cert), str(key))
    return context


def _token_request(sandbox: RunningSandbox, context: ssl.SSLContext) -> httpx.Response:
    with httpx.Client(verify=context, timeout=10) as client:
        return client.post(
            sandbox.token_url, auth=sandbox.basic_auth, data={"grant_type": "client_credentials"}
        )


def test_registered_certificate_is_accepted(sandbox: RunningSandbox) -> None:
    context = _context(sandbox.pki, sandbox.pki.client_cert, sandbox.pki.client_key)
    response = _token_request(sandbox, context)
    assert response.status_code == 200
    assert "client_access_token" in response.json()


def test_no_certificate_fails_the_handshake(sandbox: RunningSandbox) -> None:
    with pytest.raises((httpx.ConnectError, httpx.ReadError, httpx.RemoteProtocolError)):
        _token_request(sandbox, _context(sandbox.pki))


def test_certificate_from_an_untrusted_ca_fails_the_handshake(sandbox: RunningSandbox) -> None:
    pki = sandbox.pki
    context = _context(pki, pki.rogue_client_cert, pki.rogue_client_key)
    with pytest.raises((httpx.ConnectError, httpx.ReadError, httpx.RemoteProtocolError)):
        _token_request(sandbox, context)


def test_a_trusted_but_unregistered_certificate_gets_invalid_certificate(
    sandbox: RunningSandbox,
) -> None:
    pki = sandbox.pki
    response = _token_request(sandbox, _context(pki, pki.other_client_cert, pki.other_client_key))
    assert response.status_code == 400
    assert response.text == "Invalid Certificate"


def test_another_clients_certificate_cannot_act_for_this_client(pki_dir: Path) -> None:
    pki = devpki.ensure_dev_pki(pki_dir)
    other = registration_from_mapping(
        {
            "client_id": "0" * 32,
            "client_secret": "other-secret",
            "redirect_uris": ["http://127.0.0.1:9/cb"],
            "notification_uri": "https://127.0.0.1:9/notify",
            "client_cert": str(pki.other_client_cert),
        }
    )
    with start_sandbox(pki_dir, extra_registrations=(other,)) as sandbox:
        # The other client's own certificate works for the other client...
        with sandbox.api_client(cert=(pki.other_client_cert, pki.other_client_key)) as client:
            own = client.post(
                sandbox.token_url,
                auth=("0" * 32, "other-secret"),
                data={"grant_type": "client_credentials"},
            )
            assert own.status_code == 200
            other_token = {"Authorization": f"Bearer {own.json()['client_access_token']}"}
            # ...but not for ours, on the token endpoint or with our token on the API.
            theirs = client.post(
                sandbox.token_url,
                auth=sandbox.basic_auth,
                data={"grant_type": "client_credentials"},
            )
            assert (theirs.status_code, theirs.text) == (400, "Invalid Certificate")
            with sandbox.api_client() as ours:
                token = client_token(sandbox, ours)
            status = client.get(f"{sandbox.espi_base}/ReadServiceStatus", headers=token)
            assert (status.status_code, status.text) == (400, "Invalid Certificate")
        # And our certificate cannot use the other client's token.
        with sandbox.api_client() as ours:
            crossed = ours.get(f"{sandbox.espi_base}/ReadServiceStatus", headers=other_token)
            assert crossed.status_code == 400


@pytest.mark.filterwarnings("ignore:ssl.TLSVersion.TLSv1")
def test_tls_below_1_2_is_refused(sandbox: RunningSandbox) -> None:
    pki = sandbox.pki
    # The client's own OpenSSL may refuse old versions too, so the server setting is checked
    # directly as well as over the wire.
    for require in (True, False):
        server = server_context(
            pki.server_cert, pki.server_key, client_ca=pki.ca_cert, require_client_cert=require
        )
        assert server.minimum_version == ssl.TLSVersion.TLSv1_2
    exactly_12 = _context(pki, pki.client_cert, pki.client_key)
    exactly_12.maximum_version = ssl.TLSVersion.TLSv1_2
    assert _token_request(sandbox, exactly_12).status_code == 200
    old = _context(pki, pki.client_cert, pki.client_key)
    old.minimum_version = ssl.TLSVersion.TLSv1
    old.maximum_version = ssl.TLSVersion.TLSv1_1
    with pytest.raises((httpx.ConnectError, ssl.SSLError)):
        _token_request(sandbox, old)


def test_optional_handshake_mode_answers_pges_invalid_certificate(pki_dir: Path) -> None:
    with start_sandbox(pki_dir, require_cert_in_handshake=False) as sandbox:
        response = _token_request(sandbox, _context(sandbox.pki))
        assert (response.status_code, response.text) == (400, "Invalid Certificate")
        pki = sandbox.pki
        # A certificate from an untrusted CA still fails the handshake.
        with pytest.raises((httpx.ConnectError, httpx.ReadError, httpx.RemoteProtocolError)):
            _token_request(sandbox, _context(pki, pki.rogue_client_cert, pki.rogue_client_key))


def test_browser_face_needs_no_client_certificate(sandbox: RunningSandbox) -> None:
    with sandbox.web_client() as web:
        assert web.get("/healthz").json() == {"status": "ok"}

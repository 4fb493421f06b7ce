"""The development PKI: generated, reused while valid, regenerated when not, and usable for mTLS."""

from __future__ import annotations

import ssl
import stat
from pathlib import Path

from cryptography import x509
from scwadd_core import devpki


def test_generates_every_file_with_private_keys_unreadable_by_others(tmp_path: Path) -> None:
    pki = devpki.ensure_dev_pki(tmp_path / "pki")
    for path in (pki.ca_cert, pki.server_cert, pki.client_cert, pki.rogue_client_cert):
        assert path.read_bytes().startswith(b"-----BEGIN CERTIFICATE-----")
    for key in (pki.server_key, pki.client_key, pki.other_client_key, pki.rogue_client_key):
        assert stat.S_IMODE(key.stat().st_mode) == 0o600


def test_reuses_valid_material_and_replaces_damaged_material(tmp_path: Path) -> None:
    first = devpki.ensure_dev_pki(tmp_path)
    ca_before = first.ca_cert.read_bytes()
    again = devpki.ensure_dev_pki(tmp_path)
    assert again == first
    assert again.ca_cert.read_bytes() == ca_before

    first.client_key.write_bytes(b"not a key")
    devpki.ensure_dev_pki(tmp_path)
    assert first.ca_cert.read_bytes() != ca_before
    ssl.create_default_context().load_cert_chain(*first.client_pair)


def test_valid_material_is_used_without_writing_to_its_directory(tmp_path: Path) -> None:
    """The chart mounts sandbox.configSecret read-only: valid material there must be usable."""
    pki = devpki.ensure_dev_pki(tmp_path)
    (tmp_path / ".lock").unlink()
    before = {p.name: p.stat().st_mtime_ns for p in tmp_path.iterdir()}
    assert devpki.ensure_dev_pki(tmp_path) == pki
    assert {p.name: p.stat().st_mtime_ns for p in tmp_path.iterdir()} == before


def test_regenerates_when_a_requested_host_is_not_covered(tmp_path: Path) -> None:
    devpki.ensure_dev_pki(tmp_path)
    before = (tmp_path / devpki.SERVER_CERT).read_bytes()
    devpki.ensure_dev_pki(tmp_path, hosts=("localhost", "127.0.0.1", "sandbox.internal"))
    server = x509.load_pem_x509_certificate((tmp_path / devpki.SERVER_CERT).read_bytes())
    san = server.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert "sandbox.internal" in san.get_values_for_type(x509.DNSName)
    assert server.public_bytes(devpki.serialization.Encoding.PEM) != before


def test_chains_client_and_server_to_the_dev_ca_but_not_the_rogue(tmp_path: Path) -> None:
    pki = devpki.ensure_dev_pki(tmp_path)
    ca = x509.load_pem_x509_certificate(pki.ca_cert.read_bytes())
    rogue = x509.load_pem_x509_certificate(pki.rogue_client_cert.read_bytes())
    client = x509.load_pem_x509_certificate(pki.client_cert.read_bytes())
    assert client.issuer == ca.subject
    assert rogue.issuer != ca.subject
    assert devpki.certificate_fingerprint(pki.client_cert.read_bytes()) != (
        devpki.certificate_fingerprint(pki.other_client_cert.read_bytes())
    )


def test_in_memory_material_differs_per_call() -> None:
    one, two = devpki.generate(), devpki.generate()
    assert one.ca_cert != two.ca_cert
    assert devpki.certificate_fingerprint(one.client.cert) != devpki.certificate_fingerprint(
        two.client.cert
    )

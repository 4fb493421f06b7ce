"""Development TLS material: a CA, a server certificate, client certificates.

The sandbox custodian, the services under ``make run`` and the test suites all need the same
three things PG&E's real deployment has: a server certificate the client can verify, and a client
certificate the API host can demand (mutual TLS). Nothing here is committed to the repository:
the material is generated on first use into a directory (``.run/pki`` for ``make run``, a
temporary directory in tests) and reused while it stays valid.

Besides the trusted set, two certificates exist to test refusals:

* ``other_client``: issued by the trusted CA but not the one registered for the default client,
  so "a valid certificate of another client" can be presented;
* ``rogue_client``: issued by a second CA nobody trusts.

Keys are RSA 2048 and signatures SHA-256, the minimum PG&E asks of a third party's certificate.
"""

from __future__ import annotations

import datetime as dt
import fcntl
import hashlib
import ipaddress
import os
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding, rsa
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

DEFAULT_HOSTS: tuple[str, ...] = ("localhost", "127.0.0.1", "::1")
# Certificates expiring sooner than this are regenerated, so a long test run never races expiry.
_RENEW_BEFORE = dt.timedelta(days=7)
_VALIDITY = dt.timedelta(days=825)
_KEY_SIZE = 2048

# File names inside the PKI directory; stable because `make run` and docs point at them.
CA_CERT = "ca.pem"
CA_KEY = "ca-key.pem"
SERVER_CERT = "server.pem"
SERVER_KEY = "server-key.pem"
CLIENT_CERT = "client.pem"
CLIENT_KEY = "client-key.pem"
OTHER_CLIENT_CERT = "other-client.pem"
OTHER_CLIENT_KEY = "other-client-key.pem"
ROGUE_CA_CERT = "rogue-ca.pem"
ROGUE_CA_KEY = "rogue-ca-key.pem"
ROGUE_CLIENT_CERT = "rogue-client.pem"
ROGUE_CLIENT_KEY = "rogue-client-key.pem"


@dataclass(frozen=True)
class DevPki:
    """Paths of the PEM files of one development PKI."""

    directory: Path
    ca_cert: Path
    server_cert: Path
    server_key: Path
    client_cert: Path
    client_key: Path
    other_client_cert: Path
    other_client_key: Path
    rogue_ca_cert: Path
    rogue_client_cert: Path
    rogue_client_key: Path

    @property
    def client_pair(self) -> tuple[str, str]:
        """The (cert, key) tuple httpx and ssl accept for the registered client certificate."""
        return (str(self.client_cert), str(self.client_key))

    @property
    def server_pair(self) -> tuple[str, str]:
        return (str(self.server_cert), str(self.server_key))


@dataclass(frozen=True)
class PemPair:
    """A certificate and its private key, PEM encoded."""

    cert: bytes
    key: bytes


@dataclass(frozen=True)
class DevPkiMaterial:
    """The same material as :class:`DevPki`, held in memory (PEM bytes)."""

    ca_cert: bytes
    server: PemPair
    client: PemPair
    other_client: PemPair
    rogue_ca_cert: bytes
    rogue_client: PemPair
    # Kept so the on-disk form can be re-validated and extended; never needed by a client.
    ca_key: bytes
    rogue_ca_key: bytes


def certificate_fingerprint(pem_or_der: bytes) -> str:
    """SHA-256 of the DER form, lowercase hex: how a registration names its client certificate."""
    if pem_or_der.lstrip().startswith(b"-----BEGIN"):
        der = x509.load_pem_x509_certificate(pem_or_der).public_bytes(serialization.Encoding.DER)
    else:
        der = pem_or_der
    return hashlib.sha256(der).hexdigest()


def generate(hosts: Sequence[str] = DEFAULT_HOSTS) -> DevPkiMaterial:
    """Fresh material in memory; nothing touches the disk."""
    now = _now()
    ca_key = _new_key()
    ca_cert = _ca_certificate(ca_key, "SCWADD development CA", now)
    rogue_ca_key = _new_key()
    rogue_ca_cert = _ca_certificate(rogue_ca_key, "Untrusted rogue CA", now)
    server = _leaf(ca_cert, ca_key, "localhost", now, server_hosts=hosts)
    client = _leaf(ca_cert, ca_key, "SCWADD third party", now)
    other = _leaf(ca_cert, ca_key, "Another third party", now)
    rogue = _leaf(rogue_ca_cert, rogue_ca_key, "SCWADD third party", now)
    return DevPkiMaterial(
        ca_cert=_cert_pem(ca_cert),
        server=server,
        client=client,
        other_client=other,
        rogue_ca_cert=_cert_pem(rogue_ca_cert),
        rogue_client=rogue,
        ca_key=_key_pem(ca_key),
        rogue_ca_key=_key_pem(rogue_ca_key),
    )


def ensure_dev_pki(
    directory: str | os.PathLike[str], hosts: Sequence[str] = DEFAULT_HOSTS
) -> DevPki:
    """Return the PKI in ``directory``, generating it when absent, incomplete or no longer valid.

    Safe to call from several processes at once (an exclusive file lock serialises them), and
    idempotent: valid material is reused as is, so certificates already handed to a running
    service stay the ones on disk.
    """
    root = Path(directory)
    root.mkdir(parents=True, exist_ok=True)
    pki = _paths(root)
    # Valid material is used without the lock, so a read-only directory (the chart mounts
    # sandbox.configSecret read-only) works; the lock only guards writing new material.
    if _is_valid(root, hosts):
        return pki
    with _locked(root / ".lock"):
        if not _is_valid(root, hosts):
            _write(root, generate(hosts))
    return pki


def _paths(root: Path) -> DevPki:
    return DevPki(
        directory=root,
        ca_cert=root / CA_CERT,
        server_cert=root / SERVER_CERT,
        server_key=root / SERVER_KEY,
        client_cert=root / CLIENT_CERT,
        client_key=root / CLIENT_KEY,
        other_client_cert=root / OTHER_CLIENT_CERT,
        other_client_key=root / OTHER_CLIENT_KEY,
        rogue_ca_cert=root / ROGUE_CA_CERT,
        rogue_client_cert=root / ROGUE_CLIENT_CERT,
        rogue_client_key=root / ROGUE_CLIENT_KEY,
    )


@contextmanager
def _locked(lock_path: Path) -> Iterator[None]:
    with open(lock_path, "a") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def _write(root: Path, material: DevPkiMaterial) -> None:
    files: list[tuple[str, bytes, bool]] = [
        (CA_CERT, material.ca_cert, False),
        (CA_KEY, material.ca_key, True),
        (SERVER_CERT, material.server.cert, False),
        (SERVER_KEY, material.server.key, True),
        (CLIENT_CERT, material.client.cert, False),
        (CLIENT_KEY, material.client.key, True),
        (OTHER_CLIENT_CERT, material.other_client.cert, False),
        (OTHER_CLIENT_KEY, material.other_client.key, True),
        (ROGUE_CA_CERT, material.rogue_ca_cert, False),
        (ROGUE_CA_KEY, material.rogue_ca_key, True),
        (ROGUE_CLIENT_CERT, material.rogue_client.cert, False),
        (ROGUE_CLIENT_KEY, material.rogue_client.key, True),
    ]
    for name, data, secret in files:
        target = root / name
        temporary = root / f".{name}.tmp"
        # Private keys are created 0600 from the start, never chmod-ed after being readable.
        fd = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600 if secret else 0o644)
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
        os.replace(temporary, target)


def _is_valid(root: Path, hosts: Sequence[str]) -> bool:
    """Every file exists, parses, chains to its CA, matches its key and is not expiring."""
    try:
        ca = _load_cert(root / CA_CERT)
        rogue_ca = _load_cert(root / ROGUE_CA_CERT)
        for cert_name, key_name, issuer in (
            (SERVER_CERT, SERVER_KEY, ca),
            (CLIENT_CERT, CLIENT_KEY, ca),
            (OTHER_CLIENT_CERT, OTHER_CLIENT_KEY, ca),
            (ROGUE_CLIENT_CERT, ROGUE_CLIENT_KEY, rogue_ca),
            (CA_CERT, CA_KEY, ca),
            (ROGUE_CA_CERT, ROGUE_CA_KEY, rogue_ca),
        ):
            cert = _load_cert(root / cert_name)
            # Skipping the RSA consistency check is safe: the key must match its certificate
            # below, and it saves about 0.1 s per key on every start.
            key = serialization.load_pem_private_key(
                (root / key_name).read_bytes(), None, unsafe_skip_rsa_key_validation=True
            )
            if not isinstance(key, rsa.RSAPrivateKey):
                return False
            if key.public_key().public_numbers() != _rsa_public(cert).public_numbers():
                return False
            if not _signed_by(cert, issuer) or _expiring(cert):
                return False
        server = _load_cert(root / SERVER_CERT)
        return _covers(server, hosts)
    except (OSError, ValueError, TypeError, InvalidSignature, x509.ExtensionNotFound):
        return False


def _load_cert(path: Path) -> x509.Certificate:
    return x509.load_pem_x509_certificate(path.read_bytes())


def _rsa_public(cert: x509.Certificate) -> rsa.RSAPublicKey:
    public = cert.public_key()
    if not isinstance(public, rsa.RSAPublicKey):
        raise TypeError("not an RSA certificate")
    return public


def _signed_by(cert: x509.Certificate, issuer: x509.Certificate) -> bool:
    if cert.issuer != issuer.subject or cert.signature_hash_algorithm is None:
        return False
    try:
        _rsa_public(issuer).verify(
            cert.signature,
            cert.tbs_certificate_bytes,
            padding.PKCS1v15(),
            cert.signature_hash_algorithm,
        )
    except InvalidSignature:
        return False
    return True


def _expiring(cert: x509.Certificate) -> bool:
    return cert.not_valid_after_utc - _RENEW_BEFORE < _now()


def _covers(cert: x509.Certificate, hosts: Sequence[str]) -> bool:
    san = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    names = set(san.get_values_for_type(x509.DNSName))
    addresses = {str(address) for address in san.get_values_for_type(x509.IPAddress)}
    for host in hosts:
        try:
            if str(ipaddress.ip_address(host)) not in addresses:
                return False
        except ValueError:
            if host not in names:
                return False
    return True


def _now() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


def _new_key() -> rsa.RSAPrivateKey:
    return rsa.generate_private_key(public_exponent=65537, key_size=_KEY_SIZE)


def _name(common_name: str) -> x509.Name:
    return x509.Name(
        [
            x509.NameAttribute(NameOID.ORGANIZATION_NAME, "SCWADD development"),
            x509.NameAttribute(NameOID.COMMON_NAME, common_name),
        ]
    )


def _ca_certificate(key: rsa.RSAPrivateKey, common_name: str, now: dt.datetime) -> x509.Certificate:
    name = _name(common_name)
    public = key.public_key()
    return (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(public)
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(hours=1))
        .not_valid_after(now + _VALIDITY)
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=True,
                content_commitment=False,
                key_encipherment=False,
                data_encipherment=False,
                key_agreement=False,
                key_cert_sign=True,
                crl_sign=True,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(public), critical=False)
        .sign(key, hashes.SHA256())
    )


def _leaf(
    issuer: x509.Certificate,
    issuer_key: rsa.RSAPrivateKey,
    common_name: str,
    now: dt.datetime,
    server_hosts: Sequence[str] | None = None,
) -> PemPair:
    key = _new_key()
    public = key.public_key()
    usage = ExtendedKeyUsageOID.SERVER_AUTH if server_hosts else ExtendedKeyUsageOID.CLIENT_AUTH
    builder = (
        x509.CertificateBuilder()
        .subject_name(_name(common_name))
        .issuer_name(issuer.subject)
        .public_key(public)
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(hours=1))
        .not_valid_after(now + _VALIDITY)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=True,
                content_commitment=False,
                key_encipherment=True,
                data_encipherment=False,
                key_agreement=False,
                key_cert_sign=False,
                crl_sign=False,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
        .add_extension(x509.ExtendedKeyUsage([usage]), critical=False)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(public), critical=False)
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(_rsa_public(issuer)),
            critical=False,
        )
    )
    if server_hosts:
        builder = builder.add_extension(
            x509.SubjectAlternativeName([_general_name(host) for host in server_hosts]),
            critical=False,
        )
    return PemPair(cert=_cert_pem(builder.sign(issuer_key, hashes.SHA256())), key=_key_pem(key))


def _general_name(host: str) -> x509.GeneralName:
    try:
        return x509.IPAddress(ipaddress.ip_address(host))
    except ValueError:
        return x509.DNSName(host)


def _cert_pem(cert: x509.Certificate) -> bytes:
    return cert.public_bytes(serialization.Encoding.PEM)


def _key_pem(key: rsa.RSAPrivateKey) -> bytes:
    return key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )

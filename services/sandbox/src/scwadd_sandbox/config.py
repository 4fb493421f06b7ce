"""What a sandbox instance is configured with: registrations, limits, lifetimes, data, faults."""

from __future__ import annotations

import enum
import hashlib
import json
import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from scwadd_core import devpki

from scwadd_sandbox.faults import FaultConfig

ESPI_ROOT = "/GreenButtonConnect/espi/1_1/resource"
TOKEN_PATH = "/datacustodian/oauth/v2/token"  # noqa: S105 - a URL path
# PG&E's test environment's token path: the same endpoint here.
TEST_TOKEN_PATH = "/datacustodian/test/oauth/v2/token"  # noqa: S105 - a URL path
AUTHORIZE_PATH = "/myAuthorization"

# The default registration: what `make run` wires its services to (see docs/architecture.md).
DEFAULT_CLIENT_ID = "5c3a1d0e9b7f4a26a8e1d2c3b4a59687"
DEFAULT_REDIRECT_URI = "http://127.0.0.1:8080/OAuthCallback"
DEFAULT_NOTIFICATION_URI = "https://127.0.0.1:8081/espi/notify"


class ConfigError(ValueError):
    """A registration file or flag the sandbox cannot use; the message says which and why."""


@dataclass(frozen=True)
class Registration:
    """A third party registered with the custodian, as PG&E's portal records it."""

    client_id: str
    client_secret: str
    redirect_uris: tuple[str, ...]
    notification_uri: str
    # SHA-256 fingerprints (hex) of the client certificates this client may present.
    cert_fingerprints: frozenset[str]
    # PG&E gives each third party one fixed Bulk id (``Batch/Bulk/50916``), the same in every
    # notification; derived from the client id unless the registration names one.
    bulk_id: str = ""
    # The third party's own Authorization (client_credentials), whose resourceURI is its Bulk.
    client_authorization_id: str = ""

    def __post_init__(self) -> None:
        digest = hashlib.sha256(self.client_id.encode()).digest()
        if not self.bulk_id:
            object.__setattr__(self, "bulk_id", str(int.from_bytes(digest[:4]) % 90000 + 10000))
        if not self.client_authorization_id:
            number = int.from_bytes(digest[4:8]) % 9000000 + 1000000
            object.__setattr__(self, "client_authorization_id", str(number))

    def __repr__(self) -> str:
        return f"Registration(client_id={self.client_id!r}, redirect_uris={self.redirect_uris!r})"

    def public_view(self) -> dict[str, Any]:
        """Everything but the secret, for the admin API and start-up banner."""
        return {
            "client_id": self.client_id,
            "redirect_uris": list(self.redirect_uris),
            "notification_uri": self.notification_uri,
            "cert_fingerprints": sorted(self.cert_fingerprints),
            "bulk_id": self.bulk_id,
            "client_authorization_id": self.client_authorization_id,
        }


def registration_from_mapping(raw: dict[str, Any], base_dir: Path | None = None) -> Registration:
    """Build a registration from file/flag values; ``client_cert`` is a PEM path (or a list)."""
    try:
        client_id = str(raw["client_id"])
        client_secret = str(raw["client_secret"])
        notification_uri = str(raw["notification_uri"])
        redirects = raw.get("redirect_uris", raw.get("redirect_uri"))
        certs = raw.get("client_certs", raw.get("client_cert"))
    except KeyError as missing:
        raise ConfigError(f"registration lacks {missing.args[0]!r}") from None
    if isinstance(redirects, str):
        redirects = [redirects]
    if not redirects:
        raise ConfigError(f"registration {client_id!r} has no redirect_uris")
    if isinstance(certs, str):
        certs = [certs]
    if not certs:
        raise ConfigError(f"registration {client_id!r} has no client_cert")
    if len(client_id) != 32:
        raise ConfigError(f"client_id {client_id!r} must be 32 characters, as PG&E issues them")
    fingerprints = set()
    for cert in certs:
        path = Path(cert)
        if base_dir is not None and not path.is_absolute():
            path = base_dir / path
        try:
            fingerprints.add(devpki.certificate_fingerprint(path.read_bytes()))
        except (OSError, ValueError) as exc:
            raise ConfigError(f"client certificate {path} cannot be read: {exc}") from None
    return Registration(
        client_id=client_id,
        client_secret=client_secret,
        redirect_uris=tuple(str(uri) for uri in redirects),
        notification_uri=notification_uri,
        cert_fingerprints=frozenset(fingerprints),
        bulk_id=_bulk_id(raw.get("bulk_id"), client_id),
    )


def _bulk_id(value: Any, client_id: str) -> str:
    if value is None:
        return ""
    text = str(value)
    if not text.isdigit() or len(text) > 12:
        raise ConfigError(f"registration {client_id!r}: bulk_id must be a decimal number")
    return text


def load_registrations(path: Path) -> list[Registration]:
    """Read ``{"registrations": [...]}`` (or a single registration) from JSON or TOML."""
    try:
        text = path.read_text()
    except OSError as exc:
        raise ConfigError(f"registration file {path} cannot be read: {exc}") from None
    try:
        raw: Any = tomllib.loads(text) if path.suffix == ".toml" else json.loads(text)
    except (ValueError, tomllib.TOMLDecodeError) as exc:
        raise ConfigError(f"registration file {path} does not parse: {exc}") from None
    items = raw.get("registrations", [raw]) if isinstance(raw, dict) else raw
    if not isinstance(items, list) or not items:
        raise ConfigError(f"registration file {path} holds no registration")
    return [registration_from_mapping(item, path.parent) for item in items]


@dataclass(frozen=True)
class RateLimits:
    """Calls per client ID. PG&E's published numbers are the default."""

    per_second: int = 1
    per_hour: int = 2000
    per_day: int = 20000

    @classmethod
    def unlimited(cls) -> RateLimits:
        return cls(per_second=1_000_000, per_hour=1_000_000_000, per_day=1_000_000_000)


class OverLimit(enum.StrEnum):
    """What the custodian answers beyond the rate limits, which PG&E documents but not what it
    answers past them: ``strict`` 429 with Retry-After, ``lenient`` serves and counts the excess,
    ``unavailable`` 503 without Retry-After."""

    STRICT = "strict"
    LENIENT = "lenient"
    UNAVAILABLE = "unavailable"


@dataclass(frozen=True)
class SandboxConfig:
    """One sandbox instance. ``web_base_url``/``api_base_url`` are what documents link to."""

    registrations: tuple[Registration, ...]
    admin_token: str
    ca_file: Path
    web_base_url: str = "https://127.0.0.1:9443"
    api_base_url: str = "https://127.0.0.1:9444"
    seed: int = 20240601
    # How many synthetic customers exist: the five profiles, then again with new ids (data.py).
    customers: int = 5
    rate_limits: RateLimits = field(default_factory=RateLimits)
    over_limit: OverLimit = OverLimit.STRICT
    # The BatchList notification for a 202 arrives this many seconds later, drawn uniformly
    # (reference "Timing": usually 10-40 s at PG&E). Fault settings add to it, lose or repeat it.
    notification_delay: tuple[float, float] = (10.0, 40.0)
    code_lifetime: int = 600
    access_token_lifetime: int = 3600
    refresh_token_lifetime: int = 365 * 86400
    client_token_lifetime: int = 3600
    # The longest published-min..published-max span one request may ask for (PG&E documents
    # none; clients use up to a year, so a year and a day is accepted).
    max_range_seconds: int = 366 * 86400
    # How far back the synthetic meters go, counted from the end of yesterday (Pacific).
    data_days: int = 2 * 366
    # None: the end of yesterday in Pacific time, computed at start.
    data_end: int | None = None
    # When False the API face completes the handshake without a certificate and answers
    # 400 "Invalid Certificate", which is what PG&E documents; when True (the default) the TLS
    # handshake itself requires a certificate issued by the CA.
    require_cert_in_handshake: bool = True
    # Older PG&E Authorization documents carry their times in epoch milliseconds.
    authorization_times_in_ms: bool = False
    faults: FaultConfig = field(default_factory=FaultConfig)
    # SQLite file keeping authorizations, codes, tokens and batches across restarts (persist.py);
    # None keeps them in memory only.
    state_file: Path | None = None

    def registration(self, client_id: str) -> Registration | None:
        for registration in self.registrations:
            if registration.client_id == client_id:
                return registration
        return None

    @property
    def espi_base(self) -> str:
        return self.api_base_url + ESPI_ROOT

    @property
    def token_url(self) -> str:
        return self.api_base_url + TOKEN_PATH

    @property
    def authorize_url(self) -> str:
        return self.web_base_url + AUTHORIZE_PATH

"""Configuration from the environment, one pydantic-settings class per service.

Each service declares its own ``Settings`` by combining the pieces it needs, for example::

    class Settings(CustodianSettings, DatabaseSettings, SealingSettings):
        HTTP_PORT: int = 8080
        DATABASE_URL: str = "sqlite:///./auth.db"
        PGE_AUTHORIZE_URL: str

    settings = load_settings(Settings)   # exits 2 naming any missing variable

Field names are the environment variable names (UPPER_CASE, as in docs/architecture.md), so a
message about a field is a message about the variable the operator has to set.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Literal, TypeVar

from pydantic import Field, SecretStr, ValidationError
from pydantic_settings import BaseSettings, SettingsConfigDict

LogLevel = Literal["DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL"]


class ServiceSettings(BaseSettings):
    """What every service reads: the bus, the HTTP listener, TLS and logging."""

    model_config = SettingsConfigDict(
        case_sensitive=True,
        extra="ignore",
        validate_default=True,
    )

    NATS_URL: str
    HTTP_HOST: str = "0.0.0.0"  # noqa: S104 - a container must listen on all interfaces
    HTTP_PORT: int = 8080
    TLS_CERT_FILE: Path | None = None
    TLS_KEY_FILE: Path | None = None
    LOG_LEVEL: LogLevel = "INFO"
    # When set, /metrics is served on this port only (plain HTTP, for the in-cluster scraper)
    # and the service port answers 404 for it, so an ingress routing to the service port can
    # never expose it. Unset (make run, tests): /metrics on the service port.
    METRICS_PORT: int | None = Field(default=None, ge=1, le=65535)
    # Replicas of the streams and buckets a service creates: 3 on a three-node NATS cluster.
    NATS_STREAM_REPLICAS: int = Field(default=1, ge=1, le=5)
    # Limits of every stream and bucket a service creates or opens (scwadd_core.bus.BusLimits):
    # nothing in JetStream grows without bound. A full stream refuses new messages (the
    # publisher sees an error and keeps its fact) rather than dropping unread ones. JetStream
    # reserves each max_bytes up front: together they must fit the server's file store (the
    # chart's nats.jetstream.maxFileStore, 8G by default; a stream that does not fit is refused
    # with "insufficient storage resources"), so the defaults add up to about 6.6 GiB.
    NATS_MAX_MESSAGE_BYTES: int = Field(default=1024 * 1024, ge=1024)
    NATS_EVENTS_MAX_BYTES: int = Field(default=512 * 1024 * 1024, ge=1024 * 1024)
    NATS_EVENTS_MAX_AGE_DAYS: float = Field(default=30.0, gt=0)
    NATS_DLQ_MAX_BYTES: int = Field(default=128 * 1024 * 1024, ge=1024 * 1024)
    NATS_DLQ_MAX_AGE_DAYS: float = Field(default=90.0, gt=0)
    NATS_RAW_MAX_BYTES: int = Field(default=3 * 1024**3, ge=1024 * 1024)
    NATS_RAW_MAX_AGE_DAYS: float = Field(default=30.0, gt=0)
    # Keep above EXPORT_RETENTION_DAYS (files): this is the backstop, not the retention.
    NATS_EXPORTS_MAX_BYTES: int = Field(default=3 * 1024**3, ge=1024 * 1024)
    NATS_EXPORTS_MAX_AGE_DAYS: float = Field(default=90.0, gt=0)
    NATS_KV_MAX_BYTES: int = Field(default=16 * 1024 * 1024, ge=1024 * 1024)
    NATS_KV_MAX_AGE_DAYS: float = Field(default=2.0, gt=0)

    def tls_enabled(self) -> bool:
        """HTTPS is served only when both halves of the key pair are configured."""
        return self.TLS_CERT_FILE is not None and self.TLS_KEY_FILE is not None


class DatabaseSettings(ServiceSettings):
    """A service with its own database. Subclasses set a per-service SQLite default."""

    DATABASE_URL: str
    # Create a missing PostgreSQL database at migration (the in-chart PostgreSQL: a volume made
    # by an older chart lacks the databases of newer services). Off for managed databases.
    DATABASE_CREATE: bool = False


class SealingSettings(ServiceSettings):
    """A service that seals or opens tokens (see :mod:`scwadd_core.sealing`)."""

    TOKEN_SEALING_KEYS: SecretStr


class CustodianSettings(ServiceSettings):
    """The third party's registration at the data custodian (PG&E or the sandbox)."""

    PGE_CLIENT_ID: str
    PGE_CLIENT_SECRET: SecretStr
    PGE_CLIENT_CERT_FILE: Path
    PGE_CLIENT_KEY_FILE: Path
    PGE_CA_FILE: Path | None = None
    PGE_TOKEN_URL: str
    # One call's answer (token, resource, revocation) may take this long; then it counts as a
    # timeout, retried like a 5xx.
    CUSTODIAN_TIMEOUT_SECONDS: float = Field(default=30.0, gt=0)


class RateLimitSettings(ServiceSettings):
    """The custodian's call budget per client ID, shared by every process that calls it
    (fetcher and exporter; see :mod:`scwadd_core.ratelimit`). Set the same values everywhere."""

    RATE_LIMIT_PER_SECOND: float = Field(default=1.0, gt=0)
    RATE_LIMIT_PER_HOUR: int = Field(default=2000, ge=1)
    RATE_LIMIT_PER_DAY: int = Field(default=20000, ge=1)


SettingsT = TypeVar("SettingsT", bound=BaseSettings)


class SettingsError(Exception):
    """The environment does not describe a usable configuration; the message says what to fix."""


def describe_errors(error: ValidationError) -> str:
    """One line per problem, naming the environment variable."""
    lines = []
    for item in error.errors():
        name = ".".join(str(part) for part in item["loc"])
        if not name:  # a check across several settings names them in its message
            lines.append(f"invalid configuration: {item['msg'].removeprefix('Value error, ')}")
        elif item["type"] == "missing":
            lines.append(f"missing required setting {name}: set the environment variable {name}")
        else:
            # The input value is left out on purpose: it may be a secret.
            lines.append(f"invalid setting {name}: {item['msg']}")
    return "\n".join(lines)


def read_settings(cls: type[SettingsT]) -> SettingsT:
    """Build ``cls`` from the environment, or raise :class:`SettingsError` with a clear message."""
    try:
        return cls()
    except ValidationError as error:
        raise SettingsError(describe_errors(error)) from None


def load_settings(cls: type[SettingsT]) -> SettingsT:
    """Build ``cls`` from the environment; on a bad configuration print why and exit 2.

    Used at service start, so a misconfigured pod fails at once with a message naming the
    variable instead of at the first request.
    """
    try:
        return read_settings(cls)
    except SettingsError as error:
        print(f"configuration error ({cls.__module__}.{cls.__name__}):", file=sys.stderr)
        print(str(error), file=sys.stderr)
        raise SystemExit(2) from None

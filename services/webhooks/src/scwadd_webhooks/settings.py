"""The webhooks service's configuration (environment only, see docs/architecture.md)."""

from __future__ import annotations

import ipaddress
from urllib.parse import urlsplit

from pydantic import Field, SecretStr, field_validator
from scwadd_core.settings import DatabaseSettings

Network = ipaddress.IPv4Network | ipaddress.IPv6Network


class WebhookSettings(DatabaseSettings):
    HTTP_PORT: int = 8084
    DATABASE_URL: str = "sqlite:///./webhooks.db"
    # Where events go: comma-separated http(s) URLs. None configured: events are read and dropped
    # on purpose (logged once at start), so the service can run before the operator needs it.
    WEBHOOK_ENDPOINTS: str = ""
    # Comma-separated signing secrets, ``whsec_`` + base64 (Standard Webhooks). Every message is
    # signed with each, so a secret rotates without downtime: add the new one, let receivers
    # switch, then remove the old one.
    WEBHOOK_SECRETS: SecretStr = SecretStr("")
    # Networks the operator explicitly allows although they are private, loopback or
    # link-local (e.g. ``10.42.0.0/16`` for a receiver inside the cluster). Empty: none (SSRF).
    WEBHOOK_ALLOWED_NETWORKS: str = ""
    # A message is retried with exponential backoff for this long after the event, then failed.
    WEBHOOK_RETRY_HOURS: float = Field(default=24.0, gt=0)
    WEBHOOK_BACKOFF_SECONDS: float = Field(default=5.0, gt=0)
    WEBHOOK_BACKOFF_MAX_SECONDS: float = Field(default=3600.0, gt=0)
    WEBHOOK_TIMEOUT_SECONDS: float = Field(default=10.0, gt=0)
    # How often due deliveries are looked for.
    WEBHOOK_INTERVAL_SECONDS: float = Field(default=2.0, gt=0)

    @field_validator("WEBHOOK_ENDPOINTS")
    @classmethod
    def _endpoints_are_urls(cls, value: str) -> str:
        for url in _split(value):
            parts = urlsplit(url)
            if parts.scheme not in ("http", "https") or not parts.hostname:
                raise ValueError(f"WEBHOOK_ENDPOINTS: {url!r} is not an http(s) URL")
            if parts.username or parts.password:
                raise ValueError("WEBHOOK_ENDPOINTS: credentials in a URL would be logged")
        return value

    @field_validator("WEBHOOK_ALLOWED_NETWORKS")
    @classmethod
    def _networks_parse(cls, value: str) -> str:
        for item in _split(value):
            try:
                ipaddress.ip_network(item)
            except ValueError as error:
                raise ValueError(f"WEBHOOK_ALLOWED_NETWORKS: {error}") from None
        return value

    def endpoints(self) -> list[str]:
        return _split(self.WEBHOOK_ENDPOINTS)

    def secrets(self) -> list[str]:
        return _split(self.WEBHOOK_SECRETS.get_secret_value())

    def allowed_networks(self) -> list[Network]:
        return [ipaddress.ip_network(item) for item in _split(self.WEBHOOK_ALLOWED_NETWORKS)]


def _split(value: str) -> list[str]:
    return [item.strip() for item in value.split(",") if item.strip()]

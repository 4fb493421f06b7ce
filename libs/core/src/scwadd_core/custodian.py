"""The data custodian's (PG&E's) OAuth and API client, over mutual TLS.

Every call to the custodian's API host presents the third party's registered client certificate
and authenticates the client with HTTP Basic on the token endpoint. One small module, shared by
auth (code exchange), fetcher (client token, refresh, ESPI calls) and exporter (revocation).

Usage::

    config = CustodianConfig.from_settings(settings)   # any object with the PGE_* fields
    async with Custodian(config) as custodian:
        grant = await custodian.exchange_code(code, redirect_uri)      # auth
        fresh = await custodian.refresh(grant.refresh_token)           # fetcher, on 401/403
        token = await custodian.client_token()                         # cached, shared
        outcome = await custodian.revoke(grant.authorization_uri)      # exporter
        response = await custodian.http.get(url, headers=bearer(token))  # any ESPI call

Errors are :class:`CustodianError` with the HTTP status and the RFC 6749 ``error`` code; their
messages never contain a token, code or secret. Retrying is the caller's policy (tenacity):
``CustodianError.retryable`` says whether a retry can help.
"""

from __future__ import annotations

import asyncio
import enum
import ssl
import time
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import Any
from urllib.parse import urlsplit

import httpx
from pydantic import BaseModel, ConfigDict, Field

from scwadd_core.metrics import CUSTODIAN_CALLS

# A token is replaced this long before the custodian says it expires, so a call never starts
# with a token that dies in flight.
TOKEN_EXPIRY_MARGIN_SECONDS = 60.0
DEFAULT_TIMEOUT = httpx.Timeout(30.0, connect=10.0)


@dataclass(frozen=True)
class CustodianConfig:
    """The third party's registration at the custodian (the PGE_* settings)."""

    client_id: str
    client_secret: str
    client_cert_file: Path
    client_key_file: Path
    token_url: str
    ca_file: Path | None = None

    @classmethod
    def from_settings(cls, settings: Any) -> CustodianConfig:
        """Read the PGE_* fields of a settings object (UPPER or lower case, SecretStr or str)."""

        def field(name: str, required: bool = True) -> Any:
            for attr in (name, name.lower()):
                if hasattr(settings, attr):
                    value = getattr(settings, attr)
                    if hasattr(value, "get_secret_value"):
                        value = value.get_secret_value()
                    return value
            if required:
                raise ValueError(f"settings have no {name}")
            return None

        ca_file = field("PGE_CA_FILE", required=False)
        return cls(
            client_id=str(field("PGE_CLIENT_ID")),
            client_secret=str(field("PGE_CLIENT_SECRET")),
            client_cert_file=Path(field("PGE_CLIENT_CERT_FILE")),
            client_key_file=Path(field("PGE_CLIENT_KEY_FILE")),
            token_url=str(field("PGE_TOKEN_URL")),
            ca_file=Path(ca_file) if ca_file else None,
        )


class CustodianError(Exception):
    """The custodian refused or failed a request. Carries no token, code or secret."""

    def __init__(
        self,
        message: str,
        *,
        status_code: int | None = None,
        error: str | None = None,
        retry_after: float | None = None,
    ) -> None:
        super().__init__(message)
        self.status_code = status_code
        self.error = error
        self.retry_after = retry_after

    @property
    def retryable(self) -> bool:
        """A transport failure, 429 or 5xx may pass; any other 4xx will not."""
        return self.status_code is None or self.status_code == 429 or self.status_code >= 500


class TokenResponse(BaseModel):
    """The token endpoint's answer to an authorization-code or refresh-token grant."""

    model_config = ConfigDict(extra="ignore", populate_by_name=True)

    access_token: str
    refresh_token: str | None = None
    expires_in: int | None = None
    token_type: str | None = None
    scope: str | None = None
    resource_uri: str | None = Field(default=None, alias="resourceURI")
    authorization_uri: str | None = Field(default=None, alias="authorizationURI")

    def __repr__(self) -> str:
        # Tokens must not reach a log through an accidental repr.
        return f"TokenResponse(expires_in={self.expires_in!r}, scope={self.scope!r})"

    __str__ = __repr__


class RevokeOutcome(enum.StrEnum):
    REVOKED = "revoked"
    ALREADY_REVOKED = "already_revoked"


def tls_context(config: CustodianConfig) -> ssl.SSLContext:
    """TLS 1.2+ context presenting the client certificate; trusts PGE_CA_FILE or the system."""
    context = ssl.create_default_context(
        cafile=str(config.ca_file) if config.ca_file is not None else None
    )
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    context.load_cert_chain(str(config.client_cert_file), str(config.client_key_file))
    return context


def make_http_client(
    config: CustodianConfig, *, timeout: httpx.Timeout = DEFAULT_TIMEOUT
) -> httpx.AsyncClient:
    """An httpx client that speaks mutual TLS to the custodian."""
    return httpx.AsyncClient(verify=tls_context(config), timeout=timeout)


def basic_auth(config: CustodianConfig) -> httpx.BasicAuth:
    """HTTP Basic client authentication, as the token endpoint requires."""
    return httpx.BasicAuth(config.client_id, config.client_secret)


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def retry_after_seconds(response: httpx.Response) -> float | None:
    """Retry-After in seconds (delta form; the HTTP-date form is treated as absent)."""
    value = response.headers.get("Retry-After")
    if value is None:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        return None


def _error_from(response: httpx.Response, what: str) -> CustodianError:
    error: str | None = None
    description = ""
    try:
        body = response.json()
        if isinstance(body, dict):
            error = str(body["error"]) if "error" in body else None
            description = str(body.get("error_description", ""))[:200]
    except ValueError:
        description = response.text[:200].strip()
    detail = f": {error}" if error else ""
    if description:
        detail += f" ({description})"
    return CustodianError(
        f"{what} failed with HTTP {response.status_code}{detail}",
        status_code=response.status_code,
        error=error,
        retry_after=retry_after_seconds(response),
    )


class Custodian:
    """An open connection to the custodian: one httpx client and one cached client token."""

    def __init__(
        self,
        config: CustodianConfig,
        *,
        http: httpx.AsyncClient | None = None,
        clock: Any = time.monotonic,
    ) -> None:
        self.config = config
        self.http = http if http is not None else make_http_client(config)
        self._clock = clock
        self._client_token: str | None = None
        self._client_token_expires_at = 0.0
        self._client_token_lock = asyncio.Lock()
        self.client_token_requests = 0

    async def __aenter__(self) -> Custodian:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        await self.http.aclose()

    async def _token_request(self, data: dict[str, str], what: str) -> dict[str, Any]:
        try:
            response = await self.http.post(
                self.config.token_url,
                data=data,
                auth=basic_auth(self.config),
                headers={"Accept": "application/json"},
            )
        except httpx.HTTPError as exc:
            raise CustodianError(f"{what} failed: {type(exc).__name__}") from exc
        if response.status_code != 200:
            raise _error_from(response, what)
        try:
            body = response.json()
        except ValueError as exc:
            message = f"{what} answered a body that is not JSON"
            raise CustodianError(message, status_code=502) from exc
        if not isinstance(body, dict):
            raise CustodianError(f"{what} answered JSON that is not an object", status_code=502)
        return body

    async def exchange_code(self, code: str, redirect_uri: str) -> TokenResponse:
        """Authorization-code grant: the customer's tokens, resourceURI and authorizationURI."""
        body = await self._token_request(
            {"grant_type": "authorization_code", "code": code, "redirect_uri": redirect_uri},
            "authorization code exchange",
        )
        return self._parse_tokens(body, "authorization code exchange")

    async def refresh(self, refresh_token: str) -> TokenResponse:
        """Refresh-token grant. The answer may carry a new refresh token: keep it (rotation)."""
        body = await self._token_request(
            {"grant_type": "refresh_token", "refresh_token": refresh_token},
            "access token refresh",
        )
        return self._parse_tokens(body, "access token refresh")

    @staticmethod
    def _parse_tokens(body: dict[str, Any], what: str) -> TokenResponse:
        try:
            return TokenResponse.model_validate(body)
        except ValueError as exc:
            message = f"{what} answered without an access_token"
            raise CustodianError(message, status_code=502) from exc

    async def client_token(self) -> str:
        """The client-credentials token, shared by every caller until shortly before it expires."""
        async with self._client_token_lock:
            if self._client_token is not None and self._clock() < self._client_token_expires_at:
                return self._client_token
            body = await self._token_request(
                {"grant_type": "client_credentials"}, "client credentials token request"
            )
            self.client_token_requests += 1
            # PG&E names it client_access_token; standard servers say access_token.
            token = body.get("client_access_token") or body.get("access_token")
            if not isinstance(token, str) or not token:
                raise CustodianError(
                    "client credentials token request answered without a token", status_code=502
                )
            try:
                lifetime = float(body.get("expires_in", 3600))
            except (TypeError, ValueError):
                lifetime = 3600.0
            margin = min(TOKEN_EXPIRY_MARGIN_SECONDS, lifetime / 10)
            self._client_token = token
            self._client_token_expires_at = self._clock() + lifetime - margin
            return token

    def forget_client_token(self) -> None:
        """Drop the cached client token (the custodian refused it)."""
        self._client_token = None
        self._client_token_expires_at = 0.0

    async def revoke(self, authorization_uri: str) -> RevokeOutcome:
        """DELETE the authorization with the client token; 404/410 mean it is already gone.

        A 401/403 gets one more try with a fresh client token. Other failures raise
        :class:`CustodianError` (``retryable`` tells the caller whether to try again).
        """
        for attempt in range(2):
            token = await self.client_token()
            try:
                response = await self.http.delete(authorization_uri, headers=bearer(token))
            except httpx.HTTPError as exc:
                raise CustodianError(f"revocation failed: {type(exc).__name__}") from exc
            if response.status_code in (200, 202, 204):
                return RevokeOutcome.REVOKED
            if response.status_code in (404, 410):
                return RevokeOutcome.ALREADY_REVOKED
            if response.status_code in (401, 403) and attempt == 0:
                self.forget_client_token()
                continue
            raise _error_from(response, "revocation")
        raise AssertionError("unreachable")  # pragma: no cover


def endpoint_of(url: str) -> str:
    """A low-cardinality label for a URL: the resource names, not the ids."""
    parts = [p for p in urlsplit(url).path.split("/") if p]
    try:
        parts = parts[parts.index("resource") + 1 :]
    except ValueError:
        parts = parts[-3:]
    names = {
        "Subscription",
        "UsagePoint",
        "MeterReading",
        "IntervalBlock",
        "Batch",
        "Bulk",
        "RetailCustomer",
        "Authorization",
        "UsageSummary",
        "ReadingType",
        "LocalTimeParameters",
        "ReadServiceStatus",
    }
    return "/".join(p for p in parts if p in names) or "other"


def count_custodian_calls(http: httpx.AsyncClient) -> None:
    """Count every answer ``http`` receives in ``scwadd_custodian_calls_total``, by endpoint and
    status, for a service whose calls are not counted at each call site (the exporter's
    revocations and client-token requests)."""

    async def count(response: httpx.Response) -> None:
        CUSTODIAN_CALLS.labels(
            endpoint_of(str(response.request.url)), str(response.status_code)
        ).inc()

    http.event_hooks["response"].append(count)

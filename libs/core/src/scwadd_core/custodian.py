"""The data custodian's (PG&E's) OAuth and API client over mutual TLS, and the one policy every
service calls it with.

Every call to the custodian's API host presents the third party's registered client certificate
and authenticates the client with HTTP Basic on the token endpoint. One small module, shared by
auth (code exchange), fetcher (client token, refresh, ESPI calls) and exporter (revocation).

Usage::

    config = CustodianConfig.from_settings(settings)   # any object with the PGE_* fields
    async with Custodian(config) as custodian:
        grant = await custodian.exchange_code(code, redirect_uri)      # auth
        token = CustomerToken(custodian, access, refresh)              # fetcher: one per job
        response = await call_with_retries(                            # any ESPI call
            CallPolicy(), lambda: custodian.send("GET", url, token, accept=(200, 204))
        )
        outcome = await custodian.revoke(grant.authorization_uri)      # exporter

The policy, in one place:

* :meth:`Custodian.send` sends one request with a :class:`Credential` (the customer's
  :class:`CustomerToken` or our :class:`ClientToken`); on a 401/403 it renews the token once
  (a refresh, at most once per grant; or a new client token) and sends again. A transport
  failure is a retryable :class:`CustodianError`.
* :func:`call_with_retries` retries (tenacity) what a retry can help: 5xx, timeouts, transport
  errors and malformed answers with exponential backoff and full jitter, never sooner than a
  Retry-After the answer carried; a 429 is waited out for its Retry-After (PG&E documents
  neither, so an answer without one waits :data:`DEFAULT_RETRY_AFTER_SECONDS`) and counted
  apart, so a custodian that asks us to slow down does not use up the attempts meant for
  failures (:class:`CallPolicy`).
* every answer is counted in ``scwadd_custodian_calls_total`` by :func:`count_custodian_calls`
  (a hook on the HTTP client, so token requests and a renewed request count too), every
  transport failure by :meth:`Custodian.send` (``timeout`` / ``error``);
* every request takes a call from the budget all replicas share
  (:func:`scwadd_core.ratelimit.pace_custodian_calls`, also a hook), and a 429 holds that
  budget back by its Retry-After for everyone.

Errors are :class:`CustodianError` with the HTTP status and the RFC 6749 ``error`` code; their
messages never contain a token, code or secret. ``CustodianError.retryable`` says whether a
retry can help.
"""

from __future__ import annotations

import asyncio
import enum
import logging
import random
import ssl
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import Any, Protocol, TypeVar
from urllib.parse import urlsplit

import httpx
from pydantic import BaseModel, ConfigDict, Field
from tenacity import AsyncRetrying, RetryCallState, retry_if_exception

from scwadd_core.metrics import CUSTODIAN_CALLS

log = logging.getLogger(__name__)

T = TypeVar("T")

# A token is replaced this long before the custodian says it expires, so a call never starts
# with a token that dies in flight.
TOKEN_EXPIRY_MARGIN_SECONDS = 60.0
DEFAULT_TIMEOUT_SECONDS = 30.0  # a whole answer; connecting gets CONNECT_TIMEOUT_SECONDS
CONNECT_TIMEOUT_SECONDS = 10.0
# PG&E documents no 429 at all, so an answer without Retry-After gets this pause.
DEFAULT_RETRY_AFTER_SECONDS = 5.0


@dataclass(frozen=True)
class CustodianConfig:
    """The third party's registration at the custodian (the PGE_* settings)."""

    client_id: str
    client_secret: str
    client_cert_file: Path
    client_key_file: Path
    token_url: str
    ca_file: Path | None = None
    # CUSTODIAN_TIMEOUT_SECONDS: how long one call may take to answer.
    timeout_seconds: float = DEFAULT_TIMEOUT_SECONDS

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
        timeout = field("CUSTODIAN_TIMEOUT_SECONDS", required=False)
        return cls(
            client_id=str(field("PGE_CLIENT_ID")),
            client_secret=str(field("PGE_CLIENT_SECRET")),
            client_cert_file=Path(field("PGE_CLIENT_CERT_FILE")),
            client_key_file=Path(field("PGE_CLIENT_KEY_FILE")),
            token_url=str(field("PGE_TOKEN_URL")),
            ca_file=Path(ca_file) if ca_file else None,
            timeout_seconds=float(timeout) if timeout else DEFAULT_TIMEOUT_SECONDS,
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
    config: CustodianConfig, *, timeout: httpx.Timeout | None = None
) -> httpx.AsyncClient:
    """An httpx client that speaks mutual TLS to the custodian; ``timeout`` defaults to the
    config's ``timeout_seconds`` per answer and 10 s to connect."""
    if timeout is None:
        timeout = httpx.Timeout(config.timeout_seconds, connect=CONNECT_TIMEOUT_SECONDS)
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


@dataclass(frozen=True)
class CallPolicy:
    """How one custodian call is retried; the services differ only in these numbers.

    Failures (5xx, timeouts, transport errors, malformed answers) and 429s are counted apart:
    ``attempts`` failures or ``rate_limited_attempts`` 429s end the call, whichever comes first.
    """

    attempts: int = 5
    # Seconds: after failure n the wait is uniform in [0, min(initial_wait * 2**(n-1), max_wait)]
    # ("full jitter"), never shorter than a Retry-After the failed answer carried.
    initial_wait: float = 1.0
    max_wait: float = 60.0
    rate_limited_attempts: int = 20
    # A 429 without Retry-After waits this long (PG&E documents neither).
    default_retry_after: float = DEFAULT_RETRY_AFTER_SECONDS

    def wait(self, error: CustodianError, failures: int) -> float:
        """Seconds to wait before the next attempt, after ``error`` and ``failures`` failures
        so far. A 429's Retry-After holds the shared budget back for every replica too
        (:func:`scwadd_core.ratelimit.pace_custodian_calls`), so waiting it out here costs no
        time the budget would not cost anyway."""
        if error.status_code == 429:
            return error.retry_after if error.retry_after is not None else self.default_retry_after
        ceiling = self.initial_wait * 2 ** max(0, failures - 1)
        delay = random.uniform(0, min(ceiling, self.max_wait))  # noqa: S311 - jitter, not a secret
        # A 5xx may carry Retry-After too (RFC 9110 §10.2.3): never come back sooner than asked.
        if error.retry_after is not None:
            delay = max(delay, error.retry_after)
        return delay


@dataclass
class _Tally:
    """One call's answers so far: failures and 429s are counted apart."""

    failed: int = 0
    rate_limited: int = 0


async def call_with_retries(
    policy: CallPolicy, attempt: Callable[[], Awaitable[T]], *, what: str = "custodian call"
) -> T:
    """``await attempt()`` until it returns, retrying each retryable :class:`CustodianError` it
    raises as ``policy`` says (see :class:`CallPolicy`).

    Raises the last :class:`CustodianError` once the attempts are used up (its ``status_code``
    429 when the custodian kept asking us to slow down), a non-retryable one at once, and any
    other exception at once. ``what`` names the call in log lines (no URL: ids are customer
    data)."""
    tally = _Tally()

    def retryable(error: BaseException) -> bool:
        return isinstance(error, CustodianError) and error.retryable

    def stop(_state: RetryCallState) -> bool:
        return tally.failed >= policy.attempts or tally.rate_limited >= policy.rate_limited_attempts

    def wait(state: RetryCallState) -> float:
        error = state.outcome.exception() if state.outcome is not None else None
        assert isinstance(error, CustodianError)
        return policy.wait(error, tally.failed)

    retrying = AsyncRetrying(
        retry=retry_if_exception(retryable), stop=stop, wait=wait, reraise=True
    )
    async for attempt_state in retrying:
        with attempt_state:
            try:
                return await attempt()
            except CustodianError as error:
                if error.status_code == 429:
                    tally.rate_limited += 1
                    log.info(
                        "%s waits: the custodian asked us to slow down",
                        what,
                        extra={"retry_after": error.retry_after},
                    )
                elif error.retryable:
                    tally.failed += 1
                    log.warning(
                        "%s attempt failed",
                        what,
                        extra={"attempt": tally.failed, "status": error.status_code},
                    )
                raise
    raise AssertionError("unreachable")  # pragma: no cover


class Credential(Protocol):
    """What authorizes a request: the customer's access token or our client token."""

    async def token(self) -> str:
        """The bearer token to send now."""
        ...

    async def renew(self) -> bool:
        """After a 401/403: get a fresh token; False when none can help (the request's answer
        stands). Raises a retryable :class:`CustodianError` when the token endpoint failed."""
        ...


class ClientToken:
    """Our client-credentials token (PG&E's ``client_access_token``), cached by the custodian
    client and replaced when the custodian refuses it."""

    def __init__(self, custodian: Custodian) -> None:
        self._custodian = custodian

    async def token(self) -> str:
        return await self._custodian.client_token()

    async def renew(self) -> bool:
        self._custodian.forget_client_token()
        return True


class CustomerToken:
    """The customer's access token for one grant, refreshed at most once (OAuth 2.0 refresh
    grant, RFC 6749 §6): PG&E rotates the refresh token, so a refusal after a refresh means the
    grant is gone, not the token. ``on_rotate(access, refresh)`` keeps the new pair (sealed, in
    the caller's ledger) so another replica taking the job over does not use a spent one."""

    def __init__(
        self,
        custodian: Custodian,
        access_token: str,
        refresh_token: str | None,
        on_rotate: Callable[[str, str | None], Awaitable[None]] | None = None,
    ) -> None:
        self._custodian = custodian
        self.value = access_token
        self._refresh_token = refresh_token
        self._on_rotate = on_rotate
        self.refreshed = False

    async def token(self) -> str:
        return self.value

    async def renew(self) -> bool:
        """Get a new access token; False when there is no refresh left to try."""
        if self.refreshed or not self._refresh_token:
            return False
        self.refreshed = True
        try:
            answer = await self._custodian.refresh(self._refresh_token)
        except CustodianError as error:
            if error.retryable:
                # The token endpoint is down, not the grant: allow the refresh again later.
                self.refreshed = False
                raise
            log.warning("access token refresh refused: %s", error)
            return False
        self.value = answer.access_token
        if answer.refresh_token:
            self._refresh_token = answer.refresh_token
        if self._on_rotate is not None:
            await self._on_rotate(self.value, self._refresh_token)
        return True


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

    async def send(
        self,
        method: str,
        url: str,
        credential: Credential,
        *,
        params: dict[str, str] | None = None,
        accept: tuple[int, ...] = (),
        on_request: Callable[[], None] | None = None,
        what: str | None = None,
    ) -> httpx.Response:
        """One request with ``credential``'s bearer token; the answer, whatever its status.

        A 401 or 403 not in ``accept`` (a caller probing a batch that may be another customer's
        expects a 403) renews the token once (:meth:`Credential.renew`) and sends again.
        ``on_request`` is called as each request goes out (a job counts its calls). No answer
        (timeout, transport error) raises a retryable :class:`CustodianError` and is counted in
        ``scwadd_custodian_calls_total`` as ``timeout`` / ``error``; a credential that cannot be
        had raises its own :class:`CustodianError`.
        """
        endpoint = endpoint_of(url)
        what = what or f"{endpoint} request"
        renewed = False
        while True:
            token = await credential.token()
            if on_request is not None:
                on_request()
            try:
                response = await self.http.request(
                    method, url, params=params, headers=bearer(token)
                )
            except httpx.TimeoutException as exc:
                CUSTODIAN_CALLS.labels(endpoint, "timeout").inc()
                raise CustodianError(f"{what} failed: {type(exc).__name__}") from exc
            except httpx.HTTPError as exc:
                CUSTODIAN_CALLS.labels(endpoint, "error").inc()
                raise CustodianError(f"{what} failed: {type(exc).__name__}") from exc
            status = response.status_code
            if status in (401, 403) and status not in accept and not renewed:
                renewed = True
                if await credential.renew():
                    continue
            return response

    async def revoke(self, authorization_uri: str) -> RevokeOutcome:
        """DELETE the authorization with the client token; 404/410 mean it is already gone.

        A 401/403 gets one more try with a fresh client token. Other failures raise
        :class:`CustodianError` (``retryable`` tells the caller whether to try again).
        """
        response = await self.send(
            "DELETE", authorization_uri, ClientToken(self), what="revocation"
        )
        if response.status_code in (200, 202, 204):
            return RevokeOutcome.REVOKED
        if response.status_code in (404, 410):
            return RevokeOutcome.ALREADY_REVOKED
        raise _error_from(response, "revocation")


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
    status: a hook rather than counting at each call site, so the requests the client makes on
    its own (a client token, a request sent again with a renewed token) count too. Requests that
    get no answer are counted by :meth:`Custodian.send`."""

    async def count(response: httpx.Response) -> None:
        CUSTODIAN_CALLS.labels(
            endpoint_of(str(response.request.url)), str(response.status_code)
        ).inc()

    http.event_hooks["response"].append(count)

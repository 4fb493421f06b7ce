"""One job's calls to the custodian's ESPI API: rate-limited, retried, refreshed once.

Every call goes through :meth:`EspiSession.call`, which

* takes a call from the budget every fetcher and exporter replica shares (the custodian client's
  requests are paced by :func:`scwadd_core.ratelimit.pace_custodian_calls`, token requests too);
* retries 5xx answers, timeouts, transport errors and bodies that are not well-formed ESPI with
  exponential backoff and jitter (tenacity);
* on 429 tries again once the shared budget, pushed back by the Retry-After, lets it (every
  replica honours that pause);
* on the first 401/403 refreshes the customer's access token (once per job: a second refusal
  means the grant is gone) and tries again;
* counts the call by endpoint and status, and in the job's total.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

import httpx
from scwadd_core.custodian import (
    Custodian,
    CustodianError,
    bearer,
    endpoint_of,
    retry_after_seconds,
)
from scwadd_core.metrics import CUSTODIAN_CALLS
from scwadd_core.ratelimit import DEFAULT_RETRY_AFTER_SECONDS
from tenacity import (
    AsyncRetrying,
    RetryCallState,
    retry_if_exception_type,
    wait_exponential_jitter,
)

log = logging.getLogger(__name__)


class TransientError(Exception):
    """A failure a later attempt may not have: 5xx, timeout, a malformed body."""


class RateLimited(Exception):
    def __init__(self, retry_after: float) -> None:
        super().__init__(f"rate limited for {retry_after:.1f}s")
        self.retry_after = retry_after


class PermanentError(Exception):
    """The custodian will not give us this data. The message is a sentence for the customer;
    ``detail`` is what the operator needs (statuses, the custodian's text, parser diagnostics)
    and goes to the log only."""

    def __init__(self, message: str, detail: str = "") -> None:
        super().__init__(message)
        self.detail = detail


@dataclass(frozen=True)
class RetryPolicy:
    attempts: int = 5  # for 5xx, timeouts and malformed bodies
    initial_wait: float = 1.0
    max_wait: float = 60.0
    rate_limited_attempts: int = 20  # 429s are waited out, but not forever
    default_retry_after: float = DEFAULT_RETRY_AFTER_SECONDS


class AccessToken:
    """The customer's access token for one job, refreshed at most once (the refresh rotates)."""

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

    async def refresh(self) -> bool:
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
                raise TransientError(f"token refresh: {error}") from error
            log.warning("access token refresh refused: %s", error)
            return False
        self.value = answer.access_token
        if answer.refresh_token:
            self._refresh_token = answer.refresh_token
        if self._on_rotate is not None:
            await self._on_rotate(self.value, self._refresh_token)
        return True


BodyCheck = Callable[[bytes], None]


class EspiSession:
    """The calls of one job."""

    def __init__(
        self,
        custodian: Custodian,
        access_token: AccessToken,
        policy: RetryPolicy,
    ) -> None:
        self.custodian = custodian
        self.access_token = access_token
        self.policy = policy
        self.calls = 0

    def _wait(self, state: RetryCallState) -> float:
        error = state.outcome.exception() if state.outcome else None
        if isinstance(error, RateLimited):
            # The shared budget already holds everyone back until Retry-After has passed.
            return 0.0
        waiter = wait_exponential_jitter(
            multiplier=self.policy.initial_wait,
            jitter=self.policy.initial_wait,
            max=self.policy.max_wait,
        )
        return float(waiter(state))

    def _stop(self, state: RetryCallState) -> bool:
        error = state.outcome.exception() if state.outcome else None
        if isinstance(error, RateLimited):
            return state.attempt_number >= self.policy.rate_limited_attempts
        return state.attempt_number >= self.policy.attempts

    async def call(
        self,
        url: str,
        *,
        params: dict[str, str] | None = None,
        client_token: bool = False,
        check_body: BodyCheck | None = None,
        ok: tuple[int, ...] = (200,),
    ) -> httpx.Response:
        """GET ``url``; returns the response when its status is in ``ok`` (and its body passes
        ``check_body`` for a 200), raises :class:`PermanentError` for anything that will not
        get better, and retries the rest."""
        retrying = AsyncRetrying(
            retry=retry_if_exception_type((TransientError, RateLimited)),
            wait=self._wait,
            stop=self._stop,
            reraise=True,
        )
        try:
            async for attempt in retrying:
                with attempt:
                    return await self._call_once(url, params, client_token, check_body, ok)
        except TransientError as error:
            raise PermanentError(
                f"the utility's data service kept failing after {self.policy.attempts} attempts",
                detail=str(error),
            ) from error
        except RateLimited as error:
            raise PermanentError(
                "the utility's data service kept refusing calls as too frequent"
            ) from error
        raise AssertionError("unreachable")  # pragma: no cover

    async def _token(self, client_token: bool) -> str:
        if not client_token:
            return self.access_token.value
        try:
            return await self.custodian.client_token()
        except CustodianError as error:
            if error.retryable:
                raise TransientError(f"client token: {error}") from error
            raise PermanentError(
                "the utility refused this application's client credentials", detail=str(error)
            ) from error

    async def _call_once(
        self,
        url: str,
        params: dict[str, str] | None,
        client_token: bool,
        check_body: BodyCheck | None,
        ok: tuple[int, ...],
    ) -> httpx.Response:
        endpoint = endpoint_of(url)
        while True:
            # The custodian client's hooks take each request (token ones too) from the budget.
            token = await self._token(client_token)
            self.calls += 1
            try:
                response = await self.custodian.http.get(url, params=params, headers=bearer(token))
            except httpx.TimeoutException as error:
                CUSTODIAN_CALLS.labels(endpoint, "timeout").inc()
                raise TransientError("timeout") from error
            except httpx.TransportError as error:
                CUSTODIAN_CALLS.labels(endpoint, "error").inc()
                raise TransientError(type(error).__name__) from error
            status = response.status_code
            CUSTODIAN_CALLS.labels(endpoint, str(status)).inc()
            if status in ok and status != 200:
                # An answer the caller expects (204 no data; 403/404 when probing a batch
                # that may be another customer's): not a reason to refresh or give up.
                return response
            if status in (401, 403):
                if client_token and status == 401:
                    self.custodian.forget_client_token()
                    continue
                if not client_token and await self.access_token.refresh():
                    continue
                raise PermanentError(
                    "the utility refused access to the customer's data "
                    f"(HTTP {status}); the authorization may have been revoked or expired"
                )
            if status == 429:
                # The client's hook has already pushed the shared budget back by this much.
                raise RateLimited(retry_after_seconds(response) or self.policy.default_retry_after)
            if status >= 500:
                raise TransientError(f"HTTP {status}")
            if status in ok:
                if status == 200 and check_body is not None:
                    try:
                        # A year of 15-minute data (a Bulk answer: every customer's) takes
                        # seconds to check: off the event loop, so leases and acks go on.
                        await asyncio.to_thread(check_body, response.content)
                    except ValueError as error:
                        raise TransientError(f"malformed body: {error}") from error
                return response
            raise PermanentError(
                f"the utility's data service answered HTTP {status} to a {endpoint} request",
                detail=response.text.strip()[:200],
            )

"""One job's calls to the custodian's ESPI API, under the policy every service shares.

Every call goes through :meth:`EspiSession.call`, which sends it with the job's credential
(:meth:`scwadd_core.custodian.Custodian.send`: a 401/403 refreshes the customer's token once per
job, or replaces the client token) under :func:`scwadd_core.custodian.call_with_retries` (5xx,
timeouts, transport errors and bodies that are not well-formed ESPI are retried with backoff;
429s are waited out; every request takes a call from the budget all replicas share and is
counted), and turns the custodian's last word into a :class:`PermanentError` with a sentence
for the customer. The job's own total of calls is kept in :attr:`EspiSession.calls`.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from dataclasses import dataclass
from typing import Generic, TypeVar

import httpx
from scwadd_core.custodian import (
    CallPolicy,
    ClientToken,
    Custodian,
    CustodianError,
    CustomerToken,
    call_with_retries,
    endpoint_of,
    retry_after_seconds,
)

log = logging.getLogger(__name__)


class PermanentError(Exception):
    """The custodian will not give us this data. The message is a sentence for the customer;
    ``detail`` is what the operator needs (statuses, the custodian's text, parser diagnostics)
    and goes to the log only."""

    def __init__(self, message: str, detail: str = "") -> None:
        super().__init__(message)
        self.detail = detail


T = TypeVar("T")


@dataclass(frozen=True)
class Answer(Generic[T]):
    """The custodian's answer to one call, and what the caller's ``read_body`` made of a 200's
    body (None for any other status): the body is read once, when it is checked."""

    response: httpx.Response
    read: T | None = None

    @property
    def status_code(self) -> int:
        return self.response.status_code

    @property
    def content(self) -> bytes:
        return self.response.content

    @property
    def text(self) -> str:
        return self.response.text


class EspiSession:
    """The calls of one job: with the customer's token, or with our client token."""

    def __init__(
        self,
        custodian: Custodian,
        access_token: CustomerToken,
        policy: CallPolicy,
    ) -> None:
        self.custodian = custodian
        self.access_token = access_token
        self.client_token = ClientToken(custodian)
        self.policy = policy
        self.calls = 0

    def _count(self) -> None:
        self.calls += 1

    async def call(
        self,
        url: str,
        *,
        params: dict[str, str] | None = None,
        client_token: bool = False,
        read_body: Callable[[bytes], T],
        ok: tuple[int, ...] = (200,),
    ) -> Answer[T]:
        """GET ``url``; returns the answer when its status is in ``ok``, a 200's body read by
        ``read_body`` (which raises ValueError for a body that is not what it should be: the
        call is then retried), raises :class:`PermanentError` for anything that will not get
        better, and retries the rest."""
        endpoint = endpoint_of(url)
        try:
            return await call_with_retries(
                self.policy,
                lambda: self._call_once(url, params, client_token, read_body, ok),
                what=f"{endpoint} request",
            )
        except CustodianError as error:
            if error.status_code == 429:
                raise PermanentError(
                    "the utility's data service kept refusing calls as too frequent"
                ) from error
            if error.retryable:
                raise PermanentError(
                    "the utility's data service kept failing after "
                    f"{self.policy.attempts} attempts",
                    detail=str(error),
                ) from error
            # Only the token endpoint answers a final refusal as an error (an ESPI answer is
            # read below): our client credentials are refused.
            raise PermanentError(
                "the utility refused this application's client credentials", detail=str(error)
            ) from error

    async def _call_once(
        self,
        url: str,
        params: dict[str, str] | None,
        client_token: bool,
        read_body: Callable[[bytes], T],
        ok: tuple[int, ...],
    ) -> Answer[T]:
        endpoint = endpoint_of(url)
        # The custodian client's hooks take each request (token ones too) from the budget and
        # count its answer.
        response = await self.custodian.send(
            "GET",
            url,
            self.client_token if client_token else self.access_token,
            params=params,
            accept=ok,
            on_request=self._count,
        )
        status = response.status_code
        if status in ok and status != 200:
            # An answer the caller expects (204 no data; 403/404 when probing a batch
            # that may be another customer's): not a reason to refresh or give up.
            return Answer(response)
        if status in (401, 403):
            raise PermanentError(
                "the utility refused access to the customer's data "
                f"(HTTP {status}); the authorization may have been revoked or expired"
            )
        if status == 429 or status >= 500:
            # A 429's Retry-After has already held the shared budget back (the client's hook).
            raise CustodianError(
                f"{endpoint} request answered HTTP {status}",
                status_code=status,
                retry_after=retry_after_seconds(response),
            )
        if status in ok:
            try:
                # A year of 15-minute data (a Bulk answer: every customer's) takes seconds to
                # read: off the event loop, so leases and acks go on.
                read = await asyncio.to_thread(read_body, response.content)
            except ValueError as error:
                raise CustodianError(f"malformed body: {error}", status_code=502) from error
            return Answer(response, read)
        raise PermanentError(
            f"the utility's data service answered HTTP {status} to a {endpoint} request",
            detail=response.text.strip()[:200],
        )

"""Waiting for the custodian's BatchList after a 202.

The custodian POSTs the BatchList to ``/espi/notify`` on whichever replica the load balancer
picks; that replica publishes ``batch.ready`` and every replica hears it (a plain NATS
subscription per replica, see :mod:`scwadd_fetcher.service`) and hands the URLs to
:meth:`BatchWaiters.deliver`. The job that asked registers its expectation *before* sending the
request, so a notification that outruns the 202 answer is not lost.

Correlation, strongest first:

* we send a ``correlationID`` of our own with every batch request; a URL carrying one of ours
  is ours (*exact*);
* a URL without a correlationID whose path is the resource we requested is ours (*exact*);
* a URL with a correlationID we do not know (PG&E and the sandbox name the batch with their own
  id, e.g. ``Batch/Bulk/50916?correlationID=...``) is a *candidate* for every job waiting on a
  request that cannot be matched otherwise; the job checks it by fetching it with its own
  customer token, which the custodian refuses (403/404) for another customer's batch.

A job remembers the URLs it consumed, so a duplicated notification changes nothing.
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass, field
from urllib.parse import parse_qs, urlsplit


def correlation_id_of(url: str) -> str | None:
    query = parse_qs(urlsplit(url).query)
    for key, values in query.items():
        if key.lower() == "correlationid" and values:
            return values[0]
    return None


def path_of(url: str) -> str:
    return urlsplit(url).path.rstrip("/")


@dataclass(frozen=True)
class Announced:
    url: str
    exact: bool


@dataclass
class Expectation:
    correlation_ids: set[str]
    request_url: str
    # Whether URLs named by somebody else's correlation id may be ours (see module docstring).
    accepts_candidates: bool
    queue: asyncio.Queue[list[Announced]] = field(default_factory=asyncio.Queue)

    def classify(self, url: str) -> Announced | None:
        correlation = correlation_id_of(url)
        if correlation is not None:
            if correlation in self.correlation_ids:
                return Announced(url, exact=True)
            return Announced(url, exact=False) if self.accepts_candidates else None
        if path_of(url) == path_of(self.request_url):
            return Announced(url, exact=True)
        return None


class BatchWaiters:
    """The 202 answers this replica is waiting on."""

    def __init__(self) -> None:
        self._pending: list[Expectation] = []

    def expect(
        self, correlation_ids: set[str], request_url: str, *, accepts_candidates: bool = False
    ) -> Expectation:
        """Register before the request. ``correlation_ids`` holds every id sent for this data:
        a re-request may be answered by the notification of an earlier one."""
        expectation = Expectation(set(correlation_ids), request_url, accepts_candidates)
        self._pending.append(expectation)
        return expectation

    def cancel(self, expectation: Expectation) -> None:
        if expectation in self._pending:
            self._pending.remove(expectation)

    def deliver(self, urls: list[str]) -> int:
        """Offer announced URLs to every expectation they may belong to; returns how many
        expectations got something."""
        exact_owner = {
            url
            for url in urls
            for expectation in self._pending
            if (found := expectation.classify(url)) is not None and found.exact
        }
        offered = 0
        for expectation in list(self._pending):
            matches = [
                found
                for url in urls
                if (found := expectation.classify(url)) is not None
                and (found.exact or url not in exact_owner)
            ]
            if matches:
                expectation.queue.put_nowait(matches)
                offered += 1
        return offered

    async def next(self, expectation: Expectation, deadline: float) -> list[Announced] | None:
        """The next announcement for ``expectation``, or None once ``deadline`` (monotonic)
        has passed."""
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            return None
        try:
            return await asyncio.wait_for(expectation.queue.get(), remaining)
        except TimeoutError:
            return None

    @property
    def pending(self) -> int:
        return len(self._pending)

"""Waiting for the custodian's BatchList after a 202.

The custodian POSTs the BatchList to ``/espi/notify`` on whichever replica the load balancer
picks; that replica publishes ``batch.ready`` and every replica hears it (a plain NATS
subscription per replica, see :mod:`scwadd_fetcher.service`) and hands the URLs to
:meth:`BatchWaiters.deliver`. The job that asked registers its expectation *before* sending the
request, so a notification that outruns the 202 answer is not lost.

Correlation: we send a ``correlationID`` of our own with every batch request; a resource URL
that carries it belongs to that request. A URL without any correlationID is matched by its path
to the batch resource that was requested. Each expectation is resolved once, so a duplicated
notification changes nothing.
"""

from __future__ import annotations

import asyncio
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


@dataclass
class Expectation:
    correlation_ids: set[str]
    request_url: str
    future: asyncio.Future[list[str]] = field(
        default_factory=lambda: asyncio.get_running_loop().create_future()
    )

    def matches(self, url: str) -> bool:
        correlation = correlation_id_of(url)
        if correlation is not None:
            return correlation in self.correlation_ids
        return path_of(url) == path_of(self.request_url)


class BatchWaiters:
    """The 202 answers this replica is waiting on."""

    def __init__(self) -> None:
        self._pending: list[Expectation] = []

    def expect(self, correlation_ids: set[str], request_url: str) -> Expectation:
        """Register before the request. ``correlation_ids`` holds every id sent for this data:
        a re-request may be answered by the notification of an earlier one."""
        expectation = Expectation(set(correlation_ids), request_url)
        self._pending.append(expectation)
        return expectation

    def cancel(self, expectation: Expectation) -> None:
        if expectation in self._pending:
            self._pending.remove(expectation)
        if not expectation.future.done():
            expectation.future.cancel()

    def deliver(self, urls: list[str]) -> int:
        """Resolve every expectation a URL matches; returns how many were resolved."""
        resolved = 0
        for expectation in list(self._pending):
            matching = [url for url in urls if expectation.matches(url)]
            if matching and not expectation.future.done():
                expectation.future.set_result(matching)
                self._pending.remove(expectation)
                resolved += 1
        return resolved

    async def wait(self, expectation: Expectation, timeout: float) -> list[str] | None:
        """The announced URLs, or None when nothing came within ``timeout`` seconds."""
        try:
            return await asyncio.wait_for(asyncio.shield(expectation.future), timeout)
        except TimeoutError:
            return None
        finally:
            if expectation in self._pending and not expectation.future.done():
                self.cancel(expectation)

    @property
    def pending(self) -> int:
        return len(self._pending)

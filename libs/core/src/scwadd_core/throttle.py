"""Per-client throttles of one process's public endpoints: who may try again, and when.

Two policies over one bounded table of clients (least recently seen forgotten first, so a
flood of addresses cannot grow memory without bound):

- :class:`TokenBucket`: ``burst`` calls at once, then ``per_minute`` (auth's ``POST /authorize``,
  where every call stores an OAuth state; the fetcher's ``/espi/notify`` per sender and in all).
- :class:`LoginThrottle`: after ``free_failures`` failed sign-ins an address must wait
  ``base * 2**(extra failures - 1)`` seconds (capped at ``max_delay``) before its next attempt is
  even checked; a success clears it (files' HTTP Basic, which makes online guessing impractical).

A refused client is answered 429 with ``Retry-After`` (:func:`retry_after_header`, RFC 9110
§10.2.3). State is per process; behind an ingress the client is the forwarded address (uvicorn's
``FORWARDED_ALLOW_IPS``). This is not the custodian's call budget, which every replica shares
(:mod:`scwadd_core.ratelimit`).
"""

from __future__ import annotations

import math
import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass
from typing import Generic, TypeVar

V = TypeVar("V")


class ClientTable(Generic[V]):
    """At most ``max_clients`` entries by client; :meth:`put` makes an entry the most recent."""

    def __init__(self, max_clients: int) -> None:
        self.max_clients = max_clients
        self._entries: OrderedDict[str, V] = OrderedDict()

    def __len__(self) -> int:
        return len(self._entries)

    def get(self, client: str) -> V | None:
        return self._entries.get(client)

    def pop(self, client: str) -> V | None:
        return self._entries.pop(client, None)

    def put(self, client: str, value: V) -> None:
        self._entries.pop(client, None)
        self._entries[client] = value
        while len(self._entries) > self.max_clients:
            self._entries.popitem(last=False)


class TokenBucket:
    """``burst`` calls at once per client, refilled at ``per_minute``."""

    def __init__(
        self,
        *,
        burst: int,
        per_minute: float,
        max_clients: int = 10_000,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.burst = burst
        self.rate = per_minute / 60.0
        self._clock = clock
        # (tokens left, when they were counted) per client.
        self._buckets: ClientTable[tuple[float, float]] = ClientTable(max_clients)

    def __len__(self) -> int:
        """Clients tracked now (at most ``max_clients``)."""
        return len(self._buckets)

    def _tokens(self, client: str, now: float) -> float:
        tokens, last = self._buckets.get(client) or (float(self.burst), now)
        return min(float(self.burst), tokens + (now - last) * self.rate)

    def wait(self, client: str) -> float:
        """The seconds until ``client`` may call (0 now), without taking a call."""
        tokens = self._tokens(client, self._clock())
        return 0.0 if tokens >= 1.0 else (1.0 - tokens) / self.rate

    def take(self, client: str) -> float:
        """Take one call for ``client``: 0 if allowed, else the seconds until one is free."""
        now = self._clock()
        tokens = self._tokens(client, now)
        wait = 0.0
        if tokens >= 1.0:
            tokens -= 1.0
        else:
            wait = (1.0 - tokens) / self.rate
        self._buckets.put(client, (tokens, now))
        return wait


@dataclass
class _Failures:
    count: int
    blocked_until: float
    last_seen: float


class LoginThrottle:
    """Failed sign-ins per client, each beyond ``free_failures`` doubling the wait."""

    def __init__(
        self,
        *,
        free_failures: int = 5,
        base_delay: float = 1.0,
        max_delay: float = 300.0,
        forget_after: float = 3600.0,
        max_clients: int = 10_000,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.free_failures = free_failures
        self.base_delay = base_delay
        self.max_delay = max_delay
        self.forget_after = forget_after
        self._clock = clock
        self._clients: ClientTable[_Failures] = ClientTable(max_clients)

    def retry_after(self, client: str) -> float:
        """Seconds this client must still wait before an attempt is checked (0: go ahead)."""
        entry = self._clients.get(client)
        if entry is None:
            return 0.0
        now = self._clock()
        if now - entry.last_seen > self.forget_after:
            self._clients.pop(client)
            return 0.0
        return max(entry.blocked_until - now, 0.0)

    def failed(self, client: str) -> float:
        """Record a failure; returns the delay now imposed on the client (seconds)."""
        now = self._clock()
        entry = self._clients.pop(client) or _Failures(0, 0.0, now)
        entry.count += 1
        entry.last_seen = now
        extra = entry.count - self.free_failures
        delay = 0.0
        if extra > 0:
            delay = min(self.base_delay * 2 ** (extra - 1), self.max_delay)
            entry.blocked_until = now + delay
        self._clients.put(client, entry)
        return delay

    def succeeded(self, client: str) -> None:
        self._clients.pop(client)


def retry_after_header(seconds: float) -> str:
    """A ``Retry-After`` value (whole seconds, at least 1) for a wait of ``seconds``."""
    return str(max(1, math.ceil(seconds)))

"""Slowing down repeated failed logins, per client address.

After ``free_failures`` failures an address must wait ``base * 2**(extra failures - 1)`` seconds
(capped at ``max_delay``) before its next attempt is even checked; meanwhile it is answered 429
with Retry-After. A success clears the address. State is per process and bounded (least recently
seen addresses are forgotten first), which is enough to make online guessing impractical.
"""

from __future__ import annotations

import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass


@dataclass
class _Failures:
    count: int
    blocked_until: float
    last_seen: float


class LoginThrottle:
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
        self.max_clients = max_clients
        self._clock = clock
        self._clients: OrderedDict[str, _Failures] = OrderedDict()

    def retry_after(self, client: str) -> float:
        """Seconds this client must still wait before an attempt is checked (0: go ahead)."""
        entry = self._clients.get(client)
        if entry is None:
            return 0.0
        now = self._clock()
        if now - entry.last_seen > self.forget_after:
            del self._clients[client]
            return 0.0
        return max(entry.blocked_until - now, 0.0)

    def failed(self, client: str) -> float:
        """Record a failure; returns the delay now imposed on the client."""
        now = self._clock()
        entry = self._clients.pop(client, None) or _Failures(0, 0.0, now)
        entry.count += 1
        entry.last_seen = now
        extra = entry.count - self.free_failures
        delay = 0.0
        if extra > 0:
            delay = min(self.base_delay * 2 ** (extra - 1), self.max_delay)
            entry.blocked_until = now + delay
        self._clients[client] = entry
        while len(self._clients) > self.max_clients:
            self._clients.popitem(last=False)
        return delay

    def succeeded(self, client: str) -> None:
        self._clients.pop(client, None)

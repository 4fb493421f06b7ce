"""A per-client token bucket for ``POST /authorize`` (every call stores an OAuth state).

``burst`` calls at once, then ``per_minute``; per process, bounded (least recently seen
clients are forgotten first). Behind an ingress the client is the forwarded address (uvicorn's
``FORWARDED_ALLOW_IPS``), as for the files service's sign-in throttle.
"""

from __future__ import annotations

import math
import time
from collections import OrderedDict
from collections.abc import Callable


class TokenBucket:
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
        self.max_clients = max_clients
        self._clock = clock
        self._buckets: OrderedDict[str, tuple[float, float]] = OrderedDict()

    def take(self, client: str) -> float:
        """Take one call for ``client``: 0 if allowed, else the seconds until one is free."""
        now = self._clock()
        tokens, last = self._buckets.pop(client, (float(self.burst), now))
        tokens = min(float(self.burst), tokens + (now - last) * self.rate)
        wait = 0.0
        if tokens >= 1.0:
            tokens -= 1.0
        else:
            wait = (1.0 - tokens) / self.rate
        self._buckets[client] = (tokens, now)
        while len(self._buckets) > self.max_clients:
            self._buckets.popitem(last=False)
        return wait


def retry_after_header(seconds: float) -> str:
    return str(max(1, math.ceil(seconds)))

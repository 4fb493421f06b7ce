"""The custodian's call budget, shared by every fetcher replica and every customer.

PG&E counts calls per client ID (1 per second, 2,000 per hour, 20,000 per day), so the limit
must hold for the sum of all replicas, not per process. The budget lives in one JetStream KV
entry; a replica takes a call from it with compare-and-set on the entry's revision, so two
replicas can never both take the last call: the loser re-reads and tries again.

The entry holds:

* ``next``: the earliest time the next call may start. Calls are spaced ``1.1/per_second``
  apart, which satisfies both a fixed and a sliding one-second window despite latency jitter.
* ``m``: calls per minute over the last 60 minutes, ``h``: calls per hour over the last 24 hours.
  The hour and day limits are checked against these sliding sums, which is never more generous
  than the custodian's counting whether its hour and day are sliding or aligned to the clock
  (PG&E's day resets at 5 p.m. Pacific, an hour boundary).

A 429 answer pushes ``next`` forward for everyone (:meth:`SharedRateLimit.defer`), so one
replica's Retry-After is honoured by all of them.
"""

from __future__ import annotations

import asyncio
import json
import random
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Protocol

from nats.js.errors import KeyNotFoundError, KeyWrongLastSequenceError

from scwadd_fetcher import metrics

BUDGET_KEY = "custodian"


class KeyValueStore(Protocol):
    """The part of ``nats.js.kv.KeyValue`` the limiter uses."""

    async def get(self, key: str) -> Any: ...

    async def create(self, key: str, value: bytes) -> int: ...

    async def update(self, key: str, value: bytes, last: int | None = None) -> int: ...


@dataclass(frozen=True)
class Limits:
    per_second: float = 1.0
    per_hour: int = 2000
    per_day: int = 20000


@dataclass
class _Budget:
    next: float
    minutes: dict[int, int]
    hours: dict[int, int]

    @classmethod
    def empty(cls) -> _Budget:
        return cls(next=0.0, minutes={}, hours={})

    @classmethod
    def load(cls, raw: bytes | None) -> _Budget:
        if not raw:
            return cls.empty()
        data = json.loads(raw)
        return cls(
            next=float(data.get("next", 0.0)),
            minutes={int(k): int(v) for k, v in data.get("m", {}).items()},
            hours={int(k): int(v) for k, v in data.get("h", {}).items()},
        )

    def dump(self) -> bytes:
        return json.dumps(
            {
                "next": self.next,
                "m": {str(k): v for k, v in self.minutes.items()},
                "h": {str(k): v for k, v in self.hours.items()},
            },
            separators=(",", ":"),
        ).encode()

    def forget_before(self, now: float) -> None:
        minute, hour = int(now // 60), int(now // 3600)
        self.minutes = {m: c for m, c in self.minutes.items() if m > minute - 60}
        self.hours = {h: c for h, c in self.hours.items() if h > hour - 24}


class SharedRateLimit:
    """Take one custodian call from the budget every replica shares."""

    def __init__(
        self,
        kv: KeyValueStore,
        limits: Limits,
        *,
        clock: Callable[[], float] = time.time,
        sleep: Callable[[float], Any] = asyncio.sleep,
    ) -> None:
        self._kv = kv
        self.limits = limits
        self._clock = clock
        self._sleep = sleep

    async def _read(self) -> tuple[_Budget, int | None]:
        try:
            entry = await self._kv.get(BUDGET_KEY)
        except KeyNotFoundError:
            return _Budget.empty(), None
        return _Budget.load(entry.value), entry.revision

    async def _write(self, budget: _Budget, revision: int | None) -> bool:
        try:
            if revision is None:
                await self._kv.create(BUDGET_KEY, budget.dump())
            else:
                await self._kv.update(BUDGET_KEY, budget.dump(), last=revision)
        except KeyWrongLastSequenceError:
            return False
        return True

    def _wait_needed(self, budget: _Budget, now: float) -> float:
        """Seconds until a call fits the budget; 0 when one fits now."""
        waits = [budget.next - now]
        if sum(budget.minutes.values()) >= self.limits.per_hour:
            oldest = min(budget.minutes)
            waits.append((oldest + 60) * 60 - now)
        if sum(budget.hours.values()) >= self.limits.per_day:
            oldest = min(budget.hours)
            waits.append((oldest + 24) * 3600 - now)
        return max(0.0, *waits)

    async def try_acquire(self) -> float:
        """Take a call if one is free now and return 0; else return how long to wait."""
        while True:
            now = self._clock()
            budget, revision = await self._read()
            budget.forget_before(now)
            wait = self._wait_needed(budget, now)
            if wait > 0:
                return wait
            # A tenth of the interval to spare: the custodian sees our calls after network
            # latency that varies, and must never see two of them closer than the limit.
            budget.next = now + 1.1 / self.limits.per_second
            minute, hour = int(now // 60), int(now // 3600)
            budget.minutes[minute] = budget.minutes.get(minute, 0) + 1
            budget.hours[hour] = budget.hours.get(hour, 0) + 1
            if await self._write(budget, revision):
                return 0.0
            # Another replica took a call between our read and write: read again.
            await self._sleep(random.uniform(0, 0.01))  # noqa: S311 - jitter, not crypto

    async def acquire(self) -> float:
        """Wait until a call is ours; returns the seconds spent waiting."""
        waited = 0.0
        while True:
            wait = await self.try_acquire()
            if wait == 0:
                if waited:
                    metrics.RATE_LIMIT_WAITS.inc()
                    metrics.RATE_LIMIT_WAIT_SECONDS.inc(waited)
                return waited
            # A little jitter so replicas that wake together do not collide on the CAS.
            pause = wait + random.uniform(0, 0.05)  # noqa: S311
            await self._sleep(pause)
            waited += pause

    async def defer(self, seconds: float) -> None:
        """Nobody calls for ``seconds`` (the custodian answered 429 with Retry-After)."""
        while True:
            now = self._clock()
            budget, revision = await self._read()
            if budget.next >= now + seconds:
                return
            budget.forget_before(now)
            budget.next = now + seconds
            if await self._write(budget, revision):
                return

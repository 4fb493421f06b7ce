"""The custodian's call budget, shared by every process that calls it with our client ID.

PG&E counts calls per client ID (1 per second, 2,000 per hour, 20,000 per day), so the limit
must hold for the sum of every fetcher and exporter replica, not per process. The budget lives
in one JetStream KV entry (bucket ``scwadd-ratelimit``); a process takes a call from it with
compare-and-set on the entry's revision, so two processes can never both take the last call:
the loser re-reads and tries again.

The entry holds:

* ``next``: the earliest time the next call may start. Calls are spaced ``1.1/per_second``
  apart, which satisfies both a fixed and a sliding one-second window despite latency jitter.
* ``busy``: the calls in flight, by call id, each with the time its hold runs out. The custodian
  counts a call when the request *reaches* it, which may be long after the slot was taken (a
  TLS handshake on a loaded machine, a starved event loop): a slot taken at ``t`` says nothing
  about when the call arrives. So a call holds the budget until its answer comes back, and the
  next may start only ``1.1/per_second`` after that answer (:meth:`SharedRateLimit.release`):
  the call arrived before it was answered, so the spacing the custodian sees is at least that,
  whatever the delays on our side. A call that is never released (its process died, or it
  failed without an answer) stops holding after ``Limits.hold_seconds``: by then it has
  surely reached the custodian or never will.
* ``m``: calls per minute over the last 60 minutes, ``h``: calls per hour over the last 24 hours.
  The hour and day limits are checked against these sliding sums, which is never more generous
  than the custodian's counting whether its hour and day are sliding or aligned to the clock
  (PG&E's day resets at 5 p.m. Pacific, an hour boundary).

A 429 answer pushes ``next`` forward for everyone (:meth:`SharedRateLimit.defer`), so one
process's Retry-After is honoured by all of them.

:func:`pace_custodian_calls` puts every request of a custodian HTTP client through the budget
(httpx event hooks), token endpoint included: PG&E does not say whether token requests count,
and a client token lives an hour, so counting them costs a few calls a day at most, while
not counting them could cost a 429 to someone else's call.

Usage::

    limiter = SharedRateLimit(kv, Limits.from_settings(settings), service="exporter")
    pace_custodian_calls(custodian.http, limiter)
"""

from __future__ import annotations

import asyncio
import json
import random
import time
import uuid
import weakref
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Protocol

import httpx
from nats.js.errors import KeyNotFoundError, KeyWrongLastSequenceError
from prometheus_client import Counter

from scwadd_core.custodian import DEFAULT_RETRY_AFTER_SECONDS, retry_after_seconds

BUDGET_KEY = "custodian"
# How often a caller waiting for a call in flight to be answered looks at the budget again.
BUSY_POLL_SECONDS = 0.1

RATE_LIMIT_WAITS = Counter(
    "scwadd_rate_limit_waits_total",
    "Times a custodian call had to wait for the shared rate limit, by service.",
    ["service"],
)
RATE_LIMIT_WAIT_SECONDS = Counter(
    "scwadd_rate_limit_wait_seconds_total",
    "Seconds spent waiting for the shared rate limit, by service.",
    ["service"],
)
RATE_LIMIT_DEFERRALS = Counter(
    "scwadd_rate_limit_deferrals_total",
    "429 answers from the custodian that held the shared budget back by their Retry-After, "
    "by service.",
    ["service"],
)


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
    # How long an unanswered call holds the budget at most (see the module docstring).
    hold_seconds: float = 10.0

    @classmethod
    def from_settings(cls, settings: Any) -> Limits:
        """The RATE_LIMIT_* fields of :class:`scwadd_core.settings.RateLimitSettings`."""
        return cls(
            per_second=settings.RATE_LIMIT_PER_SECOND,
            per_hour=settings.RATE_LIMIT_PER_HOUR,
            per_day=settings.RATE_LIMIT_PER_DAY,
        )


@dataclass
class _Budget:
    next: float
    minutes: dict[int, int]
    hours: dict[int, int]
    busy: dict[str, float] = field(default_factory=dict)

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
            busy={str(k): float(v) for k, v in data.get("busy", {}).items()},
        )

    def dump(self) -> bytes:
        return json.dumps(
            {
                "next": self.next,
                "m": {str(k): v for k, v in self.minutes.items()},
                "h": {str(k): v for k, v in self.hours.items()},
                "busy": self.busy,
            },
            separators=(",", ":"),
        ).encode()

    def forget_before(self, now: float) -> None:
        minute, hour = int(now // 60), int(now // 3600)
        self.minutes = {m: c for m, c in self.minutes.items() if m > minute - 60}
        self.hours = {h: c for h, c in self.hours.items() if h > hour - 24}
        self.busy = {call: until for call, until in self.busy.items() if until > now}


class SharedRateLimit:
    """Take one custodian call from the budget every replica of every service shares.

    ``service`` only labels the metrics: the budget itself is one for everybody.
    """

    def __init__(
        self,
        kv: KeyValueStore,
        limits: Limits,
        *,
        service: str,
        clock: Callable[[], float] = time.time,
        sleep: Callable[[float], Any] = asyncio.sleep,
    ) -> None:
        self._kv = kv
        self.limits = limits
        self.service = service
        # Exported at 0 from the start, so a dashboard sees the series before the first wait.
        for counter in (RATE_LIMIT_WAITS, RATE_LIMIT_WAIT_SECONDS, RATE_LIMIT_DEFERRALS):
            counter.labels(service)
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
        if budget.busy:
            # Another call is in flight: the next one starts after its answer (release), or
            # when its hold runs out; ask again soon, since the answer usually comes first.
            waits.append(min(min(budget.busy.values()) - now, BUSY_POLL_SECONDS))
        if sum(budget.minutes.values()) >= self.limits.per_hour:
            oldest = min(budget.minutes)
            waits.append((oldest + 60) * 60 - now)
        if sum(budget.hours.values()) >= self.limits.per_day:
            oldest = min(budget.hours)
            waits.append((oldest + 24) * 3600 - now)
        return max(0.0, *waits)

    def _interval(self) -> float:
        # A tenth of the interval to spare: never two calls closer than the limit.
        return 1.1 / self.limits.per_second

    async def try_acquire(self, call_id: str | None = None) -> float:
        """Take a call if one is free now and return 0; else return how long to wait.

        With ``call_id`` the call holds the budget until :meth:`release` (or ``hold_seconds``):
        nobody else starts meanwhile. Without it, only the start-to-start spacing applies.
        """
        while True:
            now = self._clock()
            budget, revision = await self._read()
            budget.forget_before(now)
            wait = self._wait_needed(budget, now)
            if wait > 0:
                return wait
            budget.next = now + self._interval()
            if call_id is not None:
                budget.busy[call_id] = now + self.limits.hold_seconds
            minute, hour = int(now // 60), int(now // 3600)
            budget.minutes[minute] = budget.minutes.get(minute, 0) + 1
            budget.hours[hour] = budget.hours.get(hour, 0) + 1
            if await self._write(budget, revision):
                return 0.0
            # Another replica took a call between our read and write: read again.
            await self._sleep(random.uniform(0, 0.01))  # noqa: S311 - jitter, not crypto

    async def acquire(self, call_id: str | None = None) -> float:
        """Wait until a call is ours; returns the seconds spent waiting. ``call_id``: see
        :meth:`try_acquire`."""
        waited = 0.0
        while True:
            wait = await self.try_acquire(call_id)
            if wait == 0:
                if waited:
                    RATE_LIMIT_WAITS.labels(self.service).inc()
                    RATE_LIMIT_WAIT_SECONDS.labels(self.service).inc(waited)
                return waited
            # A little jitter so processes that wake together do not collide on the CAS.
            pause = wait + random.uniform(0, 0.05)  # noqa: S311
            await self._sleep(pause)
            waited += pause

    async def release(self, call_id: str) -> None:
        """The call ``call_id`` was answered: it has reached the custodian, so the next call may
        start one interval from now (and no sooner than the spacing from its start)."""
        while True:
            now = self._clock()
            budget, revision = await self._read()
            if call_id not in budget.busy:
                return  # its hold ran out already; the spacing from its start applies
            budget.forget_before(now)
            budget.busy.pop(call_id, None)
            budget.next = max(budget.next, now + self._interval())
            if await self._write(budget, revision):
                return
            await self._sleep(random.uniform(0, 0.01))  # noqa: S311 - jitter, not crypto

    async def defer(self, seconds: float) -> None:
        """Nobody calls for ``seconds`` (the custodian answered 429 with Retry-After)."""
        RATE_LIMIT_DEFERRALS.labels(self.service).inc()
        while True:
            now = self._clock()
            budget, revision = await self._read()
            if budget.next >= now + seconds:
                return
            budget.forget_before(now)
            budget.next = now + seconds
            if await self._write(budget, revision):
                return


def pace_custodian_calls(
    http: httpx.AsyncClient,
    limiter: SharedRateLimit,
    *,
    default_retry_after: float = DEFAULT_RETRY_AFTER_SECONDS,
) -> None:
    """Make every request ``http`` sends take a call from ``limiter`` first and hold the budget
    until its answer comes back, and every 429 it receives hold the budget back by its
    Retry-After for all processes.

    Hooks rather than calls at each call site: ``Custodian.revoke`` may fetch a client token and
    send a second DELETE on its own, and each of those requests must be paced too. A request that
    fails without an answer (timeout, refused connection) is never released: its hold runs out
    after ``Limits.hold_seconds``.
    """
    calls: weakref.WeakKeyDictionary[httpx.Request, str] = weakref.WeakKeyDictionary()

    async def take_a_call(request: httpx.Request) -> None:
        call_id = uuid.uuid4().hex
        await limiter.acquire(call_id)
        calls[request] = call_id

    async def honour_429(response: httpx.Response) -> None:
        call_id = calls.pop(response.request, None)
        if call_id is not None:
            await limiter.release(call_id)
        if response.status_code == 429:
            await limiter.defer(retry_after_seconds(response) or default_retry_after)

    http.event_hooks["request"].append(take_a_call)
    http.event_hooks["response"].append(honour_429)

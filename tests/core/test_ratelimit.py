"""The custodian call budget in JetStream KV, shared by every replica of fetcher and exporter
(compare-and-set)."""

from __future__ import annotations

import asyncio

import pytest
from prometheus_client import REGISTRY
from scwadd_core.bus import Bus
from scwadd_core.events import RATELIMIT_BUCKET
from scwadd_core.ratelimit import Limits, SharedRateLimit

pytestmark = pytest.mark.anyio


class FakeClock:
    """Time that moves only when told to (``tick`` per reading, ``sleep``)."""

    def __init__(self, now: float = 1_800_000_000.0, tick: float = 0.0) -> None:
        self.now = now
        self.tick = tick

    def __call__(self) -> float:
        self.now += self.tick
        return self.now

    async def sleep(self, seconds: float) -> None:
        self.now += seconds
        await asyncio.sleep(0)


@pytest.fixture
async def two_replicas(nats_server):
    """Two limiters on two NATS connections: two processes (fetcher or exporter replicas)."""
    buses = [await Bus.connect(nats_server, name=f"replica-{n}") for n in range(2)]
    kvs = [await bus.key_value(RATELIMIT_BUCKET) for bus in buses]
    yield kvs
    for bus in buses:
        await bus.close()


async def test_replicas_never_share_out_more_than_the_budget(two_replicas):
    clock = FakeClock(tick=0.01)
    limits = Limits(per_second=1_000_000, per_hour=5, per_day=100)
    a, b = (SharedRateLimit(kv, limits, service="test", clock=clock) for kv in two_replicas)
    waits = await asyncio.gather(*(limiter.try_acquire() for limiter in [a, b] * 10))
    assert sum(1 for wait in waits if wait == 0) == 5
    # The others are told to wait for the oldest minute of the hour to pass.
    assert all(0 < wait <= 3600 for wait in waits if wait)


async def test_calls_are_spaced_across_replicas(two_replicas):
    clock = FakeClock()
    a, b = (
        SharedRateLimit(kv, Limits(per_second=1), service="test", clock=clock)
        for kv in two_replicas
    )
    assert await a.try_acquire() == 0
    wait = await b.try_acquire()
    assert 1.0 <= wait <= 1.2
    clock.now += wait
    assert await b.try_acquire() == 0
    assert await a.try_acquire() > 0


async def test_429_retry_after_holds_back_every_replica(two_replicas):
    clock = FakeClock()
    a, b = (SharedRateLimit(kv, Limits(), service="test", clock=clock) for kv in two_replicas)
    await a.defer(30)
    assert 29.9 <= await b.try_acquire() <= 30


async def test_the_day_budget_and_the_wait_metric(two_replicas):
    clock = FakeClock(tick=0.01)
    limits = Limits(per_second=1_000_000, per_hour=1_000, per_day=3)
    a, b = (
        SharedRateLimit(kv, limits, service="test", clock=clock, sleep=clock.sleep)
        for kv in two_replicas
    )
    before = REGISTRY.get_sample_value("scwadd_rate_limit_waits_total", {"service": "test"}) or 0.0
    for limiter in (a, b, a):
        assert await limiter.acquire() == 0
    started = clock.now
    waited = await b.acquire()  # the fourth call of the day waits for the oldest hour to pass
    assert waited > 23 * 3600
    assert clock.now - started >= waited
    assert (
        REGISTRY.get_sample_value("scwadd_rate_limit_waits_total", {"service": "test"})
        == before + 1
    )


async def test_a_call_in_flight_holds_the_budget_until_it_is_answered(two_replicas):
    # The custodian counts a call when it arrives, which may be long after the slot was taken
    # (a starved loop, a slow TLS handshake): the next call is spaced from the answer.
    clock = FakeClock()
    a, b = (
        SharedRateLimit(kv, Limits(per_second=1), service="test", clock=clock)
        for kv in two_replicas
    )
    assert await a.try_acquire("slow-call") == 0
    clock.now += 5.0  # well past the start-to-start spacing, but still unanswered
    assert await b.try_acquire("next-call") > 0
    await a.release("slow-call")
    wait = await b.try_acquire("next-call")
    assert 1.0 <= wait <= 1.2  # one interval from the answer, not from the start
    clock.now += wait
    assert await b.try_acquire("next-call") == 0


async def test_an_unanswered_call_stops_holding_after_hold_seconds(two_replicas):
    clock = FakeClock()
    limits = Limits(per_second=1, hold_seconds=10.0)
    a, b = (SharedRateLimit(kv, limits, service="test", clock=clock) for kv in two_replicas)
    assert await a.try_acquire("died-mid-call") == 0  # never released: its process died
    clock.now += 9.0
    assert await b.try_acquire() > 0
    clock.now += 1.5
    assert await b.try_acquire() == 0
    await a.release("died-mid-call")  # a late answer changes nothing for the hold it lost

"""The bus against a real nats-server: de-duplication, ack after effects, redelivery, dead
letters, object store and KV."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable

import nats.js.errors
import pytest
from nats.js.api import ConsumerInfo
from prometheus_client import REGISTRY
from scwadd_core.bus import HEADER_CONSUMER, HEADER_DELIVERIES, Bus, ConsumerPolicy, read_object
from scwadd_core.events import (
    EXPORTS_BUCKET,
    FETCH_FAILED,
    JOB_PROGRESS,
    STREAM_DLQ,
    STREAM_EVENTS,
    Event,
    FetchFailed,
    JobProgress,
)
from scwadd_testing import NatsServer

pytestmark = pytest.mark.anyio

FAST = ConsumerPolicy(max_deliver=3, backoff=(0.05,), ack_wait=2.0, fetch_timeout=0.2)


@pytest.fixture
async def bus(nats_server: str) -> AsyncIterator[Bus]:
    bus = await Bus.connect(nats_server, name="test")
    await bus.ensure_streams()
    yield bus
    await bus.close()


async def wait_until(predicate: Callable[[], Awaitable[bool]], timeout: float = 10.0) -> None:
    async with asyncio.timeout(timeout):
        while not await predicate():
            await asyncio.sleep(0.02)


def dead_letters(subject: str) -> float:
    return REGISTRY.get_sample_value("scwadd_dead_letters_total", {"subject": subject}) or 0.0


async def consumer_info(bus: Bus, durable: str) -> ConsumerInfo:
    return await bus.js.consumer_info(STREAM_EVENTS, durable)


async def test_a_retried_publish_is_stored_once(bus: Bus) -> None:
    event = JobProgress(job_id="job-1", phase="fetching", message="Fetching your data.")
    assert await bus.publish(event) is True
    assert await bus.publish(event) is False  # same Nats-Msg-Id
    info = await bus.js.stream_info(STREAM_EVENTS)
    assert info.state.messages == 1
    other = JobProgress(job_id="job-1", phase="fetching", message="Fetching your data.")
    assert await bus.publish(other) is True  # a new event id is a new event


async def test_consumer_acks_only_after_the_handler_returns(bus: Bus) -> None:
    release = asyncio.Event()
    started = asyncio.Event()
    seen: list[Event] = []

    async def handler(event: Event) -> None:
        started.set()
        await release.wait()
        seen.append(event)

    await bus.publish(JobProgress(job_id="job-2", phase="waiting", message="Waiting."))
    task = asyncio.create_task(bus.run_consumer("acks", JOB_PROGRESS, handler, policy=FAST))
    await asyncio.wait_for(started.wait(), 10)
    info = await consumer_info(bus, "acks")
    assert info.num_ack_pending == 1  # delivered, not acknowledged while the handler works
    release.set()
    await wait_until(lambda: _ack_pending_is(bus, "acks", 0))
    assert [e.job_id for e in seen if isinstance(e, JobProgress)] == ["job-2"]
    bus.request_stop()
    await task


async def _ack_pending_is(bus: Bus, durable: str, value: int) -> bool:
    info = await consumer_info(bus, durable)
    return info.num_ack_pending == value and info.num_pending == 0


async def test_a_failing_handler_gets_the_message_again(bus: Bus) -> None:
    attempts: list[int] = []

    async def handler(event: Event) -> None:
        attempts.append(1)
        if len(attempts) < 2:
            raise RuntimeError("database briefly unavailable")

    await bus.publish(FetchFailed(job_id="job-3", reason="The custodian refused."))
    task = asyncio.create_task(bus.run_consumer("retry", FETCH_FAILED, handler, policy=FAST))
    await wait_until(lambda: _ack_pending_is(bus, "retry", 0) if len(attempts) >= 2 else _false())
    assert len(attempts) == 2
    bus.request_stop()
    await task


async def _false() -> bool:
    return False


async def test_after_max_deliveries_the_message_goes_to_the_dead_letter_stream(bus: Bus) -> None:
    attempts: list[int] = []
    before = dead_letters(JOB_PROGRESS)

    async def handler(event: Event) -> None:
        attempts.append(1)
        raise ValueError("cannot handle this; access_token=abc123secret")

    event = JobProgress(job_id="job-4", phase="failed", message="Broken.")
    await bus.publish(event)
    task = asyncio.create_task(bus.run_consumer("dlq", JOB_PROGRESS, handler, policy=FAST))
    await wait_until(lambda: _stream_has(bus, STREAM_DLQ, 1))
    bus.request_stop()
    await task
    assert len(attempts) == FAST.max_deliver
    stored = await bus.js.get_msg(STREAM_DLQ, 1)
    assert stored.subject == "scwadd.dlq.job.progress"
    assert stored.data == event.model_dump_json().encode()
    assert stored.headers is not None
    assert stored.headers[HEADER_CONSUMER] == "dlq"
    assert stored.headers[HEADER_DELIVERIES] == str(FAST.max_deliver)
    assert "abc123secret" not in stored.headers["Scwadd-Error"]
    assert dead_letters(JOB_PROGRESS) == before + 1
    info = await consumer_info(bus, "dlq")
    assert info.num_ack_pending == 0 and info.num_redelivered == 0


async def _stream_has(bus: Bus, stream: str, count: int) -> bool:
    info = await bus.js.stream_info(stream)
    return info.state.messages >= count


async def test_an_undecodable_message_is_dead_lettered_at_once(bus: Bus) -> None:
    calls: list[Event] = []

    async def handler(event: Event) -> None:
        calls.append(event)

    await bus.js.publish(JOB_PROGRESS, b'{"not": "an event"}', stream=STREAM_EVENTS)
    task = asyncio.create_task(bus.run_consumer("garbage", JOB_PROGRESS, handler, policy=FAST))
    await wait_until(lambda: _stream_has(bus, STREAM_DLQ, 1))
    bus.request_stop()
    await task
    assert calls == []
    stored = await bus.js.get_msg(STREAM_DLQ, 1)
    assert stored.headers is not None and stored.headers[HEADER_DELIVERIES] == "1"


async def test_replicas_sharing_a_durable_consumer_split_the_work(nats_server: str) -> None:
    first = await Bus.connect(nats_server, name="replica-1")
    second = await Bus.connect(nats_server, name="replica-2")
    await first.ensure_streams()
    handled: dict[str, list[str]] = {"replica-1": [], "replica-2": []}
    all_done = asyncio.Event()

    def handler_for(name: str) -> Callable[[Event], Awaitable[None]]:
        async def handler(event: Event) -> None:
            assert isinstance(event, JobProgress)
            handled[name].append(event.job_id)
            await asyncio.sleep(0.01)  # let the other replica take the next one
            if sum(len(v) for v in handled.values()) >= 20:
                all_done.set()

        return handler

    for n in range(20):
        await first.publish(JobProgress(job_id=f"job-{n}", phase="waiting", message="."))
    tasks = [
        asyncio.create_task(
            bus.run_consumer("shared", JOB_PROGRESS, handler_for(bus.name), policy=FAST)
        )
        for bus in (first, second)
    ]
    await asyncio.wait_for(all_done.wait(), 20)
    await first.close()
    await second.close()
    await asyncio.gather(*tasks)
    everything = handled["replica-1"] + handled["replica-2"]
    assert sorted(everything) == sorted(f"job-{n}" for n in range(20))  # each exactly once
    assert handled["replica-1"] and handled["replica-2"]


async def test_a_message_survives_a_consumer_crash(nats_server: str) -> None:
    """A process dying mid-message (no ack, no nak) hands the message to the next process."""
    crashed = await Bus.connect(nats_server, name="crashing")
    await crashed.ensure_streams()
    await crashed.publish(JobProgress(job_id="job-crash", phase="waiting", message="."))
    started = asyncio.Event()

    async def hang(event: Event) -> None:
        started.set()
        await asyncio.Event().wait()

    policy = ConsumerPolicy(max_deliver=3, backoff=(0.05,), ack_wait=1.0, fetch_timeout=0.2)
    task = asyncio.create_task(crashed.run_consumer("crashy", JOB_PROGRESS, hang, policy=policy))
    await asyncio.wait_for(started.wait(), 10)
    await crashed.nc.close()  # the process "dies": no ack, no nak
    task.cancel()
    await asyncio.gather(task, return_exceptions=True)

    survivor = await Bus.connect(nats_server, name="survivor")
    received = asyncio.Event()

    async def handle(event: Event) -> None:
        received.set()

    task = asyncio.create_task(survivor.run_consumer("crashy", JOB_PROGRESS, handle, policy=policy))
    await asyncio.wait_for(received.wait(), 15)
    await survivor.close()
    await task


async def test_object_store_round_trip(bus: Bus) -> None:
    store = await bus.object_store(EXPORTS_BUCKET)
    payload = b"timestamp,value\n" * 10_000  # several chunks
    await store.put("customer-2026-01-01.csv", payload)
    same_store = await bus.object_store(EXPORTS_BUCKET)  # opening again does not recreate it
    assert await read_object(same_store, "customer-2026-01-01.csv") == payload
    names = [info.name for info in await same_store.list()]
    assert names == ["customer-2026-01-01.csv"]
    with pytest.raises(nats.js.errors.ObjectNotFoundError):
        await read_object(same_store, "missing.csv")


async def test_key_value_compare_and_set(bus: Bus) -> None:
    kv = await bus.key_value("scwadd-ratelimit")
    revision = await kv.create("budget", b"10")
    await kv.update("budget", b"9", last=revision)
    with pytest.raises(nats.js.errors.KeyWrongLastSequenceError):
        await kv.update("budget", b"8", last=revision)  # another replica already spent it
    entry = await kv.get("budget")
    assert entry.value == b"9"


async def test_published_events_survive_a_nats_restart(nats: NatsServer) -> None:
    bus = await Bus.connect(nats.url, name="restart")
    await bus.ensure_streams()
    await bus.publish(JobProgress(job_id="job-r", phase="done", message="Done."))
    nats.stop()
    nats.start()
    await wait_until(lambda: bus.ready(), timeout=20)
    info = await bus.js.stream_info(STREAM_EVENTS)
    assert info.state.messages == 1
    await bus.close()


async def test_a_crash_on_the_last_delivery_still_reaches_the_dead_letter_stream(
    nats_server: str,
) -> None:
    """No handler is left to dead-letter it: the server's max-deliveries advisory, heard by a
    surviving replica, copies the message from the stream."""
    policy = ConsumerPolicy(max_deliver=1, backoff=(0.05,), ack_wait=1.0, fetch_timeout=0.2)
    survivor = await Bus.connect(nats_server, name="survivor")
    await survivor.ensure_streams()

    async def never_called(event: Event) -> None:
        raise AssertionError("the only delivery went to the crashing replica")

    crashing = await Bus.connect(nats_server, name="crashing")
    started = asyncio.Event()

    async def hang(event: Event) -> None:
        started.set()
        await asyncio.Event().wait()

    crash_task = asyncio.create_task(
        crashing.run_consumer("lastgasp", JOB_PROGRESS, hang, policy=policy)
    )
    await asyncio.sleep(0.3)  # the crashing replica's pull request is waiting first
    event = JobProgress(job_id="job-last", phase="waiting", message=".")
    await survivor.publish(event)
    await asyncio.wait_for(started.wait(), 10)
    survivor_task = asyncio.create_task(
        survivor.run_consumer("lastgasp", JOB_PROGRESS, never_called, policy=policy)
    )
    await crashing.nc.close()  # dies holding the message
    crash_task.cancel()
    await asyncio.gather(crash_task, return_exceptions=True)
    await wait_until(lambda: _stream_has(survivor, STREAM_DLQ, 1), timeout=20)
    stored = await survivor.js.get_msg(STREAM_DLQ, 1)
    assert stored.subject == "scwadd.dlq.job.progress"
    assert stored.data == event.model_dump_json().encode()
    assert stored.headers is not None and stored.headers[HEADER_CONSUMER] == "lastgasp"
    await survivor.close()
    await survivor_task


async def test_consumers_carry_on_after_a_nats_restart(nats: NatsServer) -> None:
    bus = await Bus.connect(nats.url, name="outage")
    await bus.ensure_streams()
    seen: list[str] = []
    second = asyncio.Event()

    async def handler(event: Event) -> None:
        assert isinstance(event, JobProgress)
        seen.append(event.job_id)
        if len(seen) == 2:
            second.set()

    task = asyncio.create_task(bus.run_consumer("outage", JOB_PROGRESS, handler, policy=FAST))
    await bus.publish(JobProgress(job_id="before", phase="waiting", message="."))
    await wait_until(lambda: _seen(seen, 1))
    nats.stop()
    await wait_until(lambda: _not_ready(bus))
    nats.start()
    await wait_until(lambda: bus.ready(), timeout=30)
    await bus.publish(JobProgress(job_id="after", phase="waiting", message="."))
    await asyncio.wait_for(second.wait(), 30)
    assert seen == ["before", "after"]
    await bus.close()
    await task


async def _seen(seen: list[str], count: int) -> bool:
    return len(seen) >= count


async def _not_ready(bus: Bus) -> bool:
    return not await bus.ready()

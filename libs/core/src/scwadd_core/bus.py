"""The JetStream bus: streams, publishing with de-duplication, shared durable consumers, a
dead-letter stream, and the object store / KV buckets.

Typical service use::

    bus = await Bus.from_settings(settings, name="exporter")  # replicas and limits from settings
    await bus.ensure_streams()
    await bus.publish(JobProgress(job_id=..., phase="exporting", message="..."))
    await bus.run_consumer("exporter", [GRANT_RECEIVED, FETCH_COMPLETED], handle)  # until stopped
    await bus.close()                                                               # drains

Delivery contract of :meth:`Bus.run_consumer`: the handler gets the decoded event; the message is
acked only after the handler returns (so only after its effects are durable); an exception naks it
with a growing delay; on the last allowed delivery it is copied to ``scwadd.dlq.<subject>``
(stream ``SCWADD_DLQ``), counted in ``scwadd_dead_letters_total{subject}``, logged, and
terminated. A message that cannot be decoded is dead-lettered at once: retrying cannot fix it.
Delivery is at least once, so handlers must be idempotent (by job id).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import nats
import nats.errors
import nats.js.errors
from nats.aio.client import Client as NatsClient
from nats.aio.msg import Msg
from nats.js import JetStreamContext
from nats.js.api import (
    AckPolicy,
    ConsumerConfig,
    DeliverPolicy,
    DiscardPolicy,
    KeyValueConfig,
    ObjectStoreConfig,
    RetentionPolicy,
    StorageType,
    StreamConfig,
)
from nats.js.kv import KeyValue
from nats.js.object_store import ObjectStore
from tenacity import (
    AsyncRetrying,
    retry_if_exception_type,
    stop_after_attempt,
    stop_after_delay,
    wait_exponential_jitter,
)

from scwadd_core.events import (
    DLQ_PREFIX,
    EVENTS_PREFIX,
    EXPORTS_BUCKET,
    RAW_BUCKET,
    STREAM_DLQ,
    STREAM_EVENTS,
    Event,
    EventDecodeError,
    decode,
    dlq_subject,
    encode,
)
from scwadd_core.logs import job_context, redact
from scwadd_core.metrics import (
    BUS_HANDLER_DURATION,
    BUS_MESSAGES,
    DEAD_LETTERS,
    EVENTS_PUBLISHED,
)
from scwadd_core.settings import ServiceSettings

log = logging.getLogger(__name__)

Handler = Callable[[Event], Awaitable[None]]

HEADER_MSG_ID = "Nats-Msg-Id"
HEADER_ORIGINAL_SUBJECT = "Scwadd-Original-Subject"
HEADER_CONSUMER = "Scwadd-Consumer"
HEADER_DELIVERIES = "Scwadd-Deliveries"
HEADER_ERROR = "Scwadd-Error"
HEADER_STREAM_SEQUENCE = "Scwadd-Stream-Sequence"

_DAY = 24 * 3600.0
_MIB = 1024 * 1024
# JetStream's error code for "stream name already in use with a different configuration".
_STREAM_NAME_IN_USE = 10058
# Errors after which a publish is worth retrying: the same Nats-Msg-Id makes a retry safe.
_TRANSIENT = (
    nats.errors.TimeoutError,
    nats.errors.NoRespondersError,
    nats.errors.ConnectionReconnectingError,
    nats.js.errors.ServiceUnavailableError,
    asyncio.TimeoutError,
)


class RetryLater(Exception):
    """Raised by a handler that knows when its message can be handled: the message is handed
    back to be redelivered after ``delay`` seconds instead of the policy's backoff (e.g. a job
    whose lease another replica holds until a known time)."""

    def __init__(self, message: str, *, delay: float) -> None:
        super().__init__(message)
        self.delay = max(0.0, delay)


@dataclass(frozen=True)
class ConsumerPolicy:
    """How a durable consumer retries.

    ``backoff[i]`` is the delay before delivery ``i + 2`` (the last value repeats); after
    ``max_deliver`` failed deliveries the message goes to the dead-letter stream. ``ack_wait`` only
    matters when a process dies mid-message: while a handler runs, the message is kept alive with
    in-progress acks, so a slow handler is not redelivered to another replica.
    ``concurrency`` is the number of messages one process handles at a time.
    """

    max_deliver: int = 5
    backoff: tuple[float, ...] = (1.0, 5.0, 15.0, 60.0)
    ack_wait: float = 30.0
    concurrency: int = 1
    fetch_timeout: float = 2.0

    def delay_after(self, delivered: int) -> float:
        if not self.backoff:
            return 0.0
        return self.backoff[min(delivered - 1, len(self.backoff) - 1)]


@dataclass(frozen=True)
class StoreLimits:
    """The limits of one stream or bucket: total bytes, age of a message in seconds (0: none),
    size of one message in bytes."""

    max_bytes: int
    max_age: float
    max_message_bytes: int


@dataclass(frozen=True)
class BusLimits:
    """Limits for every stream and bucket (``NATS_*`` settings); the defaults are the settings'
    defaults, for tools that only know ``NATS_URL``."""

    events: StoreLimits = StoreLimits(1024 * _MIB, 30 * _DAY, _MIB)
    dead_letters: StoreLimits = StoreLimits(256 * _MIB, 90 * _DAY, _MIB)
    objects: tuple[tuple[str, StoreLimits], ...] = (
        (RAW_BUCKET, StoreLimits(20 * 1024 * _MIB, 30 * _DAY, _MIB)),
        (EXPORTS_BUCKET, StoreLimits(20 * 1024 * _MIB, 90 * _DAY, _MIB)),
    )
    other_objects: StoreLimits = StoreLimits(1024 * _MIB, 30 * _DAY, _MIB)
    key_values: StoreLimits = StoreLimits(16 * _MIB, 2 * _DAY, _MIB)

    @classmethod
    def from_settings(cls, settings: ServiceSettings) -> BusLimits:
        size = settings.NATS_MAX_MESSAGE_BYTES
        return cls(
            events=StoreLimits(
                settings.NATS_EVENTS_MAX_BYTES, settings.NATS_EVENTS_MAX_AGE_DAYS * _DAY, size
            ),
            dead_letters=StoreLimits(
                settings.NATS_DLQ_MAX_BYTES, settings.NATS_DLQ_MAX_AGE_DAYS * _DAY, size
            ),
            objects=(
                (
                    RAW_BUCKET,
                    StoreLimits(
                        settings.NATS_RAW_MAX_BYTES, settings.NATS_RAW_MAX_AGE_DAYS * _DAY, size
                    ),
                ),
                (
                    EXPORTS_BUCKET,
                    StoreLimits(
                        settings.NATS_EXPORTS_MAX_BYTES,
                        settings.NATS_EXPORTS_MAX_AGE_DAYS * _DAY,
                        size,
                    ),
                ),
            ),
            other_objects=StoreLimits(
                settings.NATS_RAW_MAX_BYTES, settings.NATS_RAW_MAX_AGE_DAYS * _DAY, size
            ),
            key_values=StoreLimits(
                settings.NATS_KV_MAX_BYTES, settings.NATS_KV_MAX_AGE_DAYS * _DAY, size
            ),
        )

    def object_store(self, bucket: str) -> StoreLimits:
        return dict(self.objects).get(bucket, self.other_objects)


@dataclass
class _ConsumerState:
    durable: str
    subjects: list[str]
    handler: Handler
    policy: ConsumerPolicy
    tasks: list[asyncio.Task[None]] = field(default_factory=list)


class Bus:
    """One NATS connection with its JetStream context; see the module docstring."""

    def __init__(
        self,
        nc: NatsClient,
        *,
        name: str = "scwadd",
        replicas: int = 1,
        limits: BusLimits | None = None,
    ) -> None:
        self.nc = nc
        self.js: JetStreamContext = nc.jetstream()
        self.name = name
        # Replicas and limits of the streams and buckets this process creates or opens
        # (NATS_STREAM_REPLICAS and the NATS_*_MAX_* settings).
        self.replicas = replicas
        self.limits = limits or BusLimits()
        self._stopping = asyncio.Event()
        self._consumers: list[_ConsumerState] = []

    # -- connection -------------------------------------------------------------------------

    @classmethod
    async def connect(
        cls,
        url: str,
        *,
        name: str = "scwadd",
        connect_timeout: float = 60.0,
        replicas: int = 1,
        limits: BusLimits | None = None,
    ) -> Bus:
        """Connect, retrying with backoff for up to ``connect_timeout`` seconds (NATS may start
        after us in a pod restart or ``make run``); later outages are survived by reconnecting
        forever, publishes failing meanwhile."""

        closing: list[NatsClient] = []

        async def disconnected() -> None:
            if not (closing and (closing[0].is_closed or closing[0].is_draining)):
                log.warning("disconnected from NATS; reconnecting")

        async def reconnected() -> None:
            log.info("reconnected to NATS")

        async def error(exc: Exception) -> None:
            log.warning("NATS connection error: %s", exc)

        async for attempt in AsyncRetrying(
            stop=stop_after_delay(connect_timeout),
            wait=wait_exponential_jitter(multiplier=0.2, max=5.0),
            retry=retry_if_exception_type((OSError, nats.errors.Error, asyncio.TimeoutError)),
            reraise=True,
        ):
            with attempt:
                nc = await nats.connect(
                    servers=[url],
                    name=name,
                    connect_timeout=5,
                    allow_reconnect=True,
                    max_reconnect_attempts=-1,
                    reconnect_time_wait=1,
                    disconnected_cb=disconnected,
                    reconnected_cb=reconnected,
                    error_cb=error,
                )
        closing.append(nc)
        log.info(
            "connected to NATS",
            extra={"nats_server": nc.connected_url.netloc if nc.connected_url else None},
        )
        return cls(nc, name=name, replicas=replicas, limits=limits)

    @classmethod
    async def from_settings(
        cls, settings: ServiceSettings, *, name: str, connect_timeout: float = 60.0
    ) -> Bus:
        """Connect to ``NATS_URL`` with ``NATS_STREAM_REPLICAS`` and the ``NATS_*_MAX_*`` limits
        for what this process creates. Every service builds its bus here: a bus with defaults
        would re-apply 1 replica and the default limits to the shared streams at each start."""
        return await cls.connect(
            settings.NATS_URL,
            name=name,
            connect_timeout=connect_timeout,
            replicas=settings.NATS_STREAM_REPLICAS,
            limits=BusLimits.from_settings(settings),
        )

    @property
    def is_connected(self) -> bool:
        return bool(self.nc.is_connected)

    async def ready(self) -> bool:
        """For ``/readyz``: connected, and JetStream answers."""
        if not self.is_connected:
            return False
        try:
            await asyncio.wait_for(self.js.stream_info(STREAM_EVENTS), timeout=2.0)
        except Exception:
            return False
        return True

    def request_stop(self) -> None:
        """Make every :meth:`run_consumer` loop finish its current message and return."""
        self._stopping.set()

    @property
    def stopping(self) -> bool:
        return self._stopping.is_set()

    async def sleep_unless_stopping(self, seconds: float) -> bool:
        """Sleep for ``seconds`` or until a stop is requested; True if the service is stopping.
        For periodic background tasks (retention, watchdogs)."""
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._stopping.wait(), timeout=seconds)
        return self._stopping.is_set()

    async def close(self) -> None:
        """Stop consumers, let in-flight handlers finish, then drain the connection (pending
        publishes are flushed, subscriptions unsubscribed) instead of dropping it."""
        self.request_stop()
        for state in self._consumers:
            if state.tasks:
                await asyncio.gather(*state.tasks, return_exceptions=True)
        if not self.nc.is_closed:
            with contextlib.suppress(Exception):
                await self.nc.drain()
        if not self.nc.is_closed:
            await self.nc.close()

    # -- streams ----------------------------------------------------------------------------

    async def ensure_streams(
        self,
        *,
        duplicate_window: float = 600.0,
        replicas: int | None = None,
    ) -> None:
        """Create or update ``SCWADD_EVENTS`` and ``SCWADD_DLQ`` with this bus's replicas and
        limits. Safe to call from every replica.

        ``duplicate_window`` is how long JetStream remembers a ``Nats-Msg-Id``: a publish retried
        within it is stored once. A full stream refuses new messages (``DiscardPolicy.NEW``): an
        unread grant is never dropped to make room; the publisher gets an error and keeps it.
        """
        for name, subjects, limits in (
            (STREAM_EVENTS, [EVENTS_PREFIX + ">"], self.limits.events),
            # Dead letters wait for a person; keep them longer.
            (STREAM_DLQ, [DLQ_PREFIX + ">"], self.limits.dead_letters),
        ):
            config = StreamConfig(
                name=name,
                subjects=subjects,
                retention=RetentionPolicy.LIMITS,
                storage=StorageType.FILE,
                discard=DiscardPolicy.NEW,
                max_age=limits.max_age,
                max_bytes=limits.max_bytes,
                max_msg_size=limits.max_message_bytes,
                duplicate_window=duplicate_window,
                num_replicas=replicas or self.replicas,
            )
            try:
                await self.js.stream_info(name)
            except nats.js.errors.NotFoundError:
                try:
                    await self.js.add_stream(config)
                    continue
                except nats.js.errors.BadRequestError as error:
                    if error.err_code != _STREAM_NAME_IN_USE:
                        raise  # e.g. more replicas than the cluster has servers
                    # another replica created it between our two calls
            await self.js.update_stream(config)

    # -- publishing -------------------------------------------------------------------------

    async def publish(self, event: Event, *, attempts: int = 5, timeout: float = 5.0) -> bool:
        """Publish ``event`` with ``Nats-Msg-Id = event.event_id``, retrying transient failures.

        Returns False when JetStream already held this event id (a duplicate publish was
        suppressed), True when it was stored now. Raises if the bus stays unreachable.
        """
        payload = encode(event)
        headers = {HEADER_MSG_ID: event.event_id}
        async for attempt in AsyncRetrying(
            stop=stop_after_attempt(attempts),
            wait=wait_exponential_jitter(multiplier=0.2, max=5.0),
            retry=retry_if_exception_type(_TRANSIENT),
            reraise=True,
        ):
            with attempt:
                ack = await self.js.publish(
                    event.subject,
                    payload,
                    timeout=timeout,
                    stream=STREAM_EVENTS,
                    headers=headers,
                )
        duplicate = bool(ack.duplicate)
        EVENTS_PUBLISHED.labels(event.subject, "yes" if duplicate else "no").inc()
        return not duplicate

    # -- consuming --------------------------------------------------------------------------

    async def run_consumer(
        self,
        durable: str,
        subjects: str | Sequence[str],
        handler: Handler,
        *,
        policy: ConsumerPolicy | None = None,
    ) -> None:
        """Serve the durable pull consumer ``durable`` (shared by every replica using the same
        name) until :meth:`request_stop`; see the module docstring for the delivery contract."""
        policy = policy or ConsumerPolicy()
        subject_list = [subjects] if isinstance(subjects, str) else list(subjects)
        await self._ensure_consumer(durable, subject_list, policy)
        state = _ConsumerState(durable, subject_list, handler, policy)
        self._consumers.append(state)

        async def on_advisory(advisory: Msg) -> None:
            await self._on_max_deliveries(durable, advisory)

        advisories = await self.nc.subscribe(
            f"$JS.EVENT.ADVISORY.CONSUMER.MAX_DELIVERIES.{STREAM_EVENTS}.{durable}",
            queue=f"scwadd-dlq-{durable}",
            cb=on_advisory,
        )
        subscription = None
        try:
            subscription = await self.js.pull_subscribe_bind(durable=durable, stream=STREAM_EVENTS)
            state.tasks = [
                asyncio.create_task(self._worker(subscription, state), name=f"{durable}-{n}")
                for n in range(policy.concurrency)
            ]
            await asyncio.gather(*state.tasks)
        finally:
            # Unsubscribed here rather than by drain(): a pull subscription with an expired fetch
            # request never counts as drained, and drain() would wait out its full timeout.
            for sub in (subscription, advisories):
                if sub is not None:
                    with contextlib.suppress(Exception):
                        await sub.unsubscribe()

    async def _ensure_consumer(
        self, durable: str, subjects: list[str], policy: ConsumerPolicy
    ) -> None:
        config = ConsumerConfig(
            name=durable,
            durable_name=durable,
            deliver_policy=DeliverPolicy.ALL,
            ack_policy=AckPolicy.EXPLICIT,
            ack_wait=policy.ack_wait,
            max_deliver=policy.max_deliver,
            max_ack_pending=max(1000, policy.concurrency * 10),
        )
        if len(subjects) == 1:
            config.filter_subject = subjects[0]
        else:
            config.filter_subjects = subjects
        # Create-or-update: every replica sends the same config, and a changed config (new subject
        # filter, new policy) is applied by the first replica of the new version that starts.
        await self.js.add_consumer(STREAM_EVENTS, config)

    async def _worker(
        self, subscription: JetStreamContext.PullSubscription, state: _ConsumerState
    ) -> None:
        while not self._stopping.is_set():
            try:
                messages = await subscription.fetch(1, timeout=state.policy.fetch_timeout)
            except (TimeoutError, nats.errors.TimeoutError):
                continue
            except (nats.errors.ConnectionClosedError, nats.errors.ConnectionDrainingError):
                return
            except Exception as error:  # reconnecting, stream briefly gone, ...
                log.warning("fetch from consumer %s failed: %s", state.durable, error)
                with contextlib.suppress(asyncio.TimeoutError):
                    await asyncio.wait_for(self._stopping.wait(), timeout=1.0)
                continue
            for message in messages:
                await self._deliver(message, state)

    async def _deliver(self, msg: Msg, state: _ConsumerState) -> None:
        durable, policy = state.durable, state.policy
        subject = msg.subject
        delivered = msg.metadata.num_delivered or 1
        try:
            event = decode(subject, msg.data)
        except EventDecodeError as error:
            log.error("undecodable message on %s: %s", subject, error)
            await self._dead_letter(msg, durable, str(error), delivered)
            return
        job_id = getattr(event, "job_id", None)
        with job_context(job_id):
            keep_alive = asyncio.create_task(self._keep_alive(msg, policy.ack_wait))
            started = time.perf_counter()
            try:
                await state.handler(event)
            except asyncio.CancelledError:
                # Shutting down mid-message: hand it back at once instead of after ack_wait.
                with contextlib.suppress(Exception):
                    await asyncio.shield(msg.nak())
                raise
            except Exception as error:
                reason = f"{type(error).__name__}: {error}"
                if delivered >= policy.max_deliver:
                    log.exception(
                        "handler %s failed on the last delivery (%d) of %s",
                        durable,
                        delivered,
                        subject,
                    )
                    await self._dead_letter(msg, durable, reason, delivered)
                else:
                    delay = (
                        error.delay
                        if isinstance(error, RetryLater)
                        else policy.delay_after(delivered)
                    )
                    log.warning(
                        "handler %s failed on delivery %d of %s, retrying in %.1fs: %s",
                        durable,
                        delivered,
                        subject,
                        delay,
                        redact(reason),
                    )
                    BUS_MESSAGES.labels(durable, subject, "retried").inc()
                    with contextlib.suppress(Exception):
                        await msg.nak(delay=delay)
            else:
                try:
                    await msg.ack_sync(timeout=5.0)
                    BUS_MESSAGES.labels(durable, subject, "acked").inc()
                except Exception as error:
                    # The effects are durable but the ack was lost: the message comes back and
                    # the idempotent handler does nothing the second time.
                    log.warning("ack of %s on %s failed: %s", subject, durable, error)
            finally:
                keep_alive.cancel()
                BUS_HANDLER_DURATION.labels(durable, subject).observe(time.perf_counter() - started)

    async def _keep_alive(self, msg: Msg, ack_wait: float) -> None:
        while True:
            await asyncio.sleep(max(ack_wait / 3.0, 0.5))
            with contextlib.suppress(Exception):
                await msg.in_progress()

    async def _dead_letter(self, msg: Msg, durable: str, reason: str, delivered: int) -> None:
        sequence = msg.metadata.sequence.stream
        stored = await self._publish_dead_letter(
            msg.subject, msg.data, durable, reason, delivered, sequence
        )
        if stored is None:
            # Not terminated: the server's max-deliveries advisory gives another chance to copy it.
            return
        with contextlib.suppress(Exception):
            await msg.term()

    async def _publish_dead_letter(
        self,
        subject: str,
        data: bytes,
        durable: str,
        reason: str,
        delivered: int,
        sequence: int,
    ) -> bool | None:
        """Copy a message to the DLQ stream. The msg id is derived from the consumer and stream
        sequence, so the handler path and the advisory path store one copy between them."""
        headers = {
            HEADER_MSG_ID: f"dlq-{durable}-{sequence}",
            HEADER_ORIGINAL_SUBJECT: subject,
            HEADER_CONSUMER: durable,
            HEADER_DELIVERIES: str(delivered),
            HEADER_STREAM_SEQUENCE: str(sequence),
            # Header values are single-line; the reason is redacted and bounded.
            HEADER_ERROR: " ".join(redact(reason).split())[:500],
        }
        try:
            ack = await self.js.publish(
                dlq_subject(subject), data, stream=STREAM_DLQ, headers=headers, timeout=5.0
            )
        except Exception:
            log.exception("could not dead-letter message %d of %s", sequence, subject)
            return None
        if not ack.duplicate:
            DEAD_LETTERS.labels(subject).inc()
            BUS_MESSAGES.labels(durable, subject, "dead_lettered").inc()
            log.error(
                "message dead-lettered",
                extra={
                    "dead_letter_subject": dlq_subject(subject),
                    "original_subject": subject,
                    "consumer": durable,
                    "deliveries": delivered,
                    "stream_sequence": sequence,
                    "reason": redact(reason),
                },
            )
        return not ack.duplicate

    async def _on_max_deliveries(self, durable: str, advisory: Msg) -> None:
        """The server gave up on a message whose last delivery never came back (the process
        died, or the dead-letter publish failed): copy it to the DLQ from the stream."""
        try:
            body: dict[str, Any] = json.loads(advisory.data)
            sequence = int(body["stream_seq"])
            deliveries = int(body.get("deliveries", 0))
            stored = await self.js.get_msg(STREAM_EVENTS, sequence)
        except Exception:
            log.exception("could not read a max-deliveries advisory for %s", durable)
            return
        await self._publish_dead_letter(
            stored.subject or "unknown",
            stored.data or b"",
            durable,
            "maximum deliveries reached without an acknowledgement",
            deliveries,
            sequence,
        )

    # -- buckets ----------------------------------------------------------------------------

    async def object_store(self, bucket: str, *, replicas: int | None = None) -> ObjectStore:
        """The object store ``bucket`` (``scwadd-raw``, ``scwadd-exports``), created if missing,
        with this bus's replicas and the bucket's limits (applied to an existing bucket too)."""
        limits = self.limits.object_store(bucket)
        count = replicas or self.replicas
        try:
            store = await self.js.object_store(bucket)
        except nats.js.errors.BucketNotFoundError:
            store = await self.js.create_object_store(
                bucket,
                config=ObjectStoreConfig(
                    storage=StorageType.FILE,
                    replicas=count,
                    ttl=limits.max_age or None,
                    max_bytes=limits.max_bytes,
                ),
            )
        await self._apply_limits(f"OBJ_{bucket}", limits, count)
        return store

    async def _apply_limits(self, stream: str, limits: StoreLimits, replicas: int) -> None:
        """Bring a bucket's stream to ``limits`` and ``replicas`` if it differs (the bucket
        APIs set neither the message size nor an existing bucket's limits)."""
        info = await self.js.stream_info(stream)
        config = info.config
        wanted = {
            "max_bytes": limits.max_bytes,
            "max_age": float(limits.max_age),
            "max_msg_size": limits.max_message_bytes,
            "num_replicas": replicas,
        }
        if all(getattr(config, key) == value for key, value in wanted.items()):
            return
        for key, value in wanted.items():
            setattr(config, key, value)
        try:
            await self.js.update_stream(config)
        except nats.js.errors.BadRequestError as error:
            # Two replicas racing to apply the same change is harmless; anything else is not.
            current = (await self.js.stream_info(stream)).config
            if not all(getattr(current, key) == value for key, value in wanted.items()):
                raise error

    async def key_value(
        self,
        bucket: str,
        *,
        history: int = 1,
        ttl: float | None = None,
        replicas: int | None = None,
    ) -> KeyValue:
        """The KV bucket ``bucket`` (``scwadd-ratelimit``), created if missing, with this bus's
        replicas and KV limits (``ttl`` overrides their age), applied to an existing bucket too.

        Use ``kv.update(key, value, last=revision)`` for compare-and-set; it raises
        ``nats.js.errors.KeyWrongLastSequenceError`` when another replica won the race.
        """
        base = self.limits.key_values
        limits = StoreLimits(base.max_bytes, ttl or base.max_age, base.max_message_bytes)
        count = replicas or self.replicas
        try:
            kv = await self.js.key_value(bucket)
        except nats.js.errors.BucketNotFoundError:
            kv = await self.js.create_key_value(
                KeyValueConfig(
                    bucket=bucket,
                    history=history,
                    ttl=limits.max_age or None,
                    max_bytes=limits.max_bytes,
                    max_value_size=limits.max_message_bytes,
                    storage=StorageType.FILE,
                    replicas=count,
                )
            )
        await self._apply_limits(f"KV_{bucket}", limits, count)
        return kv


async def read_object(store: ObjectStore, name: str) -> bytes:
    """The whole object ``name``; raises ``nats.js.errors.ObjectNotFoundError`` if absent."""
    result = await store.get(name)
    return result.data or b""

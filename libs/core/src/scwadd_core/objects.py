"""The JetStream object store buckets (``scwadd-raw``, ``scwadd-exports``), as the services use
them: whole objects written and read by the fetcher and the exporter (:class:`ObjectBuckets`),
and, the way a file server needs them, entries with their modification time (nats-py leaves
``ObjectInfo.mtime`` empty) and objects streamed chunk by chunk, from an offset, instead of
loaded whole into memory.
"""

from __future__ import annotations

import asyncio
import base64
import json
import logging
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import UTC, datetime
from hashlib import sha256

import nats.js.errors
from nats.errors import TimeoutError as NatsTimeoutError
from nats.js import JetStreamContext
from nats.js.api import ObjectInfo
from nats.js.object_store import ObjectStore

from scwadd_core.bus import Bus, read_object

log = logging.getLogger(__name__)

# A put is tried this often when a chunk's ack times out (a busy server, several large
# documents at once) before the caller's message is handed back for redelivery.
PUT_ATTEMPTS = 4


class ObjectBuckets:
    """Whole objects in the bus's object store buckets. Each bucket is opened (created if
    missing, with the bus's replicas and limits: :meth:`Bus.object_store`) once, on first use
    or by :meth:`open`."""

    def __init__(self, bus: Bus) -> None:
        self.bus = bus
        self._stores: dict[str, ObjectStore] = {}

    async def open(self, bucket: str) -> ObjectStore:
        """The bucket's store, opened now if it was not yet."""
        if bucket not in self._stores:
            self._stores[bucket] = await self.bus.object_store(bucket)
        return self._stores[bucket]

    async def get(self, bucket: str, name: str) -> bytes:
        """The whole object; raises ``nats.js.errors.ObjectNotFoundError`` if absent."""
        return await read_object(await self.open(bucket), name)

    async def put(self, bucket: str, name: str, data: bytes) -> None:
        """Store ``data`` under ``name`` (a put under the same name replaces it). A chunk ack
        that times out is tried again a few times here (1 s, 2 s, 3 s apart) rather than
        costing the whole message a redelivery."""
        store = await self.open(bucket)
        for attempt in range(1, PUT_ATTEMPTS + 1):
            try:
                await store.put(name, data)
                return
            except NatsTimeoutError:
                if attempt == PUT_ATTEMPTS:
                    raise
                log.warning("storing an object timed out; trying again (%d)", attempt)
                await asyncio.sleep(attempt)


class ObjectIntegrityError(Exception):
    """The chunks read back do not match the object's recorded digest or size."""


@dataclass(frozen=True)
class ObjectEntry:
    name: str
    size: int
    modified: datetime
    digest: str  # "SHA-256=<base64url>", as the object store records it
    nuid: str

    @property
    def sha256_hex(self) -> str:
        encoded = self.digest.split("=", 1)[1] if "=" in self.digest else self.digest
        return base64.urlsafe_b64decode(encoded + "=" * (-len(encoded) % 4)).hex()


def _stream(bucket: str) -> str:
    return f"OBJ_{bucket}"


def _meta_subject(bucket: str, name: str) -> str:
    return f"$O.{bucket}.M.{base64.urlsafe_b64encode(name.encode()).decode()}"


async def object_entry(js: JetStreamContext, bucket: str, name: str) -> ObjectEntry:
    """The live entry for ``name``; raises ``nats.js.errors.ObjectNotFoundError`` if absent
    or deleted."""
    try:
        message = await js.get_last_msg(_stream(bucket), _meta_subject(bucket, name))
    except nats.js.errors.NotFoundError:
        raise nats.js.errors.ObjectNotFoundError from None
    info = ObjectInfo.from_response(json.loads(message.data or b"{}"))
    if info.deleted or not info.nuid:
        raise nats.js.errors.ObjectNotFoundError
    return ObjectEntry(
        name=info.name,
        size=info.size or 0,
        modified=message.time or datetime.fromtimestamp(0, UTC),
        digest=info.digest or "",
        nuid=info.nuid,
    )


async def list_entries(js: JetStreamContext, bucket: str) -> list[ObjectEntry]:
    """Every live object in ``bucket``, newest first."""
    store = await js.object_store(bucket)
    try:
        infos = await store.list(ignore_deletes=True)
    except nats.js.errors.NotFoundError:  # an empty bucket answers "no objects"
        return []
    entries = []
    for info in infos:
        try:
            entries.append(await object_entry(js, bucket, info.name))
        except nats.js.errors.ObjectNotFoundError:
            continue  # deleted between the two reads
    return sorted(entries, key=lambda e: (e.modified, e.name), reverse=True)


async def stream_object(
    js: JetStreamContext,
    bucket: str,
    entry: ObjectEntry,
    *,
    start: int = 0,
    end: int | None = None,
) -> AsyncIterator[bytes]:
    """Yield bytes ``start``..``end`` (inclusive) of ``entry``, chunk by chunk.

    When the whole object is read, its SHA-256 is checked against the recorded digest before
    the last chunk is released, and :class:`ObjectIntegrityError` raised on a mismatch: a caller
    streaming an HTTP response aborts it, and the client sees a truncated download rather than
    a complete-looking wrong file.
    """
    last = entry.size - 1 if end is None else min(end, entry.size - 1)
    if entry.size == 0 or start > last:
        return
    whole = start == 0 and last == entry.size - 1
    digest = sha256()
    offset = 0
    held_back: bytes | None = None  # the whole object's last chunk waits for the digest check
    subscription = await js.subscribe(f"$O.{bucket}.C.{entry.nuid}", ordered_consumer=True)
    try:
        async for message in subscription.messages:
            chunk = message.data
            chunk_start, chunk_end = offset, offset + len(chunk) - 1
            offset += len(chunk)
            if whole:
                digest.update(chunk)
                if held_back is not None:
                    yield held_back
                held_back = chunk
            elif chunk_end >= start and chunk_start <= last:
                yield chunk[max(start - chunk_start, 0) : last - chunk_start + 1]
            if message.metadata.num_pending == 0 or (chunk_end >= last and not whole):
                break
    finally:
        await subscription.unsubscribe()
    if whole:
        if offset != entry.size:
            raise ObjectIntegrityError(f"{entry.name}: read {offset} bytes of {entry.size}")
        if entry.digest and digest.hexdigest() != entry.sha256_hex:
            raise ObjectIntegrityError(f"{entry.name}: SHA-256 does not match the stored digest")
        if held_back is not None:
            yield held_back

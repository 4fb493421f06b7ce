"""Reading the JetStream object store the way a file server needs to: entries with their
modification time (nats-py leaves ``ObjectInfo.mtime`` empty), and objects streamed chunk by
chunk, from an offset, instead of loaded whole into memory.
"""

from __future__ import annotations

import base64
import json
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import UTC, datetime
from hashlib import sha256

import nats.js.errors
from nats.js import JetStreamContext
from nats.js.api import ObjectInfo


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

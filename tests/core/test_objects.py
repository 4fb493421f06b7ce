"""Object store reads for the file server: entries with times, ranged streaming, integrity."""

from __future__ import annotations

import base64
import json
import os
from collections.abc import AsyncIterator

import nats.js.errors
import pytest
from scwadd_core.bus import Bus
from scwadd_core.events import EXPORTS_BUCKET, RAW_BUCKET
from scwadd_core.objects import (
    ObjectBuckets,
    ObjectIntegrityError,
    list_entries,
    object_entry,
    stream_object,
)

pytestmark = pytest.mark.anyio

BODY = os.urandom(300_000)  # three 128 KiB chunks


@pytest.fixture
async def bus(nats_server: str) -> AsyncIterator[Bus]:
    bus = await Bus.connect(nats_server, name="objects")
    store = await bus.object_store(EXPORTS_BUCKET)
    await store.put("a.csv", BODY)
    await store.put("empty.csv", b"")
    yield bus
    await bus.close()


async def read(bus: Bus, name: str, start: int = 0, end: int | None = None) -> bytes:
    entry = await object_entry(bus.js, EXPORTS_BUCKET, name)
    return b"".join(
        [c async for c in stream_object(bus.js, EXPORTS_BUCKET, entry, start=start, end=end)]
    )


async def test_entries_carry_size_time_and_digest(bus: Bus) -> None:
    entries = await list_entries(bus.js, EXPORTS_BUCKET)
    assert [e.name for e in entries] == ["empty.csv", "a.csv"]  # newest first
    a = entries[1]
    import hashlib

    assert a.size == len(BODY) and a.sha256_hex == hashlib.sha256(BODY).hexdigest()
    assert a.modified.tzinfo is not None


@pytest.mark.parametrize(
    ("start", "end"),
    [(0, None), (0, 0), (10, 19), (131071, 131072), (262144, None), (299_999, None), (5, 10**9)],
)
async def test_ranges_across_chunk_boundaries(bus: Bus, start: int, end: int | None) -> None:
    expected = BODY[start : (end + 1 if end is not None else None)]
    assert await read(bus, "a.csv", start, end) == expected


async def test_empty_objects_and_deleted_ones(bus: Bus) -> None:
    assert await read(bus, "empty.csv") == b""
    store = await bus.object_store(EXPORTS_BUCKET)
    await store.delete("a.csv")
    assert [e.name for e in await list_entries(bus.js, EXPORTS_BUCKET)] == ["empty.csv"]
    import nats.js.errors

    with pytest.raises(nats.js.errors.ObjectNotFoundError):
        await object_entry(bus.js, EXPORTS_BUCKET, "a.csv")


async def test_a_digest_mismatch_withholds_the_last_chunk(bus: Bus) -> None:
    entry = await object_entry(bus.js, EXPORTS_BUCKET, "a.csv")
    meta_subject = f"$O.{EXPORTS_BUCKET}.M.{base64.urlsafe_b64encode(b'a.csv').decode()}"
    stored = await bus.js.get_last_msg(f"OBJ_{EXPORTS_BUCKET}", meta_subject)
    meta = json.loads(stored.data or b"{}")
    meta["digest"] = "SHA-256=" + base64.urlsafe_b64encode(bytes(32)).decode()
    await bus.js.publish(meta_subject, json.dumps(meta).encode(), headers={"Nats-Rollup": "sub"})
    tampered = await object_entry(bus.js, EXPORTS_BUCKET, "a.csv")
    assert tampered.nuid == entry.nuid and tampered.digest != entry.digest
    received = b""
    with pytest.raises(ObjectIntegrityError, match="SHA-256 does not match"):
        async for chunk in stream_object(bus.js, EXPORTS_BUCKET, tampered):
            received += chunk
    assert len(received) < len(BODY)  # the client never gets a complete-looking file


async def test_object_buckets_write_and_read_whole_objects(bus: Bus) -> None:
    buckets = ObjectBuckets(bus)
    await buckets.put(RAW_BUCKET, "job-1/usagepoint-0/0-86400.xml", BODY)
    await buckets.put(RAW_BUCKET, "job-1/usagepoint-0/0-86400.xml", b"replaced")
    assert await buckets.get(RAW_BUCKET, "job-1/usagepoint-0/0-86400.xml") == b"replaced"
    assert await buckets.get(EXPORTS_BUCKET, "a.csv") == BODY
    with pytest.raises(nats.js.errors.ObjectNotFoundError):
        await buckets.get(EXPORTS_BUCKET, "absent.csv")

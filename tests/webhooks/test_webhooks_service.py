"""The webhooks service end to end in-process: real nats-server, real database (SQLite and
PostgreSQL), real HTTP to a receiver that verifies with the standardwebhooks library."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from typing import Any

import httpx
import pytest
from scwadd_core.bus import Bus
from scwadd_core.events import ExportCompleted, GrantRevoked, stable_event_id
from scwadd_testing import free_port
from scwadd_testing.service import serving
from scwadd_webhooks.runtime import main
from scwadd_webhooks.settings import WebhookSettings
from webhooks_support import NEW_SECRET, OLD_SECRET, Receiver

pytestmark = pytest.mark.anyio


def settings_for(nats_url: str, database_url: str, endpoint: str, **extra: Any) -> WebhookSettings:
    values: dict[str, Any] = {
        "NATS_URL": nats_url,
        "DATABASE_URL": database_url,
        "HTTP_HOST": "127.0.0.1",
        "HTTP_PORT": free_port(),
        "WEBHOOK_ENDPOINTS": endpoint,
        # The old secret first, the new one beside it: a rotation in progress.
        "WEBHOOK_SECRETS": f"{OLD_SECRET},{NEW_SECRET}",
        "WEBHOOK_ALLOWED_NETWORKS": "127.0.0.0/8",
        "WEBHOOK_BACKOFF_SECONDS": 0.05,
        "WEBHOOK_BACKOFF_MAX_SECONDS": 0.2,
        "WEBHOOK_INTERVAL_SECONDS": 0.05,
        **extra,
    }
    return WebhookSettings(**values)


@asynccontextmanager
async def running(settings: WebhookSettings) -> AsyncIterator[str]:
    base = f"http://127.0.0.1:{settings.HTTP_PORT}"
    async with serving(lambda stop: main(settings, stop=stop), base + "/readyz", name="webhooks"):
        yield base


async def publish_three(nats_url: str) -> None:
    bus = await Bus.connect(nats_url, name="test")
    try:
        await bus.ensure_streams()
        await bus.publish(
            ExportCompleted(
                event_id=stable_event_id("job-1", "export.completed"),
                job_id="job-1",
                csv_object="sub-1.csv",
                manifest_object="sub-1.manifest.json",
                rows=35040,
            )
        )
        await bus.publish(GrantRevoked(job_id="job-1", outcome="revoked"))
        await bus.publish(
            GrantRevoked(job_id="job-2", outcome="failed", reason="the custodian kept failing")
        )
    finally:
        await bus.close()


async def until(predicate: Callable[[], bool], timeout: float = 60.0) -> None:
    deadline = asyncio.get_running_loop().time() + timeout
    while not predicate():
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError("condition not met in time")
        await asyncio.sleep(0.05)


async def deliveries(base: str, **params: str) -> dict[str, Any]:
    async with httpx.AsyncClient() as client:
        answer = await client.get(base + "/deliveries", params=params)
    answer.raise_for_status()
    result: dict[str, Any] = answer.json()
    return result


async def test_each_event_arrives_signed_once_per_id_after_retries(
    nats_server: str, database_url: str
) -> None:
    # The receiver still has only the NEW secret: the OLD one signs beside it (rotation).
    receiver = Receiver(secret=NEW_SECRET, failures_per_id=2)
    server, endpoint = receiver.serve()
    try:
        settings = settings_for(nats_server, database_url, endpoint)
        async with running(settings) as base:
            await publish_three(nats_server)
            await until(lambda: len(receiver.verified) == 3)
            listing = await deliveries(base, state="delivered")
    finally:
        server.shutdown()
    assert receiver.types() == ["export.ready", "grant.flagged", "grant.revoked"]
    # Three attempts per id (two 500s, then accepted), the same webhook-id on each retry.
    assert sorted(receiver.attempts.values()) == [3, 3, 3]
    assert receiver.bad_signatures == 0
    ready = next(p for p in receiver.verified.values() if p["type"] == "export.ready")
    assert ready["data"] == {
        "job_id": "job-1",
        "csv_object": "sub-1.csv",
        "manifest_object": "sub-1.manifest.json",
        "rows": 35040,
    }
    flagged = next(p for p in receiver.verified.values() if p["type"] == "grant.flagged")
    assert flagged["data"] == {"job_id": "job-2", "reason": "the custodian kept failing"}
    assert listing["counts"]["delivered"] == 3
    # The endpoint's path and query (the receiver's token) are never shown, only its origin.
    assert {d["endpoint"] for d in listing["deliveries"]} == {endpoint.split("/hooks")[0]}
    assert all(d["attempts"] == 3 for d in listing["deliveries"])


async def test_a_receiver_with_only_the_old_secret_still_verifies(
    nats_server: str, sqlite_url: str
) -> None:
    receiver = Receiver(secret=OLD_SECRET)
    server, endpoint = receiver.serve()
    try:
        async with running(settings_for(nats_server, sqlite_url, endpoint)):
            await publish_three(nats_server)
            await until(lambda: len(receiver.verified) == 3)
    finally:
        server.shutdown()
    assert receiver.bad_signatures == 0


async def test_loopback_is_refused_unless_the_operator_allows_it(
    nats_server: str, sqlite_url: str
) -> None:
    receiver = Receiver()
    server, endpoint = receiver.serve()
    try:
        settings = settings_for(nats_server, sqlite_url, endpoint, WEBHOOK_ALLOWED_NETWORKS="")
        async with running(settings) as base:
            await publish_three(nats_server)

            async def failed() -> int:
                return int((await deliveries(base))["counts"]["failed"])

            deadline = asyncio.get_running_loop().time() + 60
            while await failed() < 3:
                assert asyncio.get_running_loop().time() < deadline, "not refused in time"
                await asyncio.sleep(0.05)
            listing = await deliveries(base, state="failed")
    finally:
        server.shutdown()
    assert receiver.paths == [], "no request may reach a loopback address"
    assert all("not a public address" in d["last_error"] for d in listing["deliveries"])
    assert all(d["attempts"] == 1 for d in listing["deliveries"])


async def test_redirects_are_not_followed_and_the_window_ends_in_failed(
    nats_server: str, sqlite_url: str
) -> None:
    receiver = Receiver(redirect=True)
    server, endpoint = receiver.serve()
    try:
        # A 2-second window: the message is retried, then failed.
        settings = settings_for(nats_server, sqlite_url, endpoint, WEBHOOK_RETRY_HOURS=2 / 3600)
        async with running(settings) as base:
            await publish_three(nats_server)

            async def counts() -> dict[str, int]:
                return dict((await deliveries(base))["counts"])

            deadline = asyncio.get_running_loop().time() + 60
            while (await counts())["failed"] < 3:
                assert asyncio.get_running_loop().time() < deadline, "never failed"
                await asyncio.sleep(0.1)
            listing = await deliveries(base, state="failed")
    finally:
        server.shutdown()
    assert "/elsewhere" not in receiver.paths
    assert all(path.startswith("/hooks/scwadd") for path in receiver.paths)
    assert all(d["last_status"] == 302 for d in listing["deliveries"])
    assert all(d["attempts"] >= 2 for d in listing["deliveries"]), "retried before failing"
    assert receiver.verified == {}

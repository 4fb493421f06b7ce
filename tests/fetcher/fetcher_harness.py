"""The fetcher under test, against the real sandbox (mutual TLS) and a real nats-server.

The fetcher runs in the test's event loop (so two instances and short timeouts are cheap) but
otherwise exactly as `scwadd fetcher` runs: its own NATS connection, its HTTPS server for
``/espi/notify`` (the sandbox POSTs to it), migrations, the shared rate limit in JetStream KV.
"""

from __future__ import annotations

import asyncio
import contextlib
import ssl
import uuid
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from typing import Any, TypeVar

from custodian_support import custodian_settings
from lxml import etree
from scwadd_core.bus import Bus, read_object
from scwadd_core.custodian import TokenResponse
from scwadd_core.db import make_engine, session_factory
from scwadd_core.events import (
    FETCH_COMPLETED,
    FETCH_FAILED,
    RAW_BUCKET,
    Event,
    FetchCompleted,
    GrantReceived,
    decode,
)
from scwadd_core.sealing import Keyring
from scwadd_fetcher.runtime import main
from scwadd_fetcher.settings import FetcherSettings
from scwadd_sandbox.testing import RunningSandbox
from scwadd_testing.service import serving
from sqlalchemy.orm import Session

ESPI = "http://naesb.org/espi"

T = TypeVar("T")


def fetcher_settings(
    sandbox: RunningSandbox,
    *,
    nats_url: str,
    database_url: str,
    port: int,
    sealing_keys: str,
    **overrides: Any,
) -> FetcherSettings:
    values: dict[str, Any] = {
        "NATS_URL": nats_url,
        "DATABASE_URL": database_url,
        "HTTP_HOST": "127.0.0.1",
        "HTTP_PORT": port,
        "TLS_CERT_FILE": sandbox.pki.server_cert,
        "TLS_KEY_FILE": sandbox.pki.server_key,
        **custodian_settings(sandbox),
        "PGE_API_BASE": sandbox.espi_base,
        "TOKEN_SEALING_KEYS": sealing_keys,
        "RATE_LIMIT_PER_SECOND": 50.0,
        "FETCH_RETRY_INITIAL_SECONDS": 0.05,
        "FETCH_RETRY_MAX_SECONDS": 0.2,
        "BATCH_NOTIFICATION_TIMEOUT_SECONDS": 20.0,
        # The per-UsagePoint path (calls under the customer's token); the Bulk and subscription
        # tests ask for theirs.
        "BATCH_SCOPE": "usagepoint",
    }
    values.update(overrides)
    return FetcherSettings(**values)


@contextlib.asynccontextmanager
async def running_fetcher(settings: FetcherSettings) -> AsyncIterator[None]:
    """The fetcher's ``main`` for the block, once its ``/readyz`` answers."""
    context = ssl.create_default_context(cafile=str(settings.PGE_CA_FILE))
    url = f"https://127.0.0.1:{settings.HTTP_PORT}/readyz"
    serve = serving(
        lambda stop: main(settings, stop=stop),
        url,
        name="the fetcher",
        verify=context,
        stop_timeout=60,
    )
    async with serve:
        yield


def in_database(database_url: str, work: Callable[[Session], T]) -> T:
    """Run ``work`` (e.g. a :mod:`scwadd_fetcher.ledger` function) in one transaction on the
    fetcher's database, over the test's own connection."""
    engine = make_engine(database_url)
    try:
        with session_factory(engine).begin() as session:
            return work(session)
    finally:
        engine.dispose()


@dataclass
class Observer:
    """The test's own view of the bus: publishes grants, collects the fetcher's outcomes."""

    bus: Bus
    outcomes: dict[str, asyncio.Future[Event]] = field(default_factory=dict)
    all_outcomes: list[Event] = field(default_factory=list)

    async def start(self) -> None:
        async def collect(msg: Any) -> None:
            event = decode(msg.subject, msg.data)
            self.all_outcomes.append(event)
            job_id = getattr(event, "job_id", "")
            future = self.outcomes.setdefault(job_id, asyncio.get_running_loop().create_future())
            if not future.done():
                future.set_result(event)

        await self.bus.nc.subscribe(FETCH_COMPLETED, cb=collect)
        await self.bus.nc.subscribe(FETCH_FAILED, cb=collect)
        await self.bus.nc.flush()

    async def publish_grant(
        self,
        tokens: TokenResponse,
        keyring: Keyring,
        job_id: str | None = None,
        *,
        resource_uri: str | None = None,
    ) -> GrantReceived:
        """The grant auth would publish for ``tokens``; ``resource_uri`` replaces the token
        answer's in the event (its ``subscription_id`` stays the token answer's)."""
        job_id = job_id or uuid.uuid4().hex
        assert tokens.resource_uri and tokens.authorization_uri
        grant = GrantReceived(
            job_id=job_id,
            subscription_id=tokens.resource_uri.rstrip("/").rsplit("/", 1)[-1],
            resource_uri=resource_uri or tokens.resource_uri,
            authorization_uri=tokens.authorization_uri,
            scope=tokens.scope or "",
            access_token=keyring.seal(tokens.access_token, job_id=job_id),
            refresh_token=(
                keyring.seal(tokens.refresh_token, job_id=job_id) if tokens.refresh_token else None
            ),
        )
        self.outcomes.setdefault(job_id, asyncio.get_running_loop().create_future())
        await self.bus.publish(grant)
        return grant

    async def outcome(self, job_id: str, timeout: float = 120.0) -> Event:
        future = self.outcomes.setdefault(job_id, asyncio.get_running_loop().create_future())
        return await asyncio.wait_for(asyncio.shield(future), timeout)

    async def raw_documents(self, names: list[str]) -> list[bytes]:
        store = await self.bus.object_store(RAW_BUCKET)
        return [await read_object(store, name) for name in names]


def readings_in(documents: list[bytes]) -> set[tuple[int, int]]:
    """(start, value) of every IntervalReading in the documents, read with a plain tree walk."""
    found: set[tuple[int, int]] = set()
    for body in documents:
        root = etree.fromstring(body)
        for reading in root.iter(f"{{{ESPI}}}IntervalReading"):
            start = reading.findtext(f"{{{ESPI}}}timePeriod/{{{ESPI}}}start")
            value = reading.findtext(f"{{{ESPI}}}value")
            assert start is not None and value is not None
            found.add((int(start), int(value)))
    return found


def truth(
    sandbox: RunningSandbox, subscription_id: str, start: int, end: int
) -> set[tuple[int, int]]:
    answer = sandbox.admin.get(
        "/admin/truth",
        params={"start": str(start), "end": str(end), "subscription_id": subscription_id},
    )
    assert answer.status_code == 200, answer.text
    return {
        (reading["start"], reading["value"])
        for point in answer.json()["usage_points"]
        for meter in point["meter_readings"]
        for reading in meter["readings"]
    }


async def assert_equals_truth(
    sandbox: RunningSandbox, observer: Observer, grant: GrantReceived, outcome: Event
) -> None:
    """The fetch completed, and its stored documents hold exactly the sandbox's readings."""
    assert isinstance(outcome, FetchCompleted), outcome
    documents = await observer.raw_documents(outcome.raw_objects)
    start, end = int(outcome.period_start.timestamp()), int(outcome.period_end.timestamp())
    assert readings_in(documents) == truth(sandbox, grant.subscription_id, start, end)


def calls_for(sandbox: RunningSandbox, authorization_uri: str) -> dict[str, int]:
    """The sandbox's own count of ESPI calls made under this authorization (token calls are
    not ESPI calls and are not counted)."""
    authorization_id = authorization_uri.rstrip("/").rsplit("/", 1)[-1]
    report = sandbox.admin.get("/admin/calls").json()
    return dict(report["by_authorization"].get(authorization_id, {}))


def client_calls(sandbox: RunningSandbox) -> dict[str, int]:
    """The sandbox's count of calls made with our client token (Bulk, Authorization, ...) and to
    the token endpoint, by endpoint."""
    report = sandbox.admin.get("/admin/calls").json()
    return dict(report["by_client"].get(sandbox.client_id, {}))

"""The fetcher under test, against the real sandbox (mutual TLS) and a real nats-server.

The fetcher runs in the test's event loop (so two instances and short timeouts are cheap) but
otherwise exactly as `scwadd fetcher` runs: its own NATS connection, its HTTPS server for
``/espi/notify`` (the sandbox POSTs to it), migrations, the shared rate limit in JetStream KV.
"""

from __future__ import annotations

import asyncio
import contextlib
import re
import ssl
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any

import httpx
from lxml import etree
from scwadd_core.bus import Bus, read_object
from scwadd_core.custodian import Custodian, CustodianConfig, TokenResponse
from scwadd_core.events import (
    FETCH_COMPLETED,
    FETCH_FAILED,
    RAW_BUCKET,
    Event,
    GrantReceived,
    decode,
)
from scwadd_core.sealing import Keyring
from scwadd_fetcher.runtime import FetcherRuntime, build
from scwadd_fetcher.settings import FetcherSettings
from scwadd_sandbox.testing import RunningSandbox

YEAR = 365 * 86400
ESPI = "http://naesb.org/espi"


def custodian_config(sandbox: RunningSandbox) -> CustodianConfig:
    return CustodianConfig(
        client_id=sandbox.client_id,
        client_secret=sandbox.client_secret,
        client_cert_file=sandbox.pki.client_cert,
        client_key_file=sandbox.pki.client_key,
        token_url=sandbox.token_url,
        ca_file=sandbox.pki.ca_cert,
    )


def consent_code(sandbox: RunningSandbox, profile: str, history: int = YEAR) -> str:
    """The customer clicks through the sandbox's consent page (real HTTPS form posts)."""
    with sandbox.web_client() as web:
        page = web.get(
            "/myAuthorization",
            params={
                "client_id": sandbox.client_id,
                "redirect_uri": sandbox.redirect_uri,
                "response_type": "code",
                "state": "fetcher-test",
            },
        )
        assert page.status_code == 200, page.text
        match = re.search(r'name="request_id" value="([^"]+)"', page.text)
        assert match is not None
        customer = next(c for c in sandbox.state.customers if c.profile == profile)
        answer = web.post(
            "/myAuthorization",
            data={
                "request_id": match.group(1),
                "decision": "approve",
                "customer": customer.retail_customer_id,
                "history": str(history),
            },
        )
    assert answer.status_code == 302, answer.text
    return httpx.URL(answer.headers["location"]).params["code"]


async def grant_tokens(sandbox: RunningSandbox, profile: str) -> TokenResponse:
    code = consent_code(sandbox, profile)
    async with Custodian(custodian_config(sandbox)) as custodian:
        return await custodian.exchange_code(code, sandbox.redirect_uri)


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
        "PGE_CLIENT_ID": sandbox.client_id,
        "PGE_CLIENT_SECRET": sandbox.client_secret,
        "PGE_CLIENT_CERT_FILE": sandbox.pki.client_cert,
        "PGE_CLIENT_KEY_FILE": sandbox.pki.client_key,
        "PGE_CA_FILE": sandbox.pki.ca_cert,
        "PGE_TOKEN_URL": sandbox.token_url,
        "PGE_API_BASE": sandbox.espi_base,
        "TOKEN_SEALING_KEYS": sealing_keys,
        "RATE_LIMIT_PER_SECOND": 50.0,
        "FETCH_RETRY_INITIAL_SECONDS": 0.05,
        "FETCH_RETRY_MAX_SECONDS": 0.2,
        "BATCH_NOTIFICATION_TIMEOUT_SECONDS": 20.0,
    }
    values.update(overrides)
    return FetcherSettings(**values)


@contextlib.asynccontextmanager
async def running_fetcher(settings: FetcherSettings) -> AsyncIterator[FetcherRuntime]:
    runtime = await build(settings)
    stop = asyncio.Event()
    task = asyncio.create_task(runtime.serve(stop))
    context = ssl.create_default_context(cafile=str(settings.PGE_CA_FILE))
    url = f"https://127.0.0.1:{settings.HTTP_PORT}/readyz"
    async with httpx.AsyncClient(verify=context) as client:
        for _ in range(200):
            if task.done():
                raise RuntimeError(f"the fetcher stopped at start: {task.result()}")
            with contextlib.suppress(httpx.HTTPError):
                if (await client.get(url)).status_code == 200:
                    break
            await asyncio.sleep(0.05)
        else:
            raise RuntimeError("the fetcher never became ready")
    try:
        yield runtime
    finally:
        stop.set()
        await asyncio.wait_for(task, 60)


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
        self, tokens: TokenResponse, keyring: Keyring, job_id: str | None = None
    ) -> GrantReceived:
        job_id = job_id or uuid.uuid4().hex
        assert tokens.resource_uri and tokens.authorization_uri
        grant = GrantReceived(
            job_id=job_id,
            subscription_id=tokens.resource_uri.rstrip("/").rsplit("/", 1)[-1],
            resource_uri=tokens.resource_uri,
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


def calls_for(sandbox: RunningSandbox, authorization_uri: str) -> dict[str, int]:
    """The sandbox's own count of ESPI calls made under this authorization (token calls are
    not ESPI calls and are not counted)."""
    authorization_id = authorization_uri.rstrip("/").rsplit("/", 1)[-1]
    report = sandbox.admin.get("/admin/calls").json()
    return dict(report["by_authorization"].get(authorization_id, {}))

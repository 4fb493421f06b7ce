"""Helpers for the exporter tests: a real grant from the sandbox, its raw documents, the service
run in-process, and the sandbox's ground truth in the CSV's units."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

import httpx
from custodian_support import custodian_config, custodian_settings, grant_tokens
from scwadd_core.custodian import Custodian, TokenResponse, bearer
from scwadd_exporter.runtime import main
from scwadd_exporter.settings import ExporterSettings
from scwadd_sandbox.testing import RunningSandbox
from scwadd_testing.service import serving

DAY = 86400


def exporter_settings(
    sandbox: RunningSandbox, nats_url: str, database_url: str, port: int, **extra: Any
) -> ExporterSettings:
    return ExporterSettings(
        NATS_URL=nats_url,
        DATABASE_URL=database_url,
        HTTP_HOST="127.0.0.1",
        HTTP_PORT=port,
        **custodian_settings(sandbox),
        REVOKE_BACKOFF_SECONDS=0.01,
        REVOKE_BACKOFF_MAX_SECONDS=0.05,
        **extra,
    )


@dataclass
class SandboxGrant:
    tokens: TokenResponse
    subscription_id: str
    authorization_id: str
    usage_points: list[str]


async def obtain_grant(sandbox: RunningSandbox, profile: str, share: str = "all") -> SandboxGrant:
    """A customer of ``profile`` approves on the sandbox's consent form (sharing ``share``); we
    exchange the code."""
    customer = next(c for c in sandbox.state.customers if c.profile == profile)
    tokens = await grant_tokens(sandbox, profile, state="exporter-test", share=share)
    assert tokens.authorization_uri and tokens.resource_uri
    record = next(
        r
        for r in sandbox.state.authorizations.values()
        if tokens.authorization_uri.endswith(r.authorization_id)
    )
    return SandboxGrant(
        tokens=tokens,
        subscription_id=record.subscription_id,
        authorization_id=record.authorization_id,
        usage_points=[p.usage_point_id for p in customer.service_points],
    )


async def fetch_raw(
    sandbox: RunningSandbox, grant: SandboxGrant, start: int, end: int
) -> list[bytes]:
    """One synchronous batch document per usage point, as the fetcher stores them."""
    documents = []
    async with Custodian(custodian_config(sandbox)) as custodian:
        for point in grant.usage_points:
            url = (
                f"{sandbox.espi_base}/Batch/Subscription/{grant.subscription_id}/UsagePoint/{point}"
            )
            response = await custodian.http.get(
                url,
                params={"published-min": str(start), "published-max": str(end)},
                headers=bearer(grant.tokens.access_token),
            )
            assert response.status_code == 200, response.text
            documents.append(response.content)
    return documents


def truth(
    sandbox: RunningSandbox, subscription_id: str, start: int, end: int
) -> dict[Any, Decimal]:
    """(usage point, interval start epoch, column) → value in the CSV's unit."""
    answer = sandbox.admin.get(
        "/admin/truth",
        params={"subscription_id": subscription_id, "start": str(start), "end": str(end)},
    )
    answer.raise_for_status()
    values: dict[Any, Decimal] = {}
    for point in answer.json()["usage_points"]:
        for meter in point["meter_readings"]:
            column = "received" if meter["flow_direction"] == 19 else "delivered"
            for reading in meter["readings"]:
                amount = Decimal(reading["value"]).scaleb(meter["power_of_ten_multiplier"])
                if meter["uom"] == 72:  # Wh → kWh, the default layout's unit
                    amount /= 1000
                values[(point["usage_point_id"], reading["start"], column)] = amount
    return values


@dataclass
class RunningExporter:
    url: str
    client: httpx.AsyncClient

    async def grants(self, status: str | None = None) -> list[dict[str, Any]]:
        params = {"status": status} if status else {}
        answer = await self.client.get("/grants", params=params)
        answer.raise_for_status()
        return list(answer.json()["grants"])

    async def wait_for(self, job_id: str, states: set[str], timeout: float = 60) -> dict[str, Any]:
        """Polls the operator endpoint until the grant reaches one of ``states``."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while loop.time() < deadline:
            for grant in await self.grants():
                if grant["job_id"] == job_id and grant["status"] in states:
                    return grant
            await asyncio.sleep(0.1)
        raise AssertionError(f"{job_id} never reached {states}: {await self.grants()}")


@contextlib.asynccontextmanager
async def running_exporter(settings: ExporterSettings) -> AsyncIterator[RunningExporter]:
    url = f"http://127.0.0.1:{settings.HTTP_PORT}"
    serve = serving(lambda stop: main(settings, stop=stop), f"{url}/readyz", name="the exporter")
    async with serve, httpx.AsyncClient(base_url=url) as client:
        yield RunningExporter(url=url, client=client)

"""The console shows what the customer shared besides the intervals: name and service addresses
in the list and on the export page, the bills with their reconciliation (warnings highlighted),
bills.csv among the downloads; the JSON API mirrors it. Real nats-server, real HTTP."""

from __future__ import annotations

import asyncio
from datetime import date
from typing import Any

import httpx
import pytest
from console_support import publish_exported_job
from files_support import OPERATOR, ConsoleServer
from lxml import html

pytestmark = pytest.mark.anyio
AUTH = httpx.BasicAuth(*OPERATOR)

PERIODS = [
    {
        "usage_point_id": "1111111111",
        "period_start_local": "2025-01-09T00:00:00-08:00",
        "period_end_local": "2025-02-09T00:00:00-08:00",
        "billed": "612.5",
        "interval": "612.5",
        "unit": "kWh",
        "difference_percent": "0",
        "status": "ok",
        "warning": None,
    },
    {
        "usage_point_id": "1111111111",
        "period_start_local": "2025-02-09T00:00:00-08:00",
        "period_end_local": "2025-03-09T00:00:00-08:00",
        "billed": "630",
        "interval": "600",
        "unit": "kWh",
        "difference_percent": "5",
        "status": "discrepancy",
        "warning": "usage point 1111111111, billing period 2025-02-09 to 2025-03-09: billed 630 "
        "kWh, intervals sum to 600 kWh (5% difference, over 1%)",
    },
]
MANIFEST: dict[str, Any] = {
    "customer": {
        "name": "Avery Quinn",
        "service_addresses": [
            {"usage_point_id": "1111111111", "address": "12 Alder St, Oakland, CA 94610"}
        ],
    },
    "bills_csv": "SUB-BILLS-2025-01-01-job-bill.bills.csv",
    "bills": {
        "count": 2,
        "total_bill_amount": "301.23456",
        "currency": "USD",
        "tariffs": ["E-TOU-C"],
    },
    "reconciliation": {
        "tolerance_percent": "1",
        "periods": PERIODS,
        "warnings": [PERIODS[1]["warning"]],
        "discrepancies": 1,
    },
    "missing_resources": [
        "the customer's details (RetailCustomer): refused by the utility (HTTP 403)",
    ],
}


async def _job(client: httpx.AsyncClient, url: str, job_id: str) -> dict[str, Any]:
    deadline = asyncio.get_running_loop().time() + 60
    while True:
        answer = await client.get(f"{url}/api/jobs/{job_id}", auth=AUTH)
        if answer.status_code == 200 and answer.json()["state"] == "exported":
            return answer.json()
        assert asyncio.get_running_loop().time() < deadline, answer.text
        await asyncio.sleep(0.2)


async def test_customer_details_and_bills_on_the_console_and_api(
    console_server: ConsoleServer,
) -> None:
    bus, url = console_server.bus, console_server.url
    await publish_exported_job(
        bus, "job-bills-0001", "SUB-BILLS", first=date(2025, 1, 1), days=3, manifest_extra=MANIFEST
    )
    await publish_exported_job(bus, "job-plain-0002", "SUB-PLAIN", first=date(2025, 1, 1), days=3)
    async with httpx.AsyncClient(timeout=30) as client:
        job = await _job(client, url, "job-bills-0001")
        assert job["customer_name"] == "Avery Quinn"
        assert job["service_addresses"][0]["address"] == "12 Alder St, Oakland, CA 94610"
        assert job["bills"]["bills"]["total_bill_amount"] == "301.23456"
        assert [p["status"] for p in job["bills"]["reconciliation"]["periods"]] == [
            "ok",
            "discrepancy",
        ]
        assert job["links"]["bills_csv"] == "/output/" + MANIFEST["bills_csv"]
        plain = await _job(client, url, "job-plain-0002")
        assert plain["customer_name"] is None and plain["bills"] is None
        assert "bills_csv" not in plain["links"]

        page = html.fromstring(
            (await client.get(f"{url}/console/jobs/job-bills-0001", auth=AUTH)).text
        )
        summary = page.get_element_by_id("bills-summary").text_content()
        assert "2 billing period(s)" in summary and "301.23456 USD" in summary
        rows = page.get_element_by_id("reconciliation").findall(".//tbody/tr")
        assert [r.get("class") for r in rows] == ["", "warning"]
        assert "630" in rows[1].text_content() and "600" in rows[1].text_content()
        warnings = page.get_element_by_id("bill-warnings").getparent().text_content()
        assert "5% difference" in warnings
        missing = page.get_element_by_id("bill-missing").getparent().text_content()
        assert "Granted but not received (1)" in missing and "HTTP 403" in missing
        assert job["bills"]["missing"] == MANIFEST["missing_resources"]
        assert "Avery Quinn" in page.text_content()
        assert "12 Alder St, Oakland, CA 94610" in page.text_content()
        hrefs = [a.get("href") for a in page.iter("a")]
        assert "/output/" + MANIFEST["bills_csv"] in hrefs

        listing = await client.get(f"{url}/console/", params={"q": "avery"}, auth=AUTH)
        assert listing.status_code == 200
        assert "Avery Quinn" in listing.text and "SUB-PLAIN" not in listing.text
        assert "12 Alder St" in listing.text

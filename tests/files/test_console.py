"""The operator's console and its JSON API against a real nats-server: the read model folds the
events other services publish; the numbers shown are the CSV's; downloads, needs-action and the
CSRF-protected, audited "revoke again" (a command on the bus, for the exporter)."""

from __future__ import annotations

import asyncio
import csv
import io
import re
from collections import defaultdict
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from typing import Any

import httpx
import pytest
from console_support import publish_exported_job, publish_failed_job
from files_support import OPERATOR, ConsoleServer
from scwadd_core.events import GRANT_REVOKE_REQUESTED, decode

pytestmark = pytest.mark.anyio
AUTH = httpx.BasicAuth(*OPERATOR)


async def wait_for_jobs(client: httpx.AsyncClient, url: str, count: int, **params: Any) -> dict:
    deadline = asyncio.get_running_loop().time() + 60
    while True:
        answer = await client.get(url + "/api/jobs", params=params, auth=AUTH)
        assert answer.status_code == 200, answer.text
        body = answer.json()
        done = [j for j in body["jobs"] if j["state"] in ("exported", "failed")]
        settled = all(j["grant_state"] != "active" for j in body["jobs"])
        if len(done) >= count and settled:
            return body
        assert asyncio.get_running_loop().time() < deadline, body
        await asyncio.sleep(0.2)


def csv_figures(data: bytes) -> dict[str, Any]:
    """What a spreadsheet makes of the default CSV: totals, per-day sums, peak, estimated."""
    rows = list(csv.DictReader(io.StringIO(data.decode())))
    kwh = [r for r in rows if r["unit"] == "kWh"]
    gas = [r for r in rows if r["unit"] == "therms"]
    daily: dict[str, Decimal] = defaultdict(Decimal)
    for r in kwh:
        if r["delivered"]:
            daily[r["interval_start_local"][:10]] += Decimal(r["delivered"])
    peak = max(kwh, key=lambda r: Decimal(r["delivered"] or "0"))
    return {
        "delivered": sum((Decimal(r["delivered"]) for r in kwh if r["delivered"]), Decimal(0)),
        "received": sum((Decimal(r["received"]) for r in kwh if r["received"]), Decimal(0)),
        "therms": sum((Decimal(r["delivered"]) for r in gas if r["delivered"]), Decimal(0)),
        "daily": dict(daily),
        "peak": (Decimal(peak["delivered"]), peak["interval_start_local"]),
        "estimated": sum("estimated" in r["quality"] for r in rows) / len(rows),
        "rows": len(rows),
    }


async def test_console_shows_each_job_with_the_csv_numbers(console_server: ConsoleServer) -> None:
    bus, url = console_server.bus, console_server.url
    now = datetime.now(UTC)
    full, _ = await publish_exported_job(
        bus,
        "job-full-0001",
        "SUB-FULL",
        first=date(2025, 1, 1),
        days=20,
        promised_days=20,
        consented=now - timedelta(hours=3),
    )
    await publish_exported_job(
        bus,
        "job-short-0002",
        "SUB-SHORT",
        first=date(2025, 3, 1),
        days=10,
        promised_days=365,
        consented=now - timedelta(hours=2),
        gas=False,
    )
    await publish_exported_job(
        bus,
        "job-flag-0003",
        "SUB-FLAGGED",
        first=date(2025, 2, 1),
        days=5,
        promised_days=5,
        consented=now - timedelta(hours=1),
        revoked="failed",
        reason="the utility refused the revocation (HTTP 400)",
    )
    await publish_failed_job(bus, "job-fail-0004", "SUB-FAILED", "the utility refused access")
    async with httpx.AsyncClient(timeout=30) as client:
        body = await wait_for_jobs(client, url, 4)
        jobs = {j["job_id"]: j for j in body["jobs"]}
        assert body["total"] == 4
        # Newest consent first.
        assert body["jobs"][0]["job_id"] == "job-fail-0004"

        figures = csv_figures(full)
        job = jobs["job-full-0001"]
        assert Decimal(job["delivered_kwh"]) == figures["delivered"]
        assert Decimal(job["received_kwh"]) == figures["received"]
        assert Decimal(job["therms"]) == figures["therms"]
        assert (
            Decimal(job["peak_interval"]["kwh"]),
            job["peak_interval"]["start_local"],
        ) == figures["peak"]
        assert job["estimated_share"] == pytest.approx(figures["estimated"])
        assert job["rows"] == figures["rows"]
        assert job["gap_count"] >= 1  # the feed leaves two hours out on its fourth day
        assert job["rows_without_value"] == 1  # and one reading on its sixth has no value
        assert {p["service"] for p in job["usage_points"]} == {"electricity", "gas"}
        assert job["grant_state"] == "revoked" and job["state"] == "exported"

        short = jobs["job-short-0002"]
        assert short["therms"] is None
        assert short["promised_days"] == pytest.approx(365)
        assert short["covered_days"] == pytest.approx(10, abs=0.1)

        assert jobs["job-flag-0003"]["grant_state"] == "flagged"
        assert "HTTP 400" in jobs["job-flag-0003"]["grant_reason"]
        failed = jobs["job-fail-0004"]
        assert failed["state"] == "failed" and "refused access" in failed["failure_reason"]

        # The series the charts draw are the CSV's per-day sums.
        series = (await client.get(url + "/api/jobs/job-full-0001/series", auth=AUTH)).json()
        shown = {
            d["date"]: Decimal(d["delivered_kwh"]) for d in series["daily"] if d["delivered_kwh"]
        }
        assert shown == figures["daily"]
        assert len(series["heatmap"]["slots"]) == 96
        assert len(series["heatmap"]["days"]) == 20
        assert series["profile"]["months"] == ["2025-01"]

        # The page prints the same totals.
        page = (await client.get(url + "/console/jobs/job-full-0001", auth=AUTH)).text
        assert f'id="sum-delivered">{job["delivered_kwh"]} kWh' in page
        assert f'id="sum-therms">{job["therms"]} therms' in page
        assert "1 interval(s) without a value (blank, not zero)" in page
        short_row = (await client.get(url + "/console/", params={"q": "sub-short"}, auth=AUTH)).text
        assert "365 promised" in short_row and "shorter" in short_row

        # Roll-ups: the daily file's kWh equal the CSV's per-day sums.
        daily = (await client.get(url + "/api/jobs/job-full-0001/rollup/daily.csv", auth=AUTH)).text
        rolled = {
            r["date"]: Decimal(r["delivered"])
            for r in csv.DictReader(io.StringIO(daily))
            if r["unit"] == "kWh"
        }
        assert rolled == figures["daily"]
        hourly = (
            await client.get(url + "/api/jobs/job-full-0001/rollup/hourly.csv", auth=AUTH)
        ).text
        hourly_rows = list(csv.DictReader(io.StringIO(hourly)))
        assert (
            sum(Decimal(r["delivered"]) for r in hourly_rows if r["unit"] == "kWh")
            == figures["delivered"]
        )


async def test_downloads_in_every_layout_and_the_xml_as_received(
    console_server: ConsoleServer,
) -> None:
    bus, url = console_server.bus, console_server.url
    default, sent = await publish_exported_job(
        bus, "job-dl-0001", "SUB-DL", first=date(2025, 6, 1), days=3
    )
    async with httpx.AsyncClient(timeout=30) as client:
        job = (await wait_for_jobs(client, url, 1))["jobs"][0]
        links = job["links"]
        got = await client.get(url + links["csv_default"], auth=AUTH)
        assert got.status_code == 200 and got.content == default
        assert "attachment" in got.headers["content-disposition"]
        pge = (await client.get(url + links["csv_pge"], auth=AUTH)).content
        assert pge.startswith(b"\xef\xbb\xbfName,") and b"USAGE (kWh)" in pge
        scwadd = (await client.get(url + links["csv_scwadd"], auth=AUTH)).content
        assert scwadd and scwadd != default and scwadd != pge
        raw = await client.get(url + links["raw_0"], auth=AUTH)
        assert raw.content == sent
        assert raw.headers["content-type"].startswith("application/atom+xml")
        manifest = (await client.get(url + links["manifest"], auth=AUTH)).json()
        assert manifest["job_id"] == "job-dl-0001"
        assert (await client.get(url + links["csv_as_exported"], auth=AUTH)).content == default
        bad = await client.get(
            url + "/api/jobs/job-dl-0001/csv", params={"layout": "xls"}, auth=AUTH
        )
        assert bad.status_code == 422
        assert (await client.get(url + "/api/jobs/job-dl-0001/raw/1", auth=AUTH)).status_code == 404


async def test_console_and_api_need_the_operator(console_server: ConsoleServer) -> None:
    url = console_server.url
    async with httpx.AsyncClient(timeout=30) as client:
        for path in (
            "/console/",
            "/console/jobs/x",
            "/api/jobs",
            "/api/jobs/x",
            "/api/needs-action",
            "/api/openapi.json",
            "/api/csrf",
        ):
            answer = await client.get(url + path)
            assert answer.status_code == 401, path
            assert answer.headers["www-authenticate"].startswith("Basic")
        assert (await client.post(url + "/api/jobs/x/revoke")).status_code == 401
        spec = (await client.get(url + "/api/openapi.json", auth=AUTH)).json()
        assert {
            "/api/jobs",
            "/api/jobs/{job_id}",
            "/api/jobs/{job_id}/series",
            "/api/needs-action",
            "/api/jobs/{job_id}/revoke",
        } <= set(spec["paths"])
        assert not any(p.startswith("/console") for p in spec["paths"])
        # Bad filters are a clear 400, not an empty list.
        for params in ({"state": "nope"}, {"sort": "size"}, {"since": "yesterday"}, {"after": "x"}):
            answer = await client.get(url + "/api/jobs", params=params, auth=AUTH)
            assert answer.status_code == 400, params


async def test_revoke_again_is_csrf_protected_audited_and_sent_to_the_exporter(
    console_server: ConsoleServer,
) -> None:
    bus, url = console_server.bus, console_server.url
    commands: list = []

    async def collect(msg: Any) -> None:
        commands.append(decode(msg.subject, msg.data))

    subscription = await bus.nc.subscribe(GRANT_REVOKE_REQUESTED, cb=collect)
    await publish_exported_job(
        bus,
        "job-flag-0001",
        "SUB-FLAG",
        first=date(2025, 2, 1),
        days=2,
        revoked="failed",
        reason="the utility refused the revocation (HTTP 400)",
    )
    await publish_exported_job(bus, "job-done-0002", "SUB-DONE", first=date(2025, 2, 1), days=2)
    async with httpx.AsyncClient(timeout=30) as client:
        await wait_for_jobs(client, url, 2)
        needs = (await client.get(url + "/api/needs-action", auth=AUTH)).json()
        assert [j["job_id"] for j in needs] == ["job-flag-0001"]
        listing = (await client.get(url + "/console/", auth=AUTH)).text
        assert listing.index("Needs action") < listing.index("Customers and exports</h1>")
        assert "HTTP 400" in listing
        page = (await client.get(url + "/console/jobs/job-flag-0001", auth=AUTH)).text
        token = re.search(r'name="csrf" value="([0-9a-f]+)"', page).group(1)

        # No token, a wrong token, another site's Origin: refused, nothing sent.
        action = url + "/console/jobs/job-flag-0001/revoke"
        assert (await client.post(action, auth=AUTH)).status_code == 403
        assert (await client.post(action, data={"csrf": "0" * 64}, auth=AUTH)).status_code == 403
        foreign = await client.post(
            action, data={"csrf": token}, headers={"Origin": "https://evil.example"}, auth=AUTH
        )
        assert foreign.status_code == 403
        await asyncio.sleep(0.5)
        assert commands == []

        sent = await client.post(action, data={"csrf": token}, auth=AUTH)
        assert sent.status_code == 303
        assert sent.headers["location"] == "/console/jobs/job-flag-0001?requested=requested"
        deadline = asyncio.get_running_loop().time() + 30
        while not commands:
            assert asyncio.get_running_loop().time() < deadline
            await asyncio.sleep(0.1)
        assert commands[0].job_id == "job-flag-0001" and commands[0].requested_by == OPERATOR[0]
        audited = (await client.get(url + "/console/jobs/job-flag-0001", auth=AUTH)).text
        assert "operator asked to revoke again — requested" in audited

        # The API: the same token in a header; a grant that is not flagged gets no command.
        api_token = (await client.get(url + "/api/csrf", auth=AUTH)).json()["csrf"]
        assert api_token == token
        answer = await client.post(
            url + "/api/jobs/job-done-0002/revoke", headers={"X-CSRF-Token": token}, auth=AUTH
        )
        assert answer.json() == {"job_id": "job-done-0002", "outcome": "not_flagged"}
        refused = await client.post(url + "/api/jobs/job-done-0002/revoke", auth=AUTH)
        assert refused.status_code == 403
        await asyncio.sleep(0.5)
        assert len(commands) == 1
    await subscription.unsubscribe()

"""Bills end to end: the sandbox's customers consent through the real pages; their exports'
bills.csv equals the sandbox's truth, the reconciliation finds the injected discrepancy and
nothing else, and a customer sharing usage only is asked for neither bills nor details.

Witnesses: the sandbox's ground truth (``/admin/truth`` with its ``bills``) and call counters,
the files service's downloads, and the processes' log files."""

from __future__ import annotations

import csv
import io
from datetime import datetime
from decimal import Decimal
from typing import Any

import pytest
from scwadd_devstack.bill_summary import bill_summary
from scwadd_devstack.demo import give_consent, run_demo, wait_for_job

from .conftest import System

pytestmark = pytest.mark.e2e


def consent(system: System, profile: str, share: str) -> dict[str, Any]:
    with system.browser_client() as client:
        started = give_consent(system.stack, client, system.customer_id(profile), share=share)
        view = wait_for_job(client, started, timeout=300)
    assert view["phase"] == "done", view
    return system.authorization_for(profile)


def download(system: System, name: str) -> bytes:
    with system.operator() as client:
        answer = client.get(name)
        answer.raise_for_status()
        return answer.content


def served_bills(system: System, subscription_id: str, manifest: dict[str, Any]) -> list[Any]:
    period = manifest["requested_period"]
    answer = system.sandbox.admin.get(
        "/admin/truth",
        params={
            "subscription_id": subscription_id,
            "start": str(int(datetime.fromisoformat(period["start"]).timestamp())),
            "end": str(int(datetime.fromisoformat(period["end"]).timestamp())),
        },
    )
    answer.raise_for_status()
    bills: list[Any] = answer.json()["bills"]
    return sorted(bills, key=lambda b: (b["usage_point_id"], b["start"]))


def dollars(amount: int) -> Decimal:
    return Decimal(amount).scaleb(-5)


def test_bills_equal_the_truth_and_the_discrepancy_is_found(system: System) -> None:
    customer = next(c for c in system.sandbox.state.customers if c.profile == "gas-electric")
    gas = customer.service_points[1].usage_point_id
    faults = {"billing": {"discrepancy_percent": 2.5, "usage_points": [gas]}}
    system.sandbox.admin.put("/admin/faults", json=faults).raise_for_status()
    try:
        grant = consent(system, "gas-electric", "all")
        _rows, manifest = system.export_for(grant["subscription_id"])
        truth = served_bills(system, grant["subscription_id"], manifest)
    finally:
        system.sandbox.admin.put("/admin/faults", json={}).raise_for_status()
    assert len(truth) >= 20  # two usage points, about a year each
    body = download(system, manifest["bills_csv"])
    rows = list(csv.DictReader(io.StringIO(body.decode("utf-8"))))
    bills = [r for r in rows if r["row_type"] == "bill"]
    assert len(bills) == len(truth)
    for row, expected in zip(bills, truth, strict=True):
        assert row["usage_point_id"] == expected["usage_point_id"]
        start = datetime.fromisoformat(row["billing_period_start_local"])
        end = datetime.fromisoformat(row["billing_period_end_local"])
        assert (int(start.timestamp()), int(end.timestamp() - start.timestamp())) == (
            expected["start"],
            expected["duration"],
        )
        shift = -3 if expected["uom"] == 72 else 0
        assert Decimal(row["billed_consumption"]) == Decimal(expected["consumption"]).scaleb(
            expected["power_of_ten_multiplier"] + shift
        )
        assert Decimal(row["bill_amount"]) == dollars(expected["bill_last_period"])
        assert (row["tariff"], row["read_cycle"]) == (
            expected["tariff_profile"],
            expected["read_cycle"],
        )
        details = [
            Decimal(r["detail_amount"])
            for r in rows
            if r["row_type"] == "cost_detail"
            and r["usage_point_id"] == row["usage_point_id"]
            and r["billing_period_start_utc"] == row["billing_period_start_utc"]
        ]
        assert details == [dollars(line["amount"]) for line in expected["cost_lines"]]
    # DST months: the periods holding the changes are an hour short or long.
    assert {t["duration"] % 86400 for t in truth} - {0}
    reconciliation = manifest["reconciliation"]
    by_point: dict[str, set[str]] = {}
    for period in reconciliation["periods"]:
        by_point.setdefault(period["usage_point_id"], set()).add(period["status"])
    assert by_point[gas] == {"discrepancy"}
    assert set(by_point) - {gas} and all(
        statuses == {"ok"} for point, statuses in by_point.items() if point != gas
    )
    warnings = reconciliation["warnings"]
    assert len(warnings) == len([t for t in truth if t["usage_point_id"] == gas]) and all(
        "2.5" in w for w in warnings
    )
    # The customer's details: in the manifest, never in a log line.
    assert manifest["customer"]["name"] == customer.name
    assert {a["street"] for a in manifest["customer"]["service_addresses"]} == {
        p.address for p in customer.service_points
    }
    logs = system.log_text()
    assert customer.name not in logs and customer.service_points[0].address not in logs
    summary = "\n".join(bill_summary(manifest))
    assert f"{len(truth)} billing period(s)" in summary and "warning:" in summary


def test_usage_only_grant_fetches_no_bill_and_no_customer(system: System) -> None:
    grant = consent(system, "electric-60min", "usage")
    report = system.sandbox.admin.get("/admin/calls").json()
    # With BATCH_SCOPE=bulk (the default) the intervals come in the client token's Bulk request
    # and the customer's token makes no call; per UsagePoint it makes the UsagePoint list and
    # one Batch request. Either way: no UsageSummary, no RetailCustomer.
    mine = report["by_authorization"].get(grant["authorization_id"], {})
    assert set(mine) <= {"UsagePoint", "BatchSubscriptionUsagePoint"}, mine
    assert all(count == 1 for count in mine.values()), mine
    _rows, manifest = system.export_for(grant["subscription_id"])
    assert manifest["bills"] == {"count": 0}
    assert "customer" not in manifest and "bills_csv" not in manifest
    listed = {str(e["name"]) for e in system.exports()}
    assert manifest["csv"] in listed
    assert manifest["csv"].removesuffix(".csv") + ".bills.csv" not in listed


def test_make_demo_prints_its_customers_bill_summary(
    system: System, capsys: pytest.CaptureFixture[str]
) -> None:
    """`scwadd run --demo`'s own routine: the first sandbox customer, sharing everything."""
    assert run_demo(system.stack, timeout=300) == 0
    out = capsys.readouterr().out
    grant = system.authorization_for(system.sandbox.state.customers[0].profile)
    _rows, manifest = system.export_for(grant["subscription_id"])
    assert f"bills: {manifest['bills']['count']} billing period(s)" in out
    assert manifest["bills"]["total_bill_amount"] in out
    assert "reconciliation:" in out and " — ok" in out
    # The summary names no customer: the name and addresses stay in the manifest.
    customer = system.sandbox.state.customers[0]
    assert customer.name not in out and customer.service_points[0].address not in out

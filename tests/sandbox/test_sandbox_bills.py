"""The sandbox's bills (UsageSummary): read-cycle billing periods, consistent with the interval
data, in Batch feeds only when granted, skewed by the billing fault; read back with the ESPI
engine's ``iter_bills`` over real HTTP and mutual TLS."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal
from typing import Any

import httpx
from sandbox_helpers import grant_for
from scwadd_espi.bills import iter_bills
from scwadd_sandbox import billing
from scwadd_sandbox.testing import RunningSandbox

DAY = 86400


def _customer(sandbox: RunningSandbox, profile: str) -> Any:
    return next(c for c in sandbox.state.customers if c.profile == profile)


def _truth(sandbox: RunningSandbox, subscription_id: str, start: int, end: int) -> dict[str, Any]:
    response = sandbox.admin.get(
        "/admin/truth", params={"subscription_id": subscription_id, "start": start, "end": end}
    )
    assert response.status_code == 200
    return response.json()


def _batch(sandbox: RunningSandbox, sub: str, up: str) -> str:
    return f"{sandbox.espi_base}/Batch/Subscription/{sub}/UsagePoint/{up}"


def test_billing_periods_follow_the_read_cycle_across_dst() -> None:
    """Cycle n: Pacific midnight of day n to day n of the next month; the periods over the DST
    changes are an hour shorter (March) or longer (November)."""
    start = int(dt.datetime(2024, 1, 1, tzinfo=billing.data.PACIFIC).timestamp())
    end = int(dt.datetime(2025, 1, 1, tzinfo=billing.data.PACIFIC).timestamp())
    periods = list(billing.billing_periods(9, start, end))
    assert len(periods) == 11  # Jan 9 .. Dec 9
    firsts = [dt.datetime.fromtimestamp(p[0], billing.data.PACIFIC) for p in periods]
    assert {(f.day, f.hour) for f in firsts} == {(9, 0)}
    by_month = {f.month: b - a for f, (a, b) in zip(firsts, periods, strict=True)}
    assert by_month[2] == 29 * DAY  # 2024 is a leap year
    assert by_month[3] == 31 * DAY - 3600  # Mar 9 - Apr 9 holds March 10 (spring forward)
    assert by_month[10] == 31 * DAY + 3600  # Oct 9 - Nov 9 holds November 3 (fall back)


def test_batch_feed_carries_bills_consistent_with_intervals(
    sandbox: RunningSandbox, api: httpx.Client
) -> None:
    """A solar customer's Batch feed: bills for each whole period, billed consumption the net
    interval energy (delivered - received, in kWh exactly), amounts in dollars exactly, the NEM2
    rider, equal to the ground truth."""
    grant = grant_for(sandbox, api, "solar")
    customer = _customer(sandbox, "solar")
    point = customer.service_points[0]
    end = sandbox.state.data_end
    start = end - 120 * DAY
    params = {"published-min": start, "published-max": end}
    feed = api.get(
        _batch(sandbox, grant.subscription_id, point.usage_point_id),
        headers=grant.headers,
        params=params,
    )
    assert feed.status_code == 200
    bills = list(iter_bills(feed.content))
    assert len(bills) >= 3
    truth = _truth(sandbox, grant.subscription_id, start, end)
    assert len(truth["bills"]) == len(bills)
    readings = {
        m["flow_direction"]: m["readings"] for m in truth["usage_points"][0]["meter_readings"]
    }
    for bill, expected in zip(bills, truth["bills"], strict=True):
        first, last = expected["start"], expected["start"] + expected["duration"]
        assert (int(bill.period_start.timestamp()), bill.period_duration) == (
            first,
            expected["duration"],
        )
        net = sum(r["value"] for r in readings[1] if first <= r["start"] < last) - sum(
            r["value"] for r in readings[19] if first <= r["start"] < last
        )
        assert bill.consumption is not None and bill.consumption.unit == "kWh"
        assert bill.consumption.value == Decimal(net).scaleb(-6)
        assert expected["consumption"] == net
        assert bill.bill_amount == Decimal(expected["bill_last_period"]).scaleb(-5)
        energy = sum(
            r["cost"] for flow in (1, 19) for r in readings[flow] if first <= r["start"] < last
        )
        assert bill.cost_additional is not None and bill.bill_amount is not None
        assert bill.bill_amount - bill.cost_additional == Decimal(energy).scaleb(-5)
        assert sum(line.amount or 0 for line in bill.cost_lines) == bill.cost_additional
        assert bill.tariff_profile == "E-TOU-C" and bill.tariff_riders == ("NEM2",)
        assert bill.read_cycle == str(billing.read_cycle(customer))
        assert bill.currency == "USD"
        assert bill.local(bill.period_start).hour == 0  # the read day's local midnight


def test_usage_only_grant_gets_no_bills_anywhere(
    sandbox: RunningSandbox, api: httpx.Client
) -> None:
    grant = grant_for(sandbox, api, "electric-60min", share="usage")
    point = _customer(sandbox, "electric-60min").service_points[0]
    end = sandbox.state.data_end
    params = {"published-min": end - 70 * DAY, "published-max": end}
    feed = api.get(
        _batch(sandbox, grant.subscription_id, point.usage_point_id),
        headers=grant.headers,
        params=params,
    )
    assert feed.status_code == 200 and b"UsageSummary" not in feed.content
    assert list(iter_bills(feed.content)) == []
    truth = _truth(sandbox, grant.subscription_id, end - 70 * DAY, end)
    assert truth["bills"] == []


def test_billing_discrepancy_fault_skews_billed_consumption_only(
    sandbox: RunningSandbox, api: httpx.Client
) -> None:
    grant = grant_for(sandbox, api, "electric-60min")
    point = _customer(sandbox, "electric-60min").service_points[0]
    end = sandbox.state.data_end
    params = {"published-min": end - 70 * DAY, "published-max": end}
    url = (
        f"{sandbox.espi_base}/Subscription/{grant.subscription_id}"
        f"/UsagePoint/{point.usage_point_id}/UsageSummary"
    )
    honest = list(iter_bills(api.get(url, headers=grant.headers, params=params).content))
    faults = {"billing": {"discrepancy_percent": 5, "usage_points": [point.usage_point_id]}}
    assert sandbox.admin.put("/admin/faults", json=faults).status_code == 200
    skewed = list(iter_bills(api.get(url, headers=grant.headers, params=params).content))
    assert honest and len(skewed) == len(honest)
    for a, b in zip(honest, skewed, strict=True):
        assert a.consumption is not None and b.consumption is not None
        ratio = b.consumption.value / a.consumption.value
        assert abs(ratio - Decimal("1.05")) < Decimal("0.0001")
        assert (a.bill_amount, a.tariff_profile) == (b.bill_amount, "HAG5A")
    truth = _truth(sandbox, grant.subscription_id, end - 70 * DAY, end)
    assert [t["consumption"] for t in truth["bills"]] == [
        int(b.consumption.value.scaleb(6)) for b in skewed if b.consumption is not None
    ]

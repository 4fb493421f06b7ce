"""bills.csv, the reconciliation and the customer details, from real sandbox answers (mutual TLS,
a real customer token): equal to the custodian's truth, the injected discrepancy found."""

from __future__ import annotations

import csv
import io
import logging
from datetime import datetime
from decimal import Decimal
from typing import Any

import pytest
from custodian_support import custodian_config
from exporter_support import DAY, SandboxGrant, fetch_raw, obtain_grant
from scwadd_core.custodian import Custodian, bearer
from scwadd_exporter.bills import BILLS_COLUMNS, money_text
from scwadd_exporter.conversion import convert_documents

pytestmark = pytest.mark.anyio


async def fetch_customer(sandbox, grant: SandboxGrant) -> bytes:
    async with Custodian(custodian_config(sandbox)) as custodian:
        response = await custodian.http.get(
            f"{sandbox.espi_base}/Batch/RetailCustomer/{grant.subscription_id}",
            headers=bearer(grant.tokens.access_token),
        )
    assert response.status_code == 200, response.text
    return response.content


def served_bills(sandbox, grant: SandboxGrant, start: int, end: int) -> list[dict[str, Any]]:
    answer = sandbox.admin.get(
        "/admin/truth",
        params={"subscription_id": grant.subscription_id, "start": str(start), "end": str(end)},
    )
    answer.raise_for_status()
    return answer.json()["bills"]


def bill_rows(body: bytes) -> list[dict[str, str]]:
    return list(csv.DictReader(io.StringIO(body.decode("utf-8"))))


def test_money_is_exact_with_at_least_the_cents() -> None:
    assert money_text(Decimal("12.5")) == "12.50"
    assert money_text(Decimal(3012).scaleb(-5)) == "0.03012"
    assert money_text(Decimal(-5823000).scaleb(-5)) == "-58.23"
    assert money_text(None) == ""


@pytest.mark.parametrize("profile", ["solar", "gas-electric"])
async def test_bills_csv_equals_the_truth_and_reconciles(sandbox, profile, caplog) -> None:
    caplog.set_level(logging.DEBUG)
    grant = await obtain_grant(sandbox, profile)
    end = sandbox.state.data_end
    start = end - 100 * DAY
    documents = [
        (f"job/{n}.xml", d) for n, d in enumerate(await fetch_raw(sandbox, grant, start, end))
    ]
    documents.append(("job/customer.xml", await fetch_customer(sandbox, grant)))
    built = convert_documents(documents, "pge")
    truth = served_bills(sandbox, grant, start, end)
    assert len(truth) >= 2 * len(grant.usage_points)
    rows = bill_rows(built.extras["bills.csv"])
    assert tuple(rows[0]) == BILLS_COLUMNS
    bills = [r for r in rows if r["row_type"] == "bill"]
    assert len(bills) == len(truth)
    truth.sort(key=lambda t: (t["usage_point_id"], t["start"]))
    for row, expected in zip(bills, truth, strict=True):
        assert row["usage_point_id"] == expected["usage_point_id"]
        start_local = datetime.fromisoformat(row["billing_period_start_local"])
        end_local = datetime.fromisoformat(row["billing_period_end_local"])
        assert int(start_local.timestamp()) == expected["start"]
        assert int(end_local.timestamp()) == expected["start"] + expected["duration"]
        assert (start_local.hour, start_local.day) == (0, int(expected["read_cycle"]))
        unit = {72: "kWh", 169: "therms"}[expected["uom"]]
        shift = -3 if unit == "kWh" else 0
        consumption = Decimal(expected["consumption"]).scaleb(
            expected["power_of_ten_multiplier"] + shift
        )
        assert (Decimal(row["billed_consumption"]), row["unit"]) == (consumption, unit)
        assert row["bill_amount"] == money_text(Decimal(expected["bill_last_period"]).scaleb(-5))
        assert row["tariff"] == expected["tariff_profile"]
        assert row["read_cycle"] == expected["read_cycle"]
        assert row["tariff_riders"] == ";".join(expected["tariff_riders"])
        details = [
            r
            for r in rows
            if r["row_type"] == "cost_detail"
            and r["usage_point_id"] == row["usage_point_id"]
            and r["billing_period_start_utc"] == row["billing_period_start_utc"]
        ]
        assert [(d["detail_note"], d["detail_amount"]) for d in details] == [
            (line["note"], money_text(Decimal(line["amount"]).scaleb(-5)))
            for line in expected["cost_lines"]
        ]
    reconciliation = built.manifest["reconciliation"]
    assert {p["status"] for p in reconciliation["periods"]} == {"ok"}
    assert reconciliation["warnings"] == [] and reconciliation["discrepancies"] == 0
    assert all(Decimal(p["difference"]) == 0 for p in reconciliation["periods"])
    customer = next(c for c in sandbox.state.customers if c.profile == profile)
    assert built.manifest["customer"]["name"] == customer.name
    assert {a["usage_point_id"] for a in built.manifest["customer"]["service_addresses"]} == set(
        grant.usage_points
    )
    # The pge layout's Name line is the RetailCustomer's name.
    assert f"Name,{customer.name}".encode() in built.csv
    # Customer data never in a log line.
    assert customer.name not in caplog.text
    assert customer.service_points[0].address not in caplog.text


async def test_an_injected_discrepancy_is_a_warning_with_the_figures(sandbox) -> None:
    grant = await obtain_grant(sandbox, "gas-electric")
    gas = grant.usage_points[1]
    faults = {"billing": {"discrepancy_percent": 3, "usage_points": [gas]}}
    assert sandbox.admin.put("/admin/faults", json=faults).status_code == 200
    end = sandbox.state.data_end
    start = end - 100 * DAY
    documents = [
        (f"job/{n}.xml", d) for n, d in enumerate(await fetch_raw(sandbox, grant, start, end))
    ]
    built = convert_documents(documents, "default")
    periods = built.manifest["reconciliation"]["periods"]
    flagged = [p for p in periods if p["status"] == "discrepancy"]
    assert flagged and {p["usage_point_id"] for p in flagged} == {gas}
    assert all(p["status"] == "ok" for p in periods if p["usage_point_id"] != gas)
    for period in flagged:
        assert abs(Decimal(period["difference_percent"]) - 3) <= Decimal("0.01")
        assert Decimal(period["billed"]) > Decimal(period["interval"])
        assert period["billed"] in period["warning"] and period["interval"] in period["warning"]
    assert built.manifest["reconciliation"]["discrepancies"] == len(flagged)
    assert "customer" not in built.manifest  # no RetailCustomer document among the inputs


async def test_a_usage_only_export_has_no_bills(sandbox) -> None:
    grant = await obtain_grant(sandbox, "electric-15min", share="usage")
    end = sandbox.state.data_end
    documents = [
        (f"job/{n}.xml", d)
        for n, d in enumerate(await fetch_raw(sandbox, grant, end - 70 * DAY, end))
    ]
    built = convert_documents(documents, "default")
    assert built.extras == {}
    assert built.manifest["bills"] == {"count": 0}
    assert "reconciliation" not in built.manifest and "customer" not in built.manifest


def test_a_reading_without_a_value_leaves_its_interval_uncovered_not_netted_with_zero() -> None:
    from lxml import etree
    from scwadd_espi.sample import write_sample_feed
    from scwadd_exporter.bills import interval_series

    out = io.BytesIO()
    write_sample_feed(out)
    clean = out.getvalue()
    root = etree.fromstring(clean)
    espi = "{http://naesb.org/espi}"
    reading = next(root.iter(f"{espi}IntervalReading"))
    start = int(reading.findtext(f"{espi}timePeriod/{espi}start") or "")
    duration = int(reading.findtext(f"{espi}timePeriod/{espi}duration") or "")
    value = reading.find(f"{espi}value")
    assert value is not None
    reading.remove(value)
    damaged = etree.tostring(root, xml_declaration=True, encoding="UTF-8")

    [(point, known)] = [
        (p, s) for p, s in interval_series([("a.xml", clean)]).items() if s.unit == "kWh"
    ]
    assert (start, duration) in known.net
    unknown = interval_series([("a.xml", damaged)])[point]
    assert (start, duration) not in unknown.net  # not delivered 0 - received
    assert {slot: v for slot, v in known.net.items() if slot != (start, duration)} == unknown.net
    # The same reading with its value in another document makes the interval known again.
    assert interval_series([("a.xml", damaged), ("b.xml", clean)])[point].net == known.net

"""The product, end to end: consent at the custodian becomes a 12-month CSV and a revoked grant.

Every assertion is made against an independent witness: the sandbox's ground truth for the
values, its authorization book for the revocation, its call counters for the cost per customer,
JetStream's own subject counts for what was published, and the processes' log files for leaks.
"""

from __future__ import annotations

from collections import defaultdict
from decimal import Decimal
from typing import Any
from urllib.parse import urlencode

import pytest

from .conftest import System, scaled, submit_form

pytestmark = pytest.mark.e2e

GRANT_SUBJECT = "scwadd.events.grant.received"
PROFILES = ("electric-15min", "solar", "gas-electric")


def truth_by_interval(
    system: System, subscription_id: str, start: int, end: int
) -> dict[tuple[str, int], dict[str, Any]]:
    """(usage point, start) -> expected delivered/received in the CSV's unit, from the truth."""
    answer = system.sandbox.admin.get(
        "/admin/truth",
        params={"subscription_id": subscription_id, "start": str(start), "end": str(end)},
    )
    answer.raise_for_status()
    expected: dict[tuple[str, int], dict[str, Any]] = defaultdict(dict)
    for point in answer.json()["usage_points"]:
        for meter in point["meter_readings"]:
            column = "received" if meter["flow_direction"] == 19 else "delivered"
            for reading in meter["readings"]:
                key = (point["usage_point_id"], reading["start"])
                expected[key][column] = scaled(
                    reading["value"], meter["power_of_ten_multiplier"], meter["uom"]
                )
                expected[key]["duration"] = reading["duration"]
    return expected


def epoch(utc_text: str) -> int:
    from datetime import datetime

    return int(datetime.fromisoformat(utc_text.replace("Z", "+00:00")).timestamp())


@pytest.mark.parametrize("profile", PROFILES)
def test_consent_becomes_a_csv_equal_to_the_truth_and_a_revoked_grant(
    system: System, profile: str
) -> None:
    _consent, view = system.consent(profile)
    assert view["phase"] == "done", view
    assert view["revoked"] is True

    grant = system.authorization_for(profile)
    assert grant["status"] == "revoked", "the custodian must show the authorization revoked"
    assert grant["revoked_by"] == "third_party"

    rows, manifest = system.export_for(grant["subscription_id"])
    assert rows, "the export has rows"
    # The customer's page names the UsagePoints the file covers, and no shortfall (a full year
    # asked for and granted).
    assert sorted(m["id"] for m in view["meters"]) == sorted(
        p["id"] for p in manifest["usage_points"]
    )
    assert view["period"] and view["shorter"] is None, view
    # Whole-day blocks, DST days (82800/90000 s for daily gas): no gap, no false gap, no
    # duplicate row.
    assert manifest["gap_count"] == 0, manifest["usage_points"]
    keys = [(r["usage_point_id"], r["interval_start_utc"], r["duration_seconds"]) for r in rows]
    assert len(keys) == len(set(keys))
    starts = [epoch(r["interval_start_utc"]) for r in rows]
    expected = truth_by_interval(system, grant["subscription_id"], min(starts), max(starts) + 86400)
    got = {(r["usage_point_id"], epoch(r["interval_start_utc"])): r for r in rows}
    # Same intervals, value for value: nothing lost, nothing invented.
    assert set(got) == set(expected)
    for key, row in got.items():
        truth = expected[key]
        assert Decimal(row["delivered"] or "0") == truth.get("delivered", Decimal(0)), key
        assert Decimal(row["received"] or "0") == truth.get("received", Decimal(0)), key
        assert int(row["duration_seconds"]) == truth["duration"]
        assert "nan" not in ",".join(row.values()).lower()
    # Twelve months, every usage point of the customer.
    points = {point for point, _ in got}
    assert points == set(grant["usage_point_ids"])
    assert max(starts) - min(starts) >= 364 * 86400

    # Calls under the customer's token: none with the default Bulk rounds (an authorization
    # with no such call has no entry), at most a few per meter with the other scopes.
    calls = system.sandbox.state.call_report()["totals_by_authorization"]
    per_meter_budget = 4 * len(points)
    assert calls.get(grant["authorization_id"], 0) <= per_meter_budget
    if len(points) == 1:
        assert calls.get(grant["authorization_id"], 0) <= 4


def test_duplicated_notifications_change_nothing(system: System) -> None:
    profile = "multi-site"
    # One asynchronous request for the whole subscription: PG&E answers 202 and notifies.
    system.stack.restart_service("fetcher", {"BATCH_SCOPE": "subscription"})
    system.sandbox.admin.put(
        "/admin/faults", json={"notifications": {"duplicate_rate": 1.0}}
    ).raise_for_status()
    try:
        _consent, view = system.consent(profile)
    finally:
        system.sandbox.admin.put("/admin/faults", json={}).raise_for_status()
        system.stack.restart_service("fetcher")
    assert view["phase"] == "done", view
    grant = system.authorization_for(profile)
    batches = [
        b
        for b in system.sandbox.admin.get("/admin/batches").json()
        if b["authorization_id"] == grant["authorization_id"]
    ]
    assert batches, "the fetch went through the asynchronous (202 + notification) path"
    assert all(b["deliveries"] >= 2 for b in batches if not b["pending"])
    manifests = [e for e in system.exports() if str(e["name"]).endswith(".manifest.json")]
    rows, _ = system.export_for(grant["subscription_id"])
    assert rows
    owners = []
    with system.operator() as client:
        for entry in manifests:
            owners.append(client.get(str(entry["name"])).json().get("subscription_id"))
    assert owners.count(grant["subscription_id"]) == 1, "one export, not one per notification"
    assert grant["status"] == "revoked"


def assert_csv_is_the_truth(system: System, grant: dict[str, Any]) -> None:
    rows, manifest = system.export_for(grant["subscription_id"])
    assert rows and manifest["gap_count"] == 0
    starts = [epoch(r["interval_start_utc"]) for r in rows]
    expected = truth_by_interval(system, grant["subscription_id"], min(starts), max(starts) + 86400)
    got = {(r["usage_point_id"], epoch(r["interval_start_utc"])): r for r in rows}
    assert set(got) == set(expected)
    for key, row in got.items():
        assert Decimal(row["delivered"] or "0") == expected[key].get("delivered", Decimal(0))
        assert Decimal(row["received"] or "0") == expected[key].get("received", Decimal(0))
    assert {point for point, _ in got} == set(grant["usage_point_ids"])


@pytest.mark.timeout(900)  # the sandbox makes a year of data per request on a busy machine
def test_a_malformed_notification_is_recovered_and_the_bulk_url_followed(system: System) -> None:
    # Batch/Subscription: 202, then a BatchList naming .../Batch/Bulk/{BulkID}?correlationID=..
    # sent the way PG&E once did, not well-formed XML (a literal backslash-n after the
    # declaration). The fetcher reads it leniently, says so, and fetches with the client token.
    profile = "gas-electric"
    system.stack.restart_service("fetcher", {"BATCH_SCOPE": "subscription"})
    system.sandbox.admin.put(
        "/admin/faults", json={"notifications": {"malformed_rate": 1.0}}
    ).raise_for_status()
    try:
        _consent, view = system.consent(profile)
    finally:
        system.sandbox.admin.put("/admin/faults", json={}).raise_for_status()
        system.stack.restart_service("fetcher")
    assert view["phase"] == "done", view
    grant = system.authorization_for(profile)
    assert grant["status"] == "revoked"
    assert_csv_is_the_truth(system, grant)
    assert "not well-formed XML was recovered" in system.log_text()


@pytest.mark.timeout(900)  # the Bulk answer holds every active subscription's year
def test_bulk_scope_completes_with_the_client_token_only(system: System) -> None:
    profile = "multi-site"
    system.stack.restart_service("fetcher", {"BATCH_SCOPE": "bulk", "BULK_GATHER_SECONDS": "1"})
    try:
        _consent, view = system.consent(profile)
    finally:
        system.stack.restart_service("fetcher")
    assert view["phase"] == "done", view
    grant = system.authorization_for(profile)
    assert grant["status"] == "revoked" and grant["revoked_by"] == "third_party"
    assert_csv_is_the_truth(system, grant)
    # No data call under the customer's token: an authorization the sandbox saw no call for
    # has no entry at all.
    by_authorization = system.sandbox.state.call_report()["by_authorization"]
    calls = by_authorization.get(grant["authorization_id"], {})
    assert "BatchSubscriptionUsagePoint" not in calls and "UsagePoint" not in calls


def test_duplicated_callback_changes_nothing(system: System) -> None:
    with system.browser_client() as client:
        landing = client.get(system.stack.customer_url)
        to_custodian = submit_form(client, system.stack.customer_url, landing.text)
        consent_url = to_custodian.headers["location"]
        page = client.get(consent_url)
        back = submit_form(
            client,
            consent_url,
            page.text,
            "decision=approve",
            customer=system.customer_id("electric-60min"),
        )
        callback_url = back.headers["location"]
        first = client.get(callback_url)
        assert first.status_code in (302, 303)
        grants_after_first = system.subject_counts().get(GRANT_SUBJECT, 0)
        token_calls = system.token_calls()
        replay = client.get(callback_url)
        # A reload or double click: the same status page, or a refusal; never a second grant.
        if replay.status_code in (302, 303):
            assert replay.headers["location"] == first.headers["location"]
        else:
            assert replay.status_code == 400
        assert system.subject_counts().get(GRANT_SUBJECT, 0) == grants_after_first
        # The code went to the token endpoint once (a replayed code revokes the grant at PG&E).
        assert system.token_calls() == token_calls


def test_access_denied_publishes_nothing(system: System) -> None:
    before = system.subject_counts().get(GRANT_SUBJECT, 0)
    with system.browser_client() as client:
        landing = client.get(system.stack.customer_url)
        to_custodian = submit_form(client, system.stack.customer_url, landing.text)
        consent_url = to_custodian.headers["location"]
        page = client.get(consent_url)
        back = submit_form(client, consent_url, page.text, "decision=cancel")
        assert "error=access_denied" in back.headers["location"]
        answer = client.get(back.headers["location"])
        assert answer.status_code == 200
        assert "nothing was shared" in answer.text.lower()
    assert system.subject_counts().get(GRANT_SUBJECT, 0) == before


def test_forged_state_is_refused(system: System) -> None:
    before = system.subject_counts().get(GRANT_SUBJECT, 0)
    forged = system.stack.redirect_uri + "?" + urlencode({"code": "x" * 20, "state": "forged"})
    with system.browser_client() as client:
        client.get(system.stack.customer_url)
        answer = client.get(forged)
    assert answer.status_code == 400
    assert system.subject_counts().get(GRANT_SUBJECT, 0) == before


def test_no_token_code_or_secret_in_any_log(system: System) -> None:
    # Runs last in this module: by now every flow above has issued tokens and codes.
    state = system.sandbox.state
    stack_secrets = system.stack.secrets
    secrets = [*state.tokens, *state.refresh_tokens, *state.codes, system.sandbox.client_secret]
    secrets += [stack_secrets.sealing_key.partition(":")[2], stack_secrets.operator_password]
    assert len(secrets) > 3, "the flows above must have issued tokens"
    logs = system.log_text()
    assert logs, "the services wrote logs"
    leaked = [s for s in secrets if s in logs]
    assert leaked == []

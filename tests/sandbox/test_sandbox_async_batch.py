"""Batch/Subscription: 202, then a BatchList POSTed over HTTPS to a real receiver, then the feed."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path
from typing import Any

import httpx
import pytest
from lxml import etree
from sandbox_helpers import Receiver, client_token, grant_for
from scwadd_sandbox.config import SandboxConfig
from scwadd_sandbox.faults import FaultConfig, FaultInjector, NotificationFaults
from scwadd_sandbox.http.batch import DUPLICATE_BATCH
from scwadd_sandbox.state import SandboxState
from scwadd_sandbox.testing import RunningSandbox, start_sandbox

ESPI = "{http://naesb.org/espi}"
DAY = 86400


def _resources(body: bytes) -> list[str]:
    root = etree.fromstring(body)
    assert root.tag == f"{ESPI}BatchList"
    return [r.text or "" for r in root.iter(f"{ESPI}resources")]


def test_202_then_notification_then_the_feed(pki_dir: Path, receiver: Receiver) -> None:
    with (
        start_sandbox(pki_dir, notification_uri=receiver.url) as sandbox,
        sandbox.api_client() as api,
    ):
        grant = grant_for(sandbox, api, "gas-electric")
        end = sandbox.state.data_end
        params = {"published-min": end - 2 * DAY, "published-max": end}
        batch = api.get(grant.body["resourceURI"], headers=grant.headers, params=params)
        assert batch.status_code == 202
        [body] = receiver.wait_for(1)
        assert body.startswith(b"<?xml") and b"<ns0:BatchList" in body
        [url] = _resources(body)
        assert url.startswith(f"{sandbox.espi_base}/Batch/Bulk/")
        assert "correlationID=" in url
        bulk_id = sandbox.config.registrations[0].bulk_id
        assert url.startswith(f"{sandbox.espi_base}/Batch/Bulk/{bulk_id}?correlationID=")
        # The listed URL answers with the client token only, as PG&E documents.
        assert api.get(url, headers=grant.headers).status_code == 403
        for headers in (client_token(sandbox, api),):
            feed = api.get(url, headers=headers)
            assert feed.status_code == 200
            root = etree.fromstring(feed.content)
            kinds = sorted(
                k.text or ""
                for k in root.iter(f"{ESPI}kind")
                if k.getparent().tag == f"{ESPI}ServiceCategory"
            )
            assert kinds == ["0", "1"]
            # 48 hourly electric readings and 2 daily gas readings.
            assert len(list(root.iter(f"{ESPI}IntervalReading"))) == 50
        [job] = _settled(sandbox)
        assert job["notification"] == "delivered" and job["pending"] is False


def test_identical_request_while_pending_is_400(pki_dir: Path, receiver: Receiver) -> None:
    with (
        start_sandbox(
            pki_dir, notification_uri=receiver.url, notification_delay=(30.0, 30.0)
        ) as sandbox,
        sandbox.api_client() as api,
    ):
        grant = grant_for(sandbox, api)
        end = sandbox.state.data_end
        params = {"published-min": end - DAY, "published-max": end}
        assert (
            api.get(grant.body["resourceURI"], headers=grant.headers, params=params).status_code
            == 202
        )
        again = api.get(grant.body["resourceURI"], headers=grant.headers, params=params)
        assert (again.status_code, again.text) == (400, DUPLICATE_BATCH)
        other_range = {"published-min": end - 2 * DAY, "published-max": end}
        assert (
            api.get(
                grant.body["resourceURI"], headers=grant.headers, params=other_range
            ).status_code
            == 202
        )
        assert receiver.bodies == []


def test_lost_and_duplicated_notifications_follow_the_seed(
    pki_dir: Path, receiver: Receiver
) -> None:
    faults = FaultConfig(
        seed=7, notifications=NotificationFaults(lose_rate=0.5, duplicate_rate=0.5)
    )
    with (
        start_sandbox(pki_dir, notification_uri=receiver.url, faults=faults) as sandbox,
        sandbox.api_client() as api,
    ):
        grant = grant_for(sandbox, api)
        end = sandbox.state.data_end
        for day in range(1, 9):
            params = {"published-min": end - day * DAY, "published-max": end}
            assert (
                api.get(grant.body["resourceURI"], headers=grant.headers, params=params).status_code
                == 202
            )
        sandbox_jobs = _settled(sandbox)
    expected = []
    injector = FaultInjector(faults)
    for _ in range(8):
        decision = injector.decide_notification()
        expected.append(("lost", 0) if decision.lost else ("delivered", decision.copies))
    outcomes = [(job["notification"], job["deliveries"]) for job in sandbox_jobs]
    assert outcomes == expected
    assert ("lost", 0) in outcomes
    assert any(copies == 2 for _, copies in outcomes)
    delivered = sum(copies for _, copies in outcomes)
    assert len(receiver.wait_for(delivered)) == delivered


def _settled(sandbox: RunningSandbox) -> list[dict[str, Any]]:
    for job in list(sandbox.state.batches.values()):
        assert job.settled.wait(20), "a notification did not settle"
    return sandbox.admin.get("/admin/batches").json()


def test_a_failing_receiver_is_recorded_and_ends_the_pending_state(pki_dir: Path) -> None:
    with (
        start_sandbox(pki_dir, notification_uri="https://127.0.0.1:9/espi/notify") as sandbox,
        sandbox.api_client() as api,
    ):
        grant = grant_for(sandbox, api)
        end = sandbox.state.data_end
        params = {"published-min": end - DAY, "published-max": end}
        assert (
            api.get(grant.body["resourceURI"], headers=grant.headers, params=params).status_code
            == 202
        )
        [job] = _settled(sandbox)
        assert job["notification"].startswith("failed: ")
        assert (
            api.get(grant.body["resourceURI"], headers=grant.headers, params=params).status_code
            == 202
        )


def _bulk_url(sandbox: RunningSandbox) -> str:
    return f"{sandbox.espi_base}/Batch/Bulk/{sandbox.config.registrations[0].bulk_id}"


def _subscriptions_in(feed: bytes) -> set[str]:
    root = etree.fromstring(feed)
    hrefs = [
        link.get("href", "")
        for link in root.iter("{http://www.w3.org/2005/Atom}link")
        if link.get("rel") == "self"
    ]
    return {h.split("/Subscription/")[1].split("/")[0] for h in hrefs if "/Subscription/" in h}


def test_bulk_serves_every_active_subscription_to_the_client_token_only(
    pki_dir: Path, receiver: Receiver
) -> None:
    with (
        start_sandbox(pki_dir, notification_uri=receiver.url) as sandbox,
        sandbox.api_client() as api,
    ):
        grants = [grant_for(sandbox, api, p) for p in ("electric-60min", "gas-electric")]
        client = client_token(sandbox, api)
        end = sandbox.state.data_end
        params = {"published-min": end - 2 * DAY, "published-max": end}
        bulk = _bulk_url(sandbox)
        assert api.get(bulk, headers=grants[0].headers, params=params).status_code == 403
        assert api.get(bulk + "0", headers=client, params=params).status_code == 404
        assert api.get(bulk, headers=client, params=params).status_code == 202
        [body] = receiver.wait_for(1)
        [url] = _resources(body)
        assert url.startswith(f"{bulk}?correlationID=")
        assert api.get(url, headers=grants[0].headers).status_code == 403
        feed = api.get(url, headers=client)
        assert feed.status_code == 200
        assert _subscriptions_in(feed.content) == {g.subscription_id for g in grants}
        # 48 hourly readings for each electric meter, 2 gas days.
        assert len(list(etree.fromstring(feed.content).iter(f"{ESPI}IntervalReading"))) == 98
        # A revoked subscription leaves the Bulk answer.
        revoked = api.delete(grants[0].body["authorizationURI"], headers=client)
        assert revoked.status_code == 200
        again = api.get(url, headers=client)
        assert _subscriptions_in(again.content) == {grants[1].subscription_id}
        [job] = sandbox.admin.get("/admin/batches").json()
        assert (job["kind"], job["authorization_id"]) == ("bulk", None)


def test_the_third_partys_authorization_carries_its_bulk_resource_uri(
    sandbox: RunningSandbox, api: httpx.Client
) -> None:
    grant_for(sandbox, api)
    client = client_token(sandbox, api)
    feed = api.get(f"{sandbox.espi_base}/Authorization", headers=client)
    assert feed.status_code == 200
    uris = [e.text for e in etree.fromstring(feed.content).iter(f"{ESPI}resourceURI")]
    assert uris[0] == _bulk_url(sandbox)
    assert len(uris) == 2 and "/Batch/Subscription/" in (uris[1] or "")
    registration = sandbox.config.registrations[0]
    own = f"{sandbox.espi_base}/Authorization/{registration.client_authorization_id}"
    entry = api.get(own, headers=client)
    assert entry.status_code == 200
    assert [e.text for e in etree.fromstring(entry.content).iter(f"{ESPI}grant_type")] == [
        "client_credentials"
    ]
    assert api.delete(own, headers=client).status_code == 403


def test_the_notification_arrives_late(pki_dir: Path, receiver: Receiver) -> None:
    with (
        start_sandbox(
            pki_dir, notification_uri=receiver.url, notification_delay=(4.0, 4.0)
        ) as sandbox,
        sandbox.api_client() as api,
    ):
        grant = grant_for(sandbox, api)
        end = sandbox.state.data_end
        params = {"published-min": end - DAY, "published-max": end}
        assert (
            api.get(grant.body["resourceURI"], headers=grant.headers, params=params).status_code
            == 202
        )
        [job] = sandbox.admin.get("/admin/batches").json()
        assert job["delay_seconds"] == 4.0
        assert job["notification"] == "scheduled" and receiver.bodies == []
        assert len(receiver.wait_for(1, timeout=60)) == 1


def test_pges_10_to_40_seconds_by_default(pki_dir: Path) -> None:
    config = replace(
        SandboxConfig(registrations=(), admin_token="x", ca_file=pki_dir / "ca.pem"), seed=3
    )
    assert config.notification_delay == (10.0, 40.0)
    state = SandboxState(config)
    delays = [state.notification_delay() for _ in range(50)]
    assert all(10.0 <= d <= 40.0 for d in delays)
    assert max(delays) - min(delays) > 10  # spread over the range, not one fixed value


def test_malformed_notification_fault_is_pges_literal_backslash_n(
    pki_dir: Path, receiver: Receiver
) -> None:
    faults = FaultConfig(notifications=NotificationFaults(malformed_rate=1.0))
    with (
        start_sandbox(pki_dir, notification_uri=receiver.url, faults=faults) as sandbox,
        sandbox.api_client() as api,
    ):
        grant = grant_for(sandbox, api)
        end = sandbox.state.data_end
        params = {"published-min": end - DAY, "published-max": end}
        assert (
            api.get(grant.body["resourceURI"], headers=grant.headers, params=params).status_code
            == 202
        )
        [body] = receiver.wait_for(1)
    declaration, _, rest = body.partition(b"?>")
    assert declaration.startswith(b"<?xml")
    assert rest.startswith(b"\\n<ns0:BatchList")
    with pytest.raises(etree.XMLSyntaxError):
        etree.fromstring(body)
    # What a lenient reader recovers: the resource URL, on the API host.
    assert f"{sandbox.espi_base}/Batch/Bulk/".encode() in rest

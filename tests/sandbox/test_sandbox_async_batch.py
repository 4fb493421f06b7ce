"""Batch/Subscription: 202, then a BatchList POSTed over HTTPS to a real receiver, then the feed."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from lxml import etree
from sandbox_helpers import Receiver, client_token, grant_for
from scwadd_sandbox.api import DUPLICATE_BATCH
from scwadd_sandbox.faults import FaultConfig, FaultInjector, NotificationFaults
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
        # The listed URL answers with the client token and with the customer's token.
        for headers in (client_token(sandbox, api), grant.headers):
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
        [job] = sandbox.admin.get("/admin/batches").json()
        assert job["notification"] == "delivered" and job["pending"] is False


def test_identical_request_while_pending_is_400(pki_dir: Path, receiver: Receiver) -> None:
    faults = FaultConfig(notifications=NotificationFaults(delay_seconds=30))
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

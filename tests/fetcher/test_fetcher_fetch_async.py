"""The asynchronous path: 202, then a BatchList POSTed over HTTPS to /espi/notify."""

from __future__ import annotations

import asyncio
import functools

import pytest
from custodian_support import grant_tokens
from fetcher_harness import assert_equals_truth, calls_for, client_calls, running_fetcher
from prometheus_client import REGISTRY
from scwadd_core.sealing import Keyring

pytestmark = pytest.mark.anyio


@pytest.fixture
def settings_for(settings_for):
    """Every fetch here asks for the whole subscription in one batch: a 202, then a BatchList."""
    return functools.partial(settings_for, BATCH_SCOPE="subscription")


def notifications(outcome: str) -> float:
    value = REGISTRY.get_sample_value("scwadd_batch_notifications_total", {"outcome": outcome})
    return value or 0.0


async def test_202_then_notification_gas_and_electric(
    sandbox, settings_for, sealing_keys, observer
):
    settings = settings_for(sandbox)
    tokens = await grant_tokens(sandbox, "gas-electric", share="usage")  # interval calls only
    async with running_fetcher(settings):
        grant = await observer.publish_grant(tokens, Keyring.parse(sealing_keys))
        outcome = await observer.outcome(grant.job_id)
    await assert_equals_truth(sandbox, observer, grant, outcome)
    assert len(outcome.usage_points) == 2
    assert calls_for(sandbox, grant.authorization_uri) == {
        "UsagePoint": 1,
        "BatchSubscription": 1,
    }
    # The BatchList names a Bulk URL: fetched with the client token (PG&E refuses a customer's).
    assert client_calls(sandbox)["BatchBulk"] == 1


async def _wait_for_batch(sandbox, notification: str) -> None:
    for _ in range(400):
        batches = sandbox.admin.get("/admin/batches").json()
        if any(batch["notification"] == notification for batch in batches):
            return
        await asyncio.sleep(0.05)
    raise AssertionError(f"no batch reached notification state {notification!r}")


async def test_lost_notification_is_asked_for_again(sandbox, settings_for, sealing_keys, observer):
    settings = settings_for(
        sandbox,
        BATCH_NOTIFICATION_TIMEOUT_SECONDS=3.0,
    )
    tokens = await grant_tokens(sandbox, "electric-60min")
    sandbox.admin.put("/admin/faults", json={"notifications": {"lose_rate": 1.0}})
    async with running_fetcher(settings):
        grant = await observer.publish_grant(tokens, Keyring.parse(sealing_keys))
        await _wait_for_batch(sandbox, "lost")
        sandbox.admin.put("/admin/faults", json={})  # the next notification arrives
        outcome = await observer.outcome(grant.job_id)
    await assert_equals_truth(sandbox, observer, grant, outcome)
    calls = calls_for(sandbox, grant.authorization_uri)
    assert calls["BatchSubscription"] == 2  # the original request and one re-request
    assert client_calls(sandbox)["BatchBulk"] == 1
    assert len(outcome.raw_objects) == 1


async def test_duplicated_notification_changes_nothing(
    sandbox, settings_for, sealing_keys, observer
):
    settings = settings_for(sandbox)
    tokens = await grant_tokens(sandbox, "solar")
    sandbox.admin.put("/admin/faults", json={"notifications": {"duplicate_rate": 1.0}})
    accepted, duplicates = notifications("accepted"), notifications("duplicate")
    async with running_fetcher(settings):
        grant = await observer.publish_grant(tokens, Keyring.parse(sealing_keys))
        outcome = await observer.outcome(grant.job_id)
        await _wait_for_batch(sandbox, "delivered")
    # Both copies reached /espi/notify; JetStream kept one batch.ready.
    assert notifications("accepted") == accepted + 1
    assert notifications("duplicate") == duplicates + 1
    batches = sandbox.admin.get("/admin/batches").json()
    assert [batch["deliveries"] for batch in batches] == [2]
    await assert_equals_truth(sandbox, observer, grant, outcome)
    assert client_calls(sandbox)["BatchBulk"] == 1
    assert len(outcome.raw_objects) == 1
    assert [e.job_id for e in observer.all_outcomes].count(grant.job_id) == 1


async def test_unrelated_or_forged_notifications_are_refused(
    sandbox, settings_for, fetcher_port, sealing_keys
):
    import ssl

    import httpx

    settings = settings_for(sandbox, NOTIFY_BURST=12, NOTIFY_RATE_PER_SECOND=0.01)
    url = f"https://127.0.0.1:{fetcher_port}/espi/notify"
    ours = f"{sandbox.espi_base}/Batch/Bulk/50916?correlationID=c-1"
    damaged = (
        b'<?xml version="1.0" encoding="UTF-8"?>\\n<ns0:BatchList xmlns:ns0="http://naesb.org/espi">'
        b"<ns0:resources>" + ours.encode() + b"</ns0:resources></ns0:BatchList>"
    )
    recovered_before = notifications("recovered")
    async with (
        running_fetcher(settings),
        httpx.AsyncClient(
            verify=ssl.create_default_context(cafile=str(sandbox.pki.ca_cert))
        ) as web,
    ):
        not_xml = await web.post(url, content=b"hello")
        elsewhere = await web.post(
            url,
            content=b'<BatchList xmlns="http://naesb.org/espi">'
            b"<resources>https://evil.example/steal</resources></BatchList>",
        )
        not_a_batch = await web.post(
            url,
            content=b'<BatchList xmlns="http://naesb.org/espi"><resources>'
            + f"{sandbox.espi_base}/Authorization/1".encode()
            + b"</resources></BatchList>",
        )
        too_many = await web.post(
            url,
            content=b'<BatchList xmlns="http://naesb.org/espi">'
            + b"".join(
                f"<resources>{sandbox.espi_base}/Batch/Bulk/{n}</resources>".encode()
                for n in range(60)
            )
            + b"</BatchList>",
        )
        huge = await web.post(url, content=b"<" * 2_000_000)
        # PG&E's malformed shape: not well-formed XML, but its one URL is plain to read.
        lenient = await web.post(url, content=damaged)
        # The sender has spent its burst of 12: the rest of a flood is refused before parsing.
        flood = [(await web.post(url, content=damaged)).status_code for _ in range(10)]
    assert not_xml.status_code == 400
    assert elsewhere.status_code == 400
    assert not_a_batch.status_code == 400
    assert too_many.status_code == 400 and "at most 50" in too_many.text
    assert huge.status_code == 413
    assert lenient.status_code == 200
    assert notifications("recovered") >= recovered_before + 1
    assert 429 in flood and flood[: flood.index(429)] == [200] * flood.index(429)
    assert all(code == 429 for code in flood[flood.index(429) :])


async def test_unprocessed_batch_400_on_a_rerequest_is_waited_out_like_a_202(
    sandbox, settings_for, sealing_keys, observer
):
    # The BatchList comes late: we ask again meanwhile, and the custodian says it is on it.
    sandbox.admin.put("/admin/faults", json={"notifications": {"delay_seconds": 4.0}})
    settings = settings_for(
        sandbox,
        BATCH_NOTIFICATION_TIMEOUT_SECONDS=2.5,
        BATCH_REREQUESTS=4,
    )
    tokens = await grant_tokens(sandbox, "electric-60min")
    async with running_fetcher(settings):
        grant = await observer.publish_grant(tokens, Keyring.parse(sealing_keys))
        outcome = await observer.outcome(grant.job_id)
    await assert_equals_truth(sandbox, observer, grant, outcome)
    statuses = sandbox.admin.get("/admin/calls").json()["responses_by_status"]
    assert int(statuses["400"]) >= 1  # "An unprocessed batch request ... already exists"
    assert "BatchBulk" not in calls_for(sandbox, grant.authorization_uri)
    assert client_calls(sandbox)["BatchBulk"] == 1
    assert len(outcome.raw_objects) == 1


async def test_concurrent_subscription_batches_each_find_their_own_data(
    sandbox, settings_for, sealing_keys, observer
):
    settings = settings_for(sandbox)
    keyring = Keyring.parse(sealing_keys)
    tokens = [await grant_tokens(sandbox, p) for p in ("electric-60min", "gas-electric")]
    async with running_fetcher(settings):
        grants = [await observer.publish_grant(t, keyring) for t in tokens]
        outcomes = await asyncio.gather(*(observer.outcome(g.job_id) for g in grants))
    for grant, outcome in zip(grants, outcomes, strict=True):
        await assert_equals_truth(sandbox, observer, grant, outcome)
        calls = calls_for(sandbox, grant.authorization_uri)
        assert "BatchBulk" not in calls  # never with the customer's token
        assert sum(calls.values()) <= 4
    # Each job fetches what is announced with the client token, at worst the other's batch too
    # (cut per subscription, so it finds nothing of its own there).
    assert client_calls(sandbox)["BatchBulk"] <= 4

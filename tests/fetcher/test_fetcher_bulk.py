"""BATCH_SCOPE=bulk: grants arriving together share one Batch/Bulk request (client token), and
each job stores only its own subscription's part of the answer."""

from __future__ import annotations

import asyncio

import pytest
from custodian_support import grant_tokens
from fetcher_harness import (
    assert_equals_truth,
    calls_for,
    client_calls,
    readings_in,
    running_fetcher,
)
from scwadd_core.events import FetchCompleted
from scwadd_core.sealing import Keyring
from scwadd_fetcher.bulk import bulk_id_from_authorizations
from scwadd_fetcher.documents import split_by_subscription

pytestmark = pytest.mark.anyio

PROFILES = ("electric-60min", "gas-electric", "solar")


@pytest.mark.timeout(900)  # three years of data made and cut on a possibly busy machine
async def test_a_burst_of_grants_costs_one_bulk_request_and_one_get(
    sandbox, settings_for, sealing_keys, observer
):
    # The sandbox makes three years of data for the one Bulk answer: allow it the time.
    settings = settings_for(
        sandbox, BATCH_SCOPE="bulk", BULK_GATHER_SECONDS=1.5, CUSTODIAN_TIMEOUT_SECONDS=300.0
    )
    keyring = Keyring.parse(sealing_keys)
    # Usage only: this counts the interval calls (bills and customer details: test_fetcher_extras).
    tokens = [await grant_tokens(sandbox, profile, share="usage") for profile in PROFILES]
    before = client_calls(sandbox)
    async with running_fetcher(settings):
        grants = [await observer.publish_grant(t, keyring) for t in tokens]
        # Three year-long documents stored at once: generous on a loaded machine.
        outcomes = await asyncio.gather(*(observer.outcome(g.job_id, 600) for g in grants))
    after = client_calls(sandbox)
    subscriptions = {g.subscription_id for g in grants}
    for grant, outcome in zip(grants, outcomes, strict=True):
        assert isinstance(outcome, FetchCompleted), outcome
        # Exactly the customer's data: equal to the truth, every UsagePoint, nobody else's.
        await assert_equals_truth(sandbox, observer, grant, outcome)
        documents = await observer.raw_documents(outcome.raw_objects)
        for other in subscriptions - {grant.subscription_id}:
            assert all(f"/Subscription/{other}/".encode() not in d for d in documents)
        assert readings_in(documents)
        # Nothing under the customer's own token: the Bulk resource takes the client token.
        assert calls_for(sandbox, grant.authorization_uri) == {}
    # One Bulk request (202), one GET of the URL its BatchList named, one Authorization read
    # to learn the BulkID: for the three customers together.
    assert after.get("BatchBulk", 0) - before.get("BatchBulk", 0) == 2
    assert after.get("Authorization", 0) - before.get("Authorization", 0) == 1


async def test_subscription_scope_follows_a_bulk_url_with_the_client_token(
    sandbox, settings_for, sealing_keys, observer
):
    # The BatchList answering Batch/Subscription names .../Batch/Bulk/{BulkID}?correlationID=..
    settings = settings_for(sandbox, BATCH_SCOPE="subscription")
    tokens = await grant_tokens(sandbox, "multi-site")
    async with running_fetcher(settings):
        grant = await observer.publish_grant(tokens, Keyring.parse(sealing_keys))
        outcome = await observer.outcome(grant.job_id)
    await assert_equals_truth(sandbox, observer, grant, outcome)
    assert "BatchBulk" not in calls_for(sandbox, grant.authorization_uri)
    assert client_calls(sandbox)["BatchBulk"] == 1


async def test_without_a_bulk_resource_named_a_job_fetches_per_usage_point(
    sandbox, settings_for, sealing_keys, observer
):
    # Bulk is the default scope: Authorization documents that name no Bulk resource (here not
    # even readable) must not fail every job; each fetches on its own, and the Authorization
    # documents are read once, not once per job.
    sandbox.admin.put(
        "/admin/faults", json={"endpoints": {"Authorization": {"malformed_rate": 1.0}}}
    ).raise_for_status()
    settings = settings_for(sandbox, BATCH_SCOPE="bulk", BULK_GATHER_SECONDS=0.5)
    keyring = Keyring.parse(sealing_keys)
    tokens = [
        await grant_tokens(sandbox, profile, share="usage")
        for profile in ("electric-60min", "solar")
    ]
    before = client_calls(sandbox)
    async with running_fetcher(settings):
        grants = [await observer.publish_grant(t, keyring) for t in tokens]
        outcomes = await asyncio.gather(*(observer.outcome(g.job_id, 600) for g in grants))
    after = client_calls(sandbox)
    for grant, outcome in zip(grants, outcomes, strict=True):
        assert isinstance(outcome, FetchCompleted), outcome
        await assert_equals_truth(sandbox, observer, grant, outcome)
        assert calls_for(sandbox, grant.authorization_uri) == {
            "UsagePoint": 1,
            "BatchSubscriptionUsagePoint": 1,
        }
    assert after.get("Authorization", 0) - before.get("Authorization", 0) == 1
    assert after.get("BatchBulk", 0) == before.get("BatchBulk", 0)


def test_bulk_is_the_default_scope_and_gathers_a_burst(tmp_path) -> None:
    from scwadd_core.sealing import generate_key
    from scwadd_fetcher.settings import FetcherSettings

    required = {
        "NATS_URL": "nats://127.0.0.1:4222",
        "TOKEN_SEALING_KEYS": generate_key("t"),
        "PGE_CLIENT_ID": "c" * 32,
        "PGE_CLIENT_SECRET": "s",
        "PGE_CLIENT_CERT_FILE": tmp_path / "client.pem",
        "PGE_CLIENT_KEY_FILE": tmp_path / "client.key",
        "PGE_TOKEN_URL": "https://custodian.invalid/token",
        "PGE_API_BASE": "https://custodian.invalid/espi",
    }
    default = FetcherSettings(**required)
    # One Bulk round holds at most FETCH_CONCURRENCY jobs: a burst of 20 consents is one round.
    assert (default.BATCH_SCOPE, default.concurrency) == ("bulk", 32)
    assert FetcherSettings(**required, BATCH_SCOPE="usagepoint").concurrency == 4
    assert FetcherSettings(**required, BATCH_SCOPE="subscription").concurrency == 4
    assert FetcherSettings(**required, FETCH_CONCURRENCY=7).concurrency == 7


def test_a_bulk_feed_is_cut_per_subscription_with_the_shared_entries_once() -> None:
    atom = "http://www.w3.org/2005/Atom"
    base = "https://api.example/espi/1_1/resource"

    def entry(href: str) -> str:
        return f'<entry><link rel="self" href="{base}/{href}"/><title>{href}</title></entry>'

    body = (
        f'<feed xmlns="{atom}">'
        + entry("LocalTimeParameters/1")
        + entry("Subscription/11/UsagePoint/5391320451")
        + entry("ReadingType/NzI6bnVsbDozNjAwOjE=")
        + entry("Subscription/22/UsagePoint/5391320452")
        + entry("ReadingType/NzI6bnVsbDozNjAwOjE=")  # linked by both trees
        + entry("RetailCustomer/9")  # a customer's own record: nobody else's business
        + entry("Subscription/11/UsagePoint/5391320451/MeterReading/x/IntervalBlock/1")
        + "</feed>"
    ).encode()
    split = split_by_subscription(body)
    assert sorted(split.parts) == ["11", "22"]
    assert split.parts["11"].count(b"<title>") == 4  # 2 own + LocalTimeParameters + ReadingType
    assert split.parts["22"].count(b"<title>") == 3
    assert b"5391320452" not in split.parts["11"] and b"RetailCustomer" not in split.parts["11"]
    assert split.shared_entries == 2 and split.dropped_entries == 1


def test_the_bulk_id_is_read_from_the_authorization_documents() -> None:
    espi = "http://naesb.org/espi"
    body = (
        f'<feed xmlns="http://www.w3.org/2005/Atom"><entry><content>'
        f'<Authorization xmlns="{espi}"><resourceURI>https://api.example/r/Batch/Subscription/7'
        f"</resourceURI></Authorization></content></entry><entry><content>"
        f'<Authorization xmlns="{espi}"><resourceURI>https://api.example/r/Batch/Bulk/50916'
        f"</resourceURI></Authorization></content></entry></feed>"
    ).encode()
    assert bulk_id_from_authorizations(body) == "50916"
    assert bulk_id_from_authorizations(body.replace(b"Bulk/50916", b"Subscription/8")) is None

"""A consent becomes raw ESPI in the object store: the synchronous (200) path."""

from __future__ import annotations

import pytest
from custodian_support import grant_tokens
from fetcher_harness import calls_for, readings_in, running_fetcher, truth
from scwadd_core.events import FetchCompleted
from scwadd_core.sealing import Keyring
from scwadd_espi.bills import iter_bills, read_customer

pytestmark = pytest.mark.anyio


async def test_one_meter_customer_in_two_calls_value_for_value(
    sandbox, settings_for, database_url, sealing_keys, observer
):
    """Usage only: the UsagePoint list and one Batch request; no bill, no customer details."""
    settings = settings_for(sandbox, database_url=database_url)
    tokens = await grant_tokens(sandbox, "electric-15min", share="usage")
    async with running_fetcher(settings):
        grant = await observer.publish_grant(tokens, Keyring.parse(sealing_keys))
        outcome = await observer.outcome(grant.job_id)
    assert isinstance(outcome, FetchCompleted), outcome
    assert len(outcome.usage_points) == 1
    documents = await observer.raw_documents(outcome.raw_objects)
    fetched = readings_in(documents)
    start = int(outcome.period_start.timestamp())
    end = int(outcome.period_end.timestamp())
    expected = truth(sandbox, grant.subscription_id, start, end)
    assert expected, "the sandbox should have a year of readings for this customer"
    assert fetched == expected
    calls = calls_for(sandbox, grant.authorization_uri)
    assert calls == {"UsagePoint": 1, "BatchSubscriptionUsagePoint": 1}
    assert outcome.custodian_calls == 2
    assert (outcome.summary_objects, outcome.customer_objects) == ([], [])
    assert list(iter_bills(documents)) == []


async def test_the_subscription_is_the_events_own_field(
    sandbox, settings_for, sealing_keys, observer
):
    # auth reads the subscription id from the resourceURI once and sends it in the event; the
    # fetcher trusts that field and does not parse the resourceURI again (its own rules could
    # differ from auth's).
    settings = settings_for(sandbox)
    tokens = await grant_tokens(sandbox, "electric-15min", share="usage")
    assert tokens.resource_uri
    elsewhere = tokens.resource_uri.rstrip("/").rsplit("/", 1)[0] + "/999999999"
    async with running_fetcher(settings):
        grant = await observer.publish_grant(
            tokens, Keyring.parse(sealing_keys), resource_uri=elsewhere
        )
        outcome = await observer.outcome(grant.job_id)
    assert isinstance(outcome, FetchCompleted), outcome
    assert outcome.subscription_id == grant.subscription_id != "999999999"
    assert calls_for(sandbox, grant.authorization_uri) == {
        "UsagePoint": 1,
        "BatchSubscriptionUsagePoint": 1,
    }


async def test_everything_granted_costs_one_more_call_for_the_customer(
    sandbox, settings_for, sealing_keys, observer
):
    """Bills come with the Batch answer (no UsageSummary call); the customer details take one
    Batch/RetailCustomer call."""
    settings = settings_for(sandbox)
    tokens = await grant_tokens(sandbox, "solar")
    async with running_fetcher(settings):
        grant = await observer.publish_grant(tokens, Keyring.parse(sealing_keys))
        outcome = await observer.outcome(grant.job_id)
    assert isinstance(outcome, FetchCompleted), outcome
    calls = calls_for(sandbox, grant.authorization_uri)
    assert calls == {"UsagePoint": 1, "BatchSubscriptionUsagePoint": 1, "BatchRetailCustomer": 1}
    assert outcome.custodian_calls == 3 and outcome.summary_objects == []
    documents = await observer.raw_documents(outcome.raw_objects)
    bills = list(iter_bills(documents))
    start = int(outcome.period_start.timestamp())
    end = int(outcome.period_end.timestamp())
    served = sandbox.admin.get(
        "/admin/truth",
        params={"subscription_id": grant.subscription_id, "start": start, "end": end},
    ).json()["bills"]
    assert len(bills) == len(served) >= 10
    assert [int(b.period_start.timestamp()) for b in bills] == [s["start"] for s in served]
    [customer_document] = await observer.raw_documents(outcome.customer_objects)
    customer = read_customer(customer_document)
    expected = next(c for c in sandbox.state.customers if c.profile == "solar")
    assert customer.name == expected.name
    assert [a.location.street for a in customer.addresses] == [
        p.address for p in expected.service_points
    ]


async def test_granted_customer_details_that_never_come_are_named_not_dropped(
    sandbox, settings_for, sealing_keys, observer
):
    """RetailCustomer granted, but the custodian keeps failing it: the intervals still complete,
    and the event names what is missing (the exporter puts it in the manifest)."""
    sandbox.admin.put(
        "/admin/faults", json={"endpoints": {"BatchRetailCustomer": {"error_500_rate": 1.0}}}
    )
    settings = settings_for(sandbox, FETCH_RETRY_ATTEMPTS=2, FETCH_RETRY_INITIAL_SECONDS=0.1)
    tokens = await grant_tokens(sandbox, "solar")
    async with running_fetcher(settings):
        grant = await observer.publish_grant(tokens, Keyring.parse(sealing_keys))
        outcome = await observer.outcome(grant.job_id)
    assert isinstance(outcome, FetchCompleted), outcome
    assert outcome.raw_objects and outcome.customer_objects == []
    [missing] = outcome.extras_missing
    assert missing.startswith("the customer's details (RetailCustomer): ")
    assert calls_for(sandbox, grant.authorization_uri)["BatchRetailCustomer"] == 2

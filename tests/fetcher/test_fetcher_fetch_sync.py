"""A consent becomes raw ESPI in the object store: the synchronous (200) path."""

from __future__ import annotations

import pytest
from custodian_support import grant_tokens
from fetcher_harness import calls_for, readings_in, running_fetcher, truth
from scwadd_core.events import FetchCompleted
from scwadd_core.sealing import Keyring

pytestmark = pytest.mark.anyio


async def test_one_meter_customer_in_two_calls_value_for_value(
    sandbox, settings_for, database_url, sealing_keys, observer
):
    settings = settings_for(sandbox, database_url=database_url)
    tokens = await grant_tokens(sandbox, "electric-15min")
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


async def test_the_subscription_is_the_events_own_field(
    sandbox, settings_for, sealing_keys, observer
):
    # auth reads the subscription id from the resourceURI once and sends it in the event; the
    # fetcher trusts that field and does not parse the resourceURI again (its own rules could
    # differ from auth's).
    settings = settings_for(sandbox)
    tokens = await grant_tokens(sandbox, "electric-15min")
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

"""What the custodian does wrong, and what the fetcher makes of it."""

from __future__ import annotations

import csv
import io
import itertools

import pytest
from custodian_support import grant_tokens
from fetcher_harness import assert_equals_truth, calls_for, in_database, running_fetcher
from prometheus_client import REGISTRY
from scwadd_core.events import FetchCompleted, FetchFailed
from scwadd_core.sealing import Keyring
from scwadd_exporter.conversion import convert_documents
from scwadd_fetcher import ledger
from scwadd_fetcher.windows import DAY
from scwadd_sandbox.config import RateLimits

pytestmark = pytest.mark.anyio


def metric(endpoint: str, status: str) -> float:
    value = REGISTRY.get_sample_value(
        "scwadd_custodian_calls_total", {"endpoint": endpoint, "status": status}
    )
    return value or 0.0


async def fetch_one(
    sandbox, observer, settings, sealing_keys, profile="electric-15min", before=None
):
    # Usage only: these tests count the interval calls (bills: test_fetcher_extras.py).
    tokens = await grant_tokens(sandbox, profile, share="usage")
    if before is not None:
        before(tokens)
    async with running_fetcher(settings):
        grant = await observer.publish_grant(tokens, Keyring.parse(sealing_keys))
        outcome = await observer.outcome(grant.job_id)
        job = in_database(settings.DATABASE_URL, lambda s: ledger.get(s, grant.job_id))
    return grant, outcome, job


async def test_204_no_data_is_a_completed_fetch_with_nothing_stored(
    sandbox, settings_for, sealing_keys, observer
):
    sandbox.admin.put(
        "/admin/faults", json={"endpoints": {"BatchSubscriptionUsagePoint": {"empty_rate": 1.0}}}
    )
    settings = settings_for(sandbox)
    _grant, outcome, job = await fetch_one(sandbox, observer, settings, sealing_keys)
    assert isinstance(outcome, FetchCompleted)
    assert outcome.raw_objects == []
    assert job is not None and job.status == "completed"
    assert sandbox.admin.get("/admin/calls").json()["responses_by_status"]["204"] == 1


async def test_5xx_and_malformed_bodies_are_retried_until_good(
    sandbox, settings_for, sealing_keys, observer
):
    faults = {
        "error_500_rate": 0.3,
        "error_503_rate": 0.2,
        "malformed_rate": 0.2,
        "truncate_rate": 0.2,
    }
    sandbox.admin.put(
        "/admin/faults",
        json={
            "seed": 7,
            "endpoints": {"UsagePoint": faults, "BatchSubscriptionUsagePoint": faults},
        },
    )
    settings = settings_for(sandbox, FETCH_RETRY_ATTEMPTS=12)
    grant, outcome, _job = await fetch_one(sandbox, observer, settings, sealing_keys)
    await assert_equals_truth(sandbox, observer, grant, outcome)
    statuses = sandbox.admin.get("/admin/calls").json()["responses_by_status"]
    calls = calls_for(sandbox, grant.authorization_uri)
    # Every failed answer was asked again; exactly one good answer of each kind was kept.
    assert sum(calls.values()) > 2
    assert int(statuses.get("500", 0)) + int(statuses.get("503", 0)) >= 1
    assert outcome.custodian_calls == sum(calls.values())


async def test_5xx_forever_fails_the_job_with_a_sentence(
    sandbox, settings_for, sealing_keys, observer
):
    sandbox.admin.put(
        "/admin/faults",
        json={"endpoints": {"BatchSubscriptionUsagePoint": {"error_500_rate": 1.0}}},
    )
    settings = settings_for(sandbox, FETCH_RETRY_ATTEMPTS=3)
    grant, outcome, job = await fetch_one(sandbox, observer, settings, sealing_keys)
    assert isinstance(outcome, FetchFailed)
    assert "kept failing" in outcome.reason and outcome.reason.endswith(".")
    assert calls_for(sandbox, grant.authorization_uri)["BatchSubscriptionUsagePoint"] == 3
    assert job is not None and job.status == "failed"
    assert job.custodian_calls == 4  # the UsagePoint list and three attempts


async def test_expired_access_token_is_refreshed_once_and_rotated(
    sandbox, settings_for, sealing_keys, observer
):
    settings = settings_for(sandbox)

    def expire(_tokens):
        assert sandbox.admin.post("/admin/tokens/expire", json={}).json()["expired"] >= 1

    refused = metric("Subscription/UsagePoint", "401")
    grant, outcome, job = await fetch_one(sandbox, observer, settings, sealing_keys, before=expire)
    await assert_equals_truth(sandbox, observer, grant, outcome)
    # The refreshed tokens were kept, sealed, for a takeover by another replica.
    assert job is not None and job.sealed_access_token and job.sealed_refresh_token
    keyring = Keyring.parse(sealing_keys)
    from scwadd_core.events import SealedSecret

    fresh = keyring.open(
        SealedSecret.model_validate_json(job.sealed_access_token), job_id=grant.job_id
    )
    assert fresh != keyring.open(grant.access_token, job_id=grant.job_id)
    # One 401 (the sandbox does not count calls with an unknown token), then the data.
    assert metric("Subscription/UsagePoint", "401") == refused + 1
    assert calls_for(sandbox, grant.authorization_uri)["UsagePoint"] == 1


async def test_revoked_grant_fails_after_one_refresh(sandbox, settings_for, sealing_keys, observer):
    settings = settings_for(sandbox)

    def revoke(tokens):
        authorization_id = tokens.authorization_uri.rstrip("/").rsplit("/", 1)[-1]
        answer = sandbox.admin.post(f"/admin/authorizations/{authorization_id}/revoke")
        assert answer.status_code == 200, answer.text

    refused = metric("Subscription/UsagePoint", "401")
    _grant, outcome, job = await fetch_one(sandbox, observer, settings, sealing_keys, before=revoke)
    assert isinstance(outcome, FetchFailed)
    assert "refused access" in outcome.reason
    # One refused call, one refresh attempt (refused too: the grant is gone), no more calls.
    assert metric("Subscription/UsagePoint", "401") == refused + 1
    assert job is not None and job.status == "failed"


async def test_429_retry_after_is_honoured(make_sandbox, settings_for, sealing_keys, observer):
    # The custodian allows 1 call per second; we are configured (wrongly) for 50.
    with make_sandbox(rate_limits=RateLimits(per_second=1, per_hour=1000, per_day=1000)) as sandbox:
        settings = settings_for(sandbox)
        grant, outcome, _job = await fetch_one(sandbox, observer, settings, sealing_keys)
        await assert_equals_truth(sandbox, observer, grant, outcome)
        statuses = sandbox.admin.get("/admin/calls").json()["responses_by_status"]
    assert int(statuses["429"]) >= 1


async def test_window_splitting_learned_from_the_custodian_leaves_no_gap(
    make_sandbox, settings_for, sealing_keys, observer
):
    with make_sandbox(max_range_seconds=100 * DAY) as sandbox:
        settings = settings_for(sandbox)
        grant, outcome, _job = await fetch_one(
            sandbox, observer, settings, sealing_keys, profile="gas-electric"
        )
        await assert_equals_truth(sandbox, observer, grant, outcome)
        calls = calls_for(sandbox, grant.authorization_uri)
        documents = await observer.raw_documents(outcome.raw_objects)
    # PG&E's blocks are whole local days even where a window cuts one, so consecutive windows
    # overlap; the CSV still has each interval once, no gap, and no false gap at the DST days.
    names = [f"{index}.xml" for index in range(len(documents))]
    built = convert_documents(list(zip(names, documents, strict=True)), "default")
    rows = list(csv.DictReader(io.StringIO(built.csv.decode("utf-8-sig"))))
    keys = [(row["usage_point_id"], row["interval_start_utc"]) for row in rows]
    assert len(keys) == len(set(keys)) == built.rows
    assert built.manifest["gap_count"] == 0, built.manifest["usage_points"]
    assert built.manifest["conflicts"] == 0
    assert built.manifest["duplicates"] > 0, "the windows did overlap (whole days)"
    windows = sorted(
        {  # the same windows for each meter
            tuple(int(x) for x in name.rsplit("/", 1)[-1].removesuffix(".xml").split("-"))
            for name in outcome.raw_objects
        }
    )
    assert windows[0][0] == int(outcome.period_start.timestamp())
    assert windows[-1][1] == int(outcome.period_end.timestamp())
    for before, after in itertools.pairwise(windows):
        assert before[1] == after[0]
    assert all(end - start <= 100 * DAY for start, end in windows)
    assert len(windows) == 4  # 366 days in windows of at most 100
    # One refused request taught the limit; then one call per window and meter.
    assert calls == {"UsagePoint": 1, "BatchSubscriptionUsagePoint": 2 * 4 + 1}


async def test_window_splitting_from_the_setting_costs_no_refusal(
    make_sandbox, settings_for, sealing_keys, observer
):
    with make_sandbox(max_range_seconds=200 * DAY) as sandbox:
        settings = settings_for(sandbox, CUSTODIAN_MAX_RANGE_DAYS=200)
        grant, outcome, _job = await fetch_one(sandbox, observer, settings, sealing_keys)
        await assert_equals_truth(sandbox, observer, grant, outcome)
        assert calls_for(sandbox, grant.authorization_uri) == {
            "UsagePoint": 1,
            "BatchSubscriptionUsagePoint": 2,
        }


async def test_a_hanging_custodian_times_out_and_is_asked_again(
    sandbox, settings_for, sealing_keys, observer
):
    import asyncio

    hang = {"endpoints": {"BatchSubscriptionUsagePoint": {"hang_rate": 1.0}}, "hang_seconds": 60}
    sandbox.admin.put("/admin/faults", json=hang)
    settings = settings_for(
        sandbox,
        # A week answers well within the timeout once the custodian stops hanging.
        HISTORY_DAYS=7,
        CUSTODIAN_TIMEOUT_SECONDS=2.0,
        FETCH_RETRY_ATTEMPTS=20,
        FETCH_RETRY_INITIAL_SECONDS=0.5,
        FETCH_RETRY_MAX_SECONDS=0.5,
    )
    timeouts = metric("Batch/Subscription/UsagePoint", "timeout")
    tokens = await grant_tokens(sandbox, "electric-15min")
    async with running_fetcher(settings):
        grant = await observer.publish_grant(tokens, Keyring.parse(sealing_keys))
        for _ in range(600):
            if metric("Batch/Subscription/UsagePoint", "timeout") > timeouts:
                break
            await asyncio.sleep(0.05)
        sandbox.admin.put("/admin/faults", json={})  # the custodian recovers
        outcome = await observer.outcome(grant.job_id)
    await assert_equals_truth(sandbox, observer, grant, outcome)
    assert metric("Batch/Subscription/UsagePoint", "timeout") > timeouts

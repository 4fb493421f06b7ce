"""The job ledger: one owner at a time, takeover after a lost lease, outcome kept for republish."""

from __future__ import annotations

import asyncio

import pytest
from custodian_support import grant_tokens
from fetcher_harness import calls_for, running_fetcher
from scwadd_core.events import FetchFailed, stable_event_id
from scwadd_core.sealing import Keyring
from scwadd_fetcher.jobs import ClaimResult, JobLedger
from scwadd_fetcher.runtime import MIGRATIONS
from scwadd_testing.database import migrated_sessions


@pytest.fixture
def sessions(database_url):
    with migrated_sessions(database_url, MIGRATIONS) as sessions:
        yield sessions


def test_one_owner_at_a_time_then_finished_for_everyone(sessions):
    first = JobLedger(sessions, "replica-a", lease_seconds=60)
    second = JobLedger(sessions, "replica-b", lease_seconds=60)
    assert first.claim("job-1").result is ClaimResult.CLAIMED
    assert second.claim("job-1").result is ClaimResult.BUSY
    # The owner itself may pick its job up again (a redelivery to the same replica).
    assert first.claim("job-1").result is ClaimResult.CLAIMED
    assert first.finish("job-1", "completed", "scwadd.events.fetch.completed", "{}", 2)
    claim = second.claim("job-1")
    assert claim.result is ClaimResult.FINISHED
    assert claim.outcome_event == "{}" and not claim.published
    first.mark_published("job-1")
    assert second.claim("job-1").published


def test_a_lost_lease_is_taken_over_and_the_old_owner_cannot_finish(sessions):
    dead = JobLedger(sessions, "replica-dead", lease_seconds=-1)  # its lease is already over
    alive = JobLedger(sessions, "replica-alive", lease_seconds=60)
    assert dead.claim("job-2").result is ClaimResult.CLAIMED
    dead.save_tokens("job-2", '{"sealed": "access"}', '{"sealed": "refresh"}')
    taken = alive.claim("job-2")
    assert taken.result is ClaimResult.CLAIMED
    assert taken.sealed_refresh_token == '{"sealed": "refresh"}'  # the rotated one, not the event's
    assert not dead.renew("job-2")
    assert not dead.finish("job-2", "failed", "x", "{}", 1)
    job = alive.get("job-2")
    assert job is not None and job.owner == "replica-alive" and job.attempts == 2


@pytest.mark.anyio
async def test_an_outcome_stored_but_never_published_is_published_on_redelivery(
    sandbox, settings_for, sealing_keys, observer
):
    settings = settings_for(sandbox)
    tokens = await grant_tokens(sandbox, "electric-15min")
    async with running_fetcher(settings) as runtime:
        # A replica crashed after recording its outcome and before publishing it.
        ledger = runtime.fetcher.ledger
        job_id = "crashed-job"
        stored = FetchFailed(
            job_id=job_id,
            reason="The recorded reason.",
            event_id=stable_event_id(job_id, "fetch.failed"),
        )
        assert ledger.claim(job_id).result is ClaimResult.CLAIMED
        ledger.finish(job_id, "failed", stored.subject, stored.model_dump_json(), 0)
        grant = await observer.publish_grant(tokens, Keyring.parse(sealing_keys), job_id)
        outcome = await observer.outcome(job_id)
        # Marked right after the publish returns, which may be just after we saw it.
        for _ in range(200):
            job = ledger.get(job_id)
            if job is not None and job.published:
                break
            await asyncio.sleep(0.05)
    assert outcome == stored
    assert job is not None and job.published
    assert calls_for(sandbox, grant.authorization_uri) == {}

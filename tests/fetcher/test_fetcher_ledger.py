"""The job ledger: one owner at a time, takeover after a lost lease, outcome kept for republish."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from datetime import timedelta
from typing import Any

import pytest
from custodian_support import grant_tokens
from fetcher_harness import calls_for, in_database, running_fetcher
from scwadd_core.events import FetchFailed, stable_event_id
from scwadd_core.sealing import Keyring
from scwadd_fetcher import ledger
from scwadd_fetcher.ledger import ClaimResult, Holder
from scwadd_fetcher.runtime import MIGRATIONS
from scwadd_testing.database import migrated_sessions
from sqlalchemy.orm import Session, sessionmaker


@pytest.fixture
def sessions(database_url):
    with migrated_sessions(database_url, MIGRATIONS) as sessions:
        yield sessions


def db(sessions: sessionmaker[Session], work: Callable[..., Any], *args: Any) -> Any:
    """``work(session, *args)`` in one transaction, as the service runs each ledger call."""
    with sessions.begin() as session:
        return work(session, *args)


def test_one_owner_at_a_time_then_finished_for_everyone(sessions):
    first = Holder("replica-a", timedelta(seconds=60))
    second = Holder("replica-b", timedelta(seconds=60))
    assert db(sessions, ledger.claim, "job-1", first).result is ClaimResult.CLAIMED
    assert db(sessions, ledger.claim, "job-1", second).result is ClaimResult.BUSY
    # The owner itself may pick its job up again (a redelivery to the same replica).
    assert db(sessions, ledger.claim, "job-1", first).result is ClaimResult.CLAIMED
    assert db(
        sessions,
        ledger.finish,
        "job-1",
        first,
        "completed",
        "scwadd.events.fetch.completed",
        "{}",
        2,
    )
    claim = db(sessions, ledger.claim, "job-1", second)
    assert claim.result is ClaimResult.FINISHED
    assert claim.outcome_event == "{}" and not claim.published
    db(sessions, ledger.mark_published, "job-1")
    assert db(sessions, ledger.claim, "job-1", second).published


def test_a_lost_lease_is_taken_over_and_the_old_owner_cannot_finish(sessions):
    dead = Holder("replica-dead", timedelta(seconds=-1))  # its lease is already over
    alive = Holder("replica-alive", timedelta(seconds=60))
    assert db(sessions, ledger.claim, "job-2", dead).result is ClaimResult.CLAIMED
    db(sessions, ledger.save_tokens, "job-2", '{"sealed": "access"}', '{"sealed": "refresh"}')
    taken = db(sessions, ledger.claim, "job-2", alive)
    assert taken.result is ClaimResult.CLAIMED
    assert taken.sealed_refresh_token == '{"sealed": "refresh"}'  # the rotated one, not the event's
    assert not db(sessions, ledger.renew, "job-2", dead)
    assert not db(sessions, ledger.finish, "job-2", dead, "failed", "x", "{}", 1)
    job = db(sessions, ledger.get, "job-2")
    assert job is not None and job.owner == "replica-alive" and job.attempts == 2


@pytest.mark.anyio
async def test_an_outcome_stored_but_never_published_is_published_on_redelivery(
    sandbox, settings_for, sealing_keys, observer
):
    settings = settings_for(sandbox)
    tokens = await grant_tokens(sandbox, "electric-15min")
    database = settings.DATABASE_URL
    async with running_fetcher(settings):
        # A replica crashed after recording its outcome and before publishing it.
        crashed = Holder("crashed-replica", timedelta(seconds=60))
        job_id = "crashed-job"
        stored = FetchFailed(
            job_id=job_id,
            reason="The recorded reason.",
            event_id=stable_event_id(job_id, "fetch.failed"),
        )
        claim = in_database(database, lambda s: ledger.claim(s, job_id, crashed))
        assert claim.result is ClaimResult.CLAIMED
        in_database(
            database,
            lambda s: ledger.finish(
                s, job_id, crashed, "failed", stored.subject, stored.model_dump_json(), 0
            ),
        )
        grant = await observer.publish_grant(tokens, Keyring.parse(sealing_keys), job_id)
        outcome = await observer.outcome(job_id)
        # Marked right after the publish returns, which may be just after we saw it.
        for _ in range(200):
            job = in_database(database, lambda s: ledger.get(s, job_id))
            if job is not None and job.published:
                break
            await asyncio.sleep(0.05)
    assert outcome == stored
    assert job is not None and job.published
    assert calls_for(sandbox, grant.authorization_uri) == {}

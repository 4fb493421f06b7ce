"""Several fetcher replicas and repeated events: the budget is shared, a job is fetched once."""

from __future__ import annotations

import asyncio
import contextlib
import os
import socket
import uuid
from datetime import timedelta

import pytest
from custodian_support import grant_tokens
from fetcher_harness import calls_for, fetcher_settings, running_fetcher
from prometheus_client import REGISTRY
from scwadd_core.db import make_engine, run_migrations, session_factory
from scwadd_core.events import GRANT_RECEIVED, FetchCompleted
from scwadd_core.sealing import Keyring
from scwadd_fetcher import ledger
from scwadd_fetcher.ledger import ClaimResult, Holder
from scwadd_fetcher.runtime import MIGRATIONS
from scwadd_sandbox.config import RateLimits
from scwadd_testing.nats import free_port
from sqlalchemy import create_engine, text

pytestmark = pytest.mark.anyio


def acked_grants() -> float:
    value = REGISTRY.get_sample_value(
        "scwadd_bus_messages_total",
        {"durable": "fetcher", "subject": GRANT_RECEIVED, "outcome": "acked"},
    )
    return value or 0.0


# On a loaded machine (load average 15-30 on 2 cores) each call waits for the one before to be
# answered, and the in-process sandbox makes each year of data on the same starved CPUs.
@pytest.mark.timeout(1200)
async def test_two_replicas_share_one_budget_and_one_database(
    make_sandbox, nats_server, tmp_path, fetcher_port, sealing_keys, observer
):
    # The custodian counts 1 call per second for the client ID, whichever replica makes it.
    strict = RateLimits(per_second=1, per_hour=2000, per_day=20000)
    with make_sandbox(rate_limits=strict) as sandbox:
        database = f"sqlite:///{tmp_path / 'fetcher.db'}"
        replicas = [
            fetcher_settings(
                sandbox,
                nats_url=nats_server,
                database_url=database,
                port=port,
                sealing_keys=sealing_keys,
                RATE_LIMIT_PER_SECOND=1.0,
                # One job at a time per replica, so three jobs need both replicas.
                FETCH_CONCURRENCY=1,
                # On a starved machine a replica may miss a 5 s renewal; a long lease keeps a
                # live replica's job its own here, so every job is fetched exactly once.
                JOB_LEASE_SECONDS=300.0,
                # A year of 15-minute data may take the starved sandbox over the default 60 s
                # to make; a timeout would be retried, and a retry is a third call.
                CUSTODIAN_TIMEOUT_SECONDS=600.0,
            )
            for port in (fetcher_port, free_port())
        ]
        keyring = Keyring.parse(sealing_keys)
        tokens = [
            await grant_tokens(sandbox, p, share="usage")  # interval calls only
            for p in ("electric-15min", "solar", "electric-60min")
        ]
        async with contextlib.AsyncExitStack() as stack:
            for settings in replicas:
                await stack.enter_async_context(running_fetcher(settings))
            grants = [await observer.publish_grant(t, keyring) for t in tokens]
            # Generous: on a loaded machine every call waits for the one before to be answered.
            outcomes = await asyncio.gather(
                *(observer.outcome(g.job_id, timeout=900) for g in grants)
            )
        statuses = sandbox.admin.get("/admin/calls").json()["responses_by_status"]
        calls = [calls_for(sandbox, g.authorization_uri) for g in grants]
    assert all(isinstance(o, FetchCompleted) for o in outcomes), outcomes
    assert all(sum(c.values()) == 2 for c in calls)
    # Both replicas worked, and the custodian never had to refuse a call as too frequent.
    engine = create_engine(database)
    with engine.connect() as connection:
        owners = {row[0] for row in connection.execute(text("SELECT owner FROM fetch_jobs"))}
    engine.dispose()
    assert len(owners) == 2
    assert "429" not in statuses


async def test_the_same_grant_twice_is_fetched_once(
    sandbox, settings_for, database_url, sealing_keys, observer
):
    settings = settings_for(sandbox, database_url=database_url)
    tokens = await grant_tokens(sandbox, "electric-15min", share="usage")
    keyring = Keyring.parse(sealing_keys)
    before = acked_grants()
    async with running_fetcher(settings):
        grant = await observer.publish_grant(tokens, keyring)
        first = await observer.outcome(grant.job_id)
        # The same grant again (a new event id, so JetStream does not drop it as a duplicate).
        again = grant.model_copy(update={"event_id": "another-" + grant.event_id})
        await observer.bus.publish(again)
        for _ in range(400):
            if acked_grants() >= before + 2:
                break
            await asyncio.sleep(0.05)
    assert acked_grants() == before + 2
    assert isinstance(first, FetchCompleted)
    assert calls_for(sandbox, grant.authorization_uri) == {
        "UsagePoint": 1,
        "BatchSubscriptionUsagePoint": 1,
    }
    assert [e.job_id for e in observer.all_outcomes].count(grant.job_id) == 1


def retried_grants() -> float:
    value = REGISTRY.get_sample_value(
        "scwadd_bus_messages_total",
        {"durable": "fetcher", "subject": GRANT_RECEIVED, "outcome": "retried"},
    )
    return value or 0.0


async def test_a_job_held_by_a_dead_replica_resumes_when_its_lease_runs_out(
    sandbox, settings_for, database_url, sealing_keys, observer
):
    # A replica claimed the job, then died (kill -9: no lease renewal, no release). The live
    # replica is offered the grant while that lease still runs: it hands the grant back until
    # the lease's end (not for a fixed backoff), and takes the job over on the next delivery.
    settings = settings_for(sandbox, database_url=database_url, JOB_LEASE_SECONDS=4.0)
    tokens = await grant_tokens(sandbox, "electric-15min")
    keyring = Keyring.parse(sealing_keys)
    job_id = uuid.uuid4().hex
    engine = make_engine(database_url)
    run_migrations(database_url, package=MIGRATIONS)
    sessions = session_factory(engine)
    dead = Holder("dead-replica", timedelta(seconds=settings.JOB_LEASE_SECONDS))
    with sessions.begin() as session:
        assert ledger.claim(session, job_id, dead).result is ClaimResult.CLAIMED
    before = retried_grants()
    async with running_fetcher(settings):
        grant = await observer.publish_grant(tokens, keyring, job_id=job_id)
        outcome = await observer.outcome(grant.job_id)
    # The replica running in this test's process (Holder.of_this_process: host-pid-random).
    owner = f"{socket.gethostname()}-{os.getpid()}-"
    with sessions.begin() as session:
        job = ledger.get(session, job_id)
    engine.dispose()
    assert isinstance(outcome, FetchCompleted)
    assert job is not None and job.owner.startswith(owner) and job.attempts == 2
    # Handed back once, until the dead replica's lease ended; the fixed backoff (2 s, 5 s, ...)
    # would have offered it twice before a 4 s lease ran out.
    assert retried_grants() == before + 1

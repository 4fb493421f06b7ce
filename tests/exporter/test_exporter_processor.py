"""The exporter's handlers: idempotent exports, exactly one DELETE, the watchdog's promises.

These tests drive the handlers directly with an in-memory object store and a scripted
custodian, to reach every branch; tests/exporter/test_integration.py runs the service against a
real nats-server and the real sandbox over mutual TLS.
"""

from __future__ import annotations

import asyncio
import json
from datetime import UTC, datetime, timedelta

import pytest
from scwadd_core.bus import RetryLater
from scwadd_core.custodian import CustodianError, RevokeOutcome
from scwadd_core.events import (
    EXPORTS_BUCKET,
    RAW_BUCKET,
    ExportCompleted,
    FetchCompleted,
    FetchFailed,
    GrantReceived,
    GrantRevoked,
    GrantRevokeRequested,
    JobProgress,
    SealedSecret,
)
from scwadd_exporter import ledger
from scwadd_exporter.models import ExporterGrant, ExportRecord, GrantState
from scwadd_exporter.service import Built, Exporter, ExporterPolicy, NotReady

pytestmark = pytest.mark.anyio

AUTH_URI = "https://custodian.test/espi/1_1/resource/Authorization/42"


class MemoryBlobs:
    def __init__(self) -> None:
        self.objects: dict[tuple[str, str], bytes] = {}
        self.puts = 0

    async def get(self, bucket: str, name: str) -> bytes:
        return self.objects[(bucket, name)]

    async def put(self, bucket: str, name: str, data: bytes) -> None:
        self.puts += 1
        self.objects[(bucket, name)] = data


class ScriptedCustodian:
    """Answers DELETEs from a script: an outcome, or an exception to raise."""

    def __init__(self, *script: object) -> None:
        self.script = list(script)
        self.deletes: list[str] = []

    async def revoke(self, authorization_uri: str) -> RevokeOutcome:
        self.deletes.append(authorization_uri)
        answer = self.script.pop(0) if self.script else RevokeOutcome.REVOKED
        if isinstance(answer, Exception):
            raise answer
        assert isinstance(answer, RevokeOutcome)
        return answer


def convert(documents, layout: str) -> Built:
    lines = [line for _name, doc in documents for line in doc.decode().splitlines()]
    if any("garbage" in line for line in lines):
        raise ValueError("raw/job-1/0.xml line 1: not ESPI")
    csv = ("start,value\n" + "\n".join(lines) + "\n").encode()
    return Built(csv=csv, manifest={"usage_points": ["up1"]}, rows=len(lines), readings=len(lines))


def make(sessions, custodian, **policy):
    published: list = []

    async def publish(event):
        published.append(event)

    blobs = MemoryBlobs()
    blobs.objects[(RAW_BUCKET, "raw/job-1/0.xml")] = b"2025-01-01T00:00,1\n2025-01-01T01:00,2"
    exporter = Exporter(
        sessions=sessions,
        blobs=blobs,
        revoker=custodian,
        publish=publish,
        convert=convert,
        policy=ExporterPolicy(
            revoke_backoff_seconds=0.001, revoke_backoff_max_seconds=0.01, **policy
        ),
    )
    return exporter, blobs, published


def grant_event(job_id="job-1", occurred_at=None):
    return GrantReceived(
        job_id=job_id,
        occurred_at=occurred_at or datetime(2026, 1, 15, 12, tzinfo=UTC),
        subscription_id="Sub/../ject 7",
        resource_uri="https://custodian.test/Batch/Subscription/7",
        authorization_uri=AUTH_URI,
        scope="FB=4",
        access_token=SealedSecret(kid="k", nonce="n", ciphertext="c"),
    )


def fetch_event(job_id="job-1"):
    return FetchCompleted(
        job_id=job_id,
        subscription_id="7",
        raw_objects=["raw/job-1/0.xml"],
        usage_points=["up1"],
        period_start=datetime(2025, 1, 1, tzinfo=UTC),
        period_end=datetime(2026, 1, 1, tzinfo=UTC),
        custodian_calls=2,
    )


def of_type(published, cls):
    return [e for e in published if isinstance(e, cls)]


def state_of(sessions, job_id="job-1"):
    with sessions() as session:
        return session.get(ExporterGrant, job_id).state


async def test_fetch_completed_exports_once_and_revokes_once_even_when_delivered_twice(sessions):
    custodian = ScriptedCustodian()
    exporter, blobs, published = make(sessions, custodian)
    await exporter.on_grant_received(grant_event())
    await exporter.on_grant_received(grant_event())  # redelivered
    await exporter.on_fetch_completed(fetch_event())
    await exporter.on_fetch_completed(fetch_event())  # redelivered

    exports = {name for (bucket, name) in blobs.objects if bucket == EXPORTS_BUCKET}
    assert exports == {"Sub-ject-7-20260115-job1.csv", "Sub-ject-7-20260115-job1.manifest.json"}
    assert blobs.puts == 2
    assert custodian.deletes == [AUTH_URI]
    assert state_of(sessions) == GrantState.REVOKED
    with sessions() as session:
        assert session.query(ExportRecord).count() == 1
    # Re-announcements carry the same event ids, so JetStream stores each fact once.
    assert len({e.event_id for e in of_type(published, ExportCompleted)}) == 1
    assert len({e.event_id for e in of_type(published, GrantRevoked)}) == 1
    assert of_type(published, GrantRevoked)[0].outcome == "revoked"
    manifest = json.loads(blobs.objects[(EXPORTS_BUCKET, "Sub-ject-7-20260115-job1.manifest.json")])
    assert manifest["rows"] == 2
    assert manifest["csv"] == "Sub-ject-7-20260115-job1.csv"
    assert manifest["usage_points"] == ["up1"]
    done = [e for e in of_type(published, JobProgress) if e.phase == "done"]
    assert done and done[0].message == "Your data was delivered and access was revoked."


async def test_concurrent_duplicates_send_one_delete(sessions):
    custodian = ScriptedCustodian()
    exporter, _, _ = make(sessions, custodian)
    await exporter.on_grant_received(grant_event())
    results = await asyncio.gather(
        *(exporter.on_fetch_completed(fetch_event()) for _ in range(4)), return_exceptions=True
    )
    # A duplicate that finds the revocation under way elsewhere is handed back to the bus.
    assert all(r is None or isinstance(r, RetryLater) for r in results), results
    for result in results:
        if isinstance(result, RetryLater):
            await exporter.on_fetch_completed(fetch_event())  # the redelivery: announces only
    assert custodian.deletes == [AUTH_URI]
    with sessions() as session:
        assert session.query(ExportRecord).count() == 1


async def test_unconvertible_data_still_revokes_and_says_why(sessions):
    custodian = ScriptedCustodian()
    exporter, blobs, published = make(sessions, custodian)
    blobs.objects[(RAW_BUCKET, "raw/job-1/0.xml")] = b"garbage"
    await exporter.on_grant_received(grant_event())
    await exporter.on_fetch_completed(fetch_event())
    await exporter.on_fetch_completed(fetch_event())
    assert custodian.deletes == [AUTH_URI]
    assert not [k for k in blobs.objects if k[0] == EXPORTS_BUCKET]
    with sessions() as session:
        grant = session.get(ExporterGrant, "job-1")
        assert (grant.state, grant.reason) == (GrantState.REVOKED, "export_failed")
    failed = [e for e in of_type(published, JobProgress) if e.phase == "failed"]
    assert failed and "could not read" in failed[0].message


async def test_fetch_result_before_its_grant_is_retried_later(sessions):
    exporter, _, _ = make(sessions, ScriptedCustodian())
    with pytest.raises(NotReady):
        await exporter.on_fetch_completed(fetch_event())
    with pytest.raises(NotReady):
        await exporter.on_fetch_failed(FetchFailed(job_id="job-1", reason="x"))


async def test_fetch_failed_revokes_and_tells_the_customer(sessions):
    custodian = ScriptedCustodian(RevokeOutcome.ALREADY_REVOKED)
    exporter, blobs, published = make(sessions, custodian)
    await exporter.on_grant_received(grant_event())
    failed = FetchFailed(job_id="job-1", reason="PG&E refused to send your data.")
    await exporter.on_fetch_failed(failed)
    await exporter.on_fetch_failed(failed)
    assert custodian.deletes == [AUTH_URI]
    assert state_of(sessions) == GrantState.ALREADY_REVOKED
    assert not [k for k in blobs.objects if k[0] == EXPORTS_BUCKET]
    assert next(e.outcome for e in of_type(published, GrantRevoked)) == "already_revoked"
    progress = of_type(published, JobProgress)
    assert progress[0].phase == "failed" and "refused" in progress[0].message


async def test_transient_failures_are_retried_until_success(sessions):
    custodian = ScriptedCustodian(
        CustodianError("revocation failed with HTTP 503", status_code=503),
        CustodianError("revocation failed: ConnectTimeout"),
        CustodianError("revocation failed with HTTP 429", status_code=429, retry_after=0.01),
        RevokeOutcome.REVOKED,
    )
    exporter, _, _ = make(sessions, custodian)
    await exporter.on_grant_received(grant_event())
    await exporter.on_fetch_completed(fetch_event())
    assert len(custodian.deletes) == 4
    assert state_of(sessions) == GrantState.REVOKED


async def test_already_revoked_in_a_400_body_counts_as_revoked(sessions):
    custodian = ScriptedCustodian(
        CustodianError(
            "revocation failed with HTTP 400 (Authorization already revoked)", status_code=400
        )
    )
    exporter, _, _ = make(sessions, custodian)
    await exporter.on_grant_received(grant_event())
    await exporter.on_fetch_completed(fetch_event())
    assert state_of(sessions) == GrantState.ALREADY_REVOKED


async def test_permanent_refusal_is_flagged_not_retried(sessions):
    custodian = ScriptedCustodian(
        CustodianError("revocation failed with HTTP 400", status_code=400)
    )
    exporter, _, published = make(sessions, custodian)
    await exporter.on_grant_received(grant_event())
    await exporter.on_fetch_completed(fetch_event())
    assert len(custodian.deletes) == 1
    with sessions() as session:
        grant = session.get(ExporterGrant, "job-1")
        assert (grant.state, grant.reason) == (GrantState.FLAGGED, "revocation_refused")
    revoked = of_type(published, GrantRevoked)
    assert revoked[0].outcome == "failed" and "HTTP 400" in revoked[0].reason
    # The gauge counts it once the grant is old enough.
    counts = await exporter.refresh_gauge(datetime.now(UTC) + timedelta(days=1))
    assert counts == {"revocation_refused": 1}


async def test_operator_revoke_again_retries_a_flagged_grant_once(sessions):
    """The console's "revoke again" (grant.revoke_requested): one DELETE for a flagged grant,
    none for the same request repeated after it succeeded."""
    refused = CustodianError("revocation failed with HTTP 400", status_code=400)
    custodian = ScriptedCustodian(refused, RevokeOutcome.REVOKED)
    exporter, _, published = make(sessions, custodian)
    await exporter.on_grant_received(grant_event())
    await exporter.on_fetch_completed(fetch_event())
    assert state_of(sessions) == GrantState.FLAGGED
    request = GrantRevokeRequested(job_id="job-1", requested_by="operator")
    await exporter.on_revoke_requested(request)
    assert state_of(sessions) == GrantState.REVOKED
    assert len(custodian.deletes) == 2
    await exporter.on_revoke_requested(request)
    assert len(custodian.deletes) == 2
    assert of_type(published, GrantRevoked)[-1].outcome == "revoked"


async def test_exhausted_retries_are_flagged_then_retried_by_the_watchdog(sessions):
    down = [CustodianError("revocation failed with HTTP 502", status_code=502)] * 3
    custodian = ScriptedCustodian(*down, RevokeOutcome.REVOKED)
    exporter, _, _ = make(sessions, custodian, revoke_attempts=3, flagged_retry=timedelta(0))
    await exporter.on_grant_received(grant_event())
    await exporter.on_fetch_completed(fetch_event())
    with sessions() as session:
        grant = session.get(ExporterGrant, "job-1")
        assert (grant.state, grant.reason) == (GrantState.FLAGGED, "revocation_unavailable")
    await exporter.watchdog_pass(datetime.now(UTC) + timedelta(seconds=1))
    assert state_of(sessions) == GrantState.REVOKED
    assert len(custodian.deletes) == 4


def too_many_requests() -> CustodianError:
    return CustodianError("revocation failed with HTTP 429", status_code=429, retry_after=0.001)


async def test_429s_are_waited_out_and_use_up_no_attempt(sessions):
    custodian = ScriptedCustodian(*[too_many_requests() for _ in range(8)], RevokeOutcome.REVOKED)
    exporter, _, published = make(sessions, custodian, revoke_attempts=1)
    await exporter.on_grant_received(grant_event())
    await exporter.on_fetch_completed(fetch_event())
    assert len(custodian.deletes) == 9
    assert state_of(sessions) == GrantState.REVOKED
    assert [e.outcome for e in of_type(published, GrantRevoked)] == ["revoked"]


async def test_failures_between_429s_are_still_counted(sessions):
    bad_gateway = CustodianError("revocation failed with HTTP 502", status_code=502)
    script = [bad_gateway, too_many_requests(), too_many_requests(), bad_gateway]
    custodian = ScriptedCustodian(*script, RevokeOutcome.REVOKED)
    exporter, _, _ = make(sessions, custodian, revoke_attempts=2)
    await exporter.on_grant_received(grant_event())
    await exporter.on_fetch_completed(fetch_event())
    # Two real failures use up two attempts; the 429s in between did not count.
    assert len(custodian.deletes) == 4
    with sessions() as session:
        grant = session.get(ExporterGrant, "job-1")
        assert (grant.state, grant.reason) == (GrantState.FLAGGED, "revocation_unavailable")


async def test_a_custodian_that_only_answers_429_is_flagged_in_the_end(sessions):
    custodian = ScriptedCustodian(*[too_many_requests() for _ in range(5)])
    exporter, _, _ = make(sessions, custodian, revoke_rate_limited_attempts=3)
    await exporter.on_grant_received(grant_event())
    await exporter.on_fetch_completed(fetch_event())
    assert len(custodian.deletes) == 3
    with sessions() as session:
        grant = session.get(ExporterGrant, "job-1")
        assert (grant.state, grant.reason) == (GrantState.FLAGGED, "revocation_unavailable")
        assert "429" in (grant.detail or "")


async def test_watchdog_revokes_grants_whose_fetch_never_finished(sessions):
    custodian = ScriptedCustodian()
    exporter, _, published = make(sessions, custodian, grant_deadline=timedelta(minutes=30))
    received = datetime.now(UTC) - timedelta(hours=1)
    await exporter.on_grant_received(grant_event("late", occurred_at=received))
    await exporter.on_grant_received(grant_event("fresh", occurred_at=datetime.now(UTC)))
    await exporter.watchdog_pass()
    await exporter.watchdog_pass()
    assert custodian.deletes == [AUTH_URI]
    assert state_of(sessions, "late") == GrantState.REVOKED
    assert state_of(sessions, "fresh") == GrantState.WAITING
    failed = [e for e in of_type(published, JobProgress) if e.phase == "failed"]
    assert [e.job_id for e in failed] == ["late"]


async def test_watchdog_takes_over_a_claim_whose_owner_died(sessions):
    custodian = ScriptedCustodian()
    exporter, _, _ = make(sessions, custodian, revoking_lease=timedelta(minutes=5))
    await exporter.on_grant_received(grant_event())
    with sessions.begin() as session:  # a replica claimed, then crashed before the DELETE
        assert ledger.claim_revocation(session, "job-1", "exported")
    await exporter.watchdog_pass()
    assert custodian.deletes == []  # the claim is still fresh
    await exporter.watchdog_pass(datetime.now(UTC) + timedelta(minutes=6))
    assert custodian.deletes == [AUTH_URI]
    assert state_of(sessions) == GrantState.REVOKED


async def test_unrevoked_gauge_counts_stuck_grants(sessions):
    exporter, _, _ = make(sessions, ScriptedCustodian())
    await exporter.on_grant_received(grant_event(occurred_at=datetime.now(UTC)))
    assert await exporter.refresh_gauge() == {}
    later = datetime.now(UTC) + timedelta(hours=2)
    assert await exporter.refresh_gauge(later) == {"stuck_waiting": 1}


def age_claim(sessions, seconds: float, job_id: str = "job-1") -> None:
    """Make the REVOKING claim look ``seconds`` old: its replica stopped renewing it."""
    with sessions.begin() as session:
        grant = session.get(ExporterGrant, job_id)
        grant.state_changed_at = datetime.now(UTC) - timedelta(seconds=seconds)


async def test_a_redelivered_event_takes_over_a_revocation_whose_replica_died(sessions):
    # An exporter wrote the CSV, claimed the revocation and was killed before the DELETE. Its
    # event comes back (JetStream's ack wait): the redelivery revokes, not the watchdog later.
    custodian = ScriptedCustodian()
    exporter, _, _ = make(sessions, custodian, revoking_lease=timedelta(seconds=20))
    await exporter.on_grant_received(grant_event())
    with sessions.begin() as session:
        assert ledger.claim_revocation(session, "job-1", "exported")
    # While the claim is fresh its holder may be alive: the event is handed back until the claim
    # would have gone stale, and no second DELETE is sent.
    with pytest.raises(RetryLater) as later:
        await exporter.on_fetch_completed(fetch_event())
    assert 0 < later.value.delay <= 20.5
    assert custodian.deletes == []
    age_claim(sessions, 21)
    await exporter.on_fetch_completed(fetch_event())
    assert custodian.deletes == [AUTH_URI]
    assert state_of(sessions) == GrantState.REVOKED
    await exporter.on_fetch_completed(fetch_event())  # and once more: nothing is sent twice
    assert custodian.deletes == [AUTH_URI]


class SlowCustodian(ScriptedCustodian):
    """A DELETE that takes until the test lets it answer (a custodian that makes us wait)."""

    def __init__(self) -> None:
        super().__init__()
        self.answer = asyncio.Event()

    async def revoke(self, authorization_uri: str) -> RevokeOutcome:
        self.deletes.append(authorization_uri)
        await self.answer.wait()
        return RevokeOutcome.REVOKED


async def test_a_live_revocation_renews_its_claim_so_nobody_takes_it_over(sessions):
    custodian = SlowCustodian()
    exporter, _, _ = make(sessions, custodian, revoking_lease=timedelta(seconds=0.6))
    await exporter.on_grant_received(grant_event())
    first = asyncio.create_task(exporter.revoke("job-1", reason="exported"))
    with sessions() as session:
        for _ in range(200):
            await asyncio.sleep(0.05)
            grant = session.get(ExporterGrant, "job-1")
            session.refresh(grant)
            if grant.state == GrantState.REVOKING:
                claimed_at = grant.state_changed_at
                break
        # The claim is renewed while the DELETE waits.
        for _ in range(400):
            await asyncio.sleep(0.05)
            session.refresh(grant)
            if grant.state_changed_at > claimed_at:
                break
        assert grant.state_changed_at > claimed_at
    custodian.answer.set()
    await asyncio.wait_for(first, 30)
    assert custodian.deletes == [AUTH_URI]
    assert state_of(sessions) == GrantState.REVOKED


async def test_export_completed_says_what_the_file_covers_on_a_redelivery_too(sessions):
    """The customer's status page learns the period, the period asked for and the UsagePoints
    from ``export.completed``; a redelivery reads them back from the stored manifest."""

    def convert_two_points(documents, layout: str) -> Built:
        built = convert(documents, layout)
        electric = {
            "id": "UP-E",
            "service": "electricity",
            "reading_types": [{"flow_direction": 1}, {"flow_direction": 19}],
            "first_interval_start_utc": "2025-10-01T07:00:00Z",
            "last_interval_end_utc": "2026-01-01T08:00:00Z",
        }
        gas = {"id": "UP-G", "service": "gas", "reading_types": [{"flow_direction": 1}]}
        manifest = {
            "usage_points": [electric, gas, "not a point"],
            "period_start_utc": "2025-10-01T07:00:00Z",
            "period_end_utc": "2026-01-01T08:00:00Z",
        }
        return Built(csv=built.csv, manifest=manifest, rows=built.rows, readings=built.readings)

    exporter, _blobs, published = make(sessions, ScriptedCustodian())
    exporter.convert = convert_two_points
    await exporter.on_grant_received(grant_event())
    await exporter.on_fetch_completed(fetch_event())
    await exporter.on_fetch_completed(fetch_event())  # redelivered: the export exists already

    first, again = of_type(published, ExportCompleted)
    assert first.model_dump(exclude={"occurred_at"}) == again.model_dump(exclude={"occurred_at"})
    assert first.period_start == datetime(2025, 10, 1, 7, tzinfo=UTC)
    assert first.period_end == datetime(2026, 1, 1, 8, tzinfo=UTC)
    assert first.requested_start == datetime(2025, 1, 1, tzinfo=UTC)
    assert first.requested_end == datetime(2026, 1, 1, tzinfo=UTC)
    assert [(p.id, p.service, p.received) for p in first.usage_points] == [
        ("UP-E", "electricity", True),
        ("UP-G", "gas", False),
    ]
    assert first.usage_points[1].start is None


async def test_granted_resources_not_received_are_named_in_the_manifest(sessions):
    """A bill or customer document the fetcher was granted but did not receive is said in the
    manifest (``missing_resources``), never silently absent; without any, the key is absent."""
    missing = ["the customer's details (RetailCustomer): refused by the utility (HTTP 403)"]
    exporter, blobs, _published = make(sessions, ScriptedCustodian())
    await exporter.on_grant_received(grant_event())
    await exporter.on_fetch_completed(fetch_event().model_copy(update={"extras_missing": missing}))
    manifest = json.loads(blobs.objects[(EXPORTS_BUCKET, "Sub-ject-7-20260115-job1.manifest.json")])
    assert manifest["missing_resources"] == missing

    exporter, blobs, _published = make(sessions, ScriptedCustodian())
    await exporter.on_grant_received(grant_event("job-2"))
    await exporter.on_fetch_completed(fetch_event("job-2"))
    [name] = [n for (b, n) in blobs.objects if b == EXPORTS_BUCKET and n.endswith(".json")]
    assert "missing_resources" not in json.loads(blobs.objects[(EXPORTS_BUCKET, name)])

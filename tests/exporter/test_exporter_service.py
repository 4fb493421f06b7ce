"""The exporter against a real nats-server and the real sandbox over mutual TLS.

The raw documents are real sandbox answers fetched with a real customer token; the events are
published on the real bus; the service is the real ``main``. What comes out is checked where the
operator and the custodian see it: the exports bucket and the sandbox's books.
"""

from __future__ import annotations

import asyncio
import base64
import csv
import io
import json
import logging
import os
import re
from datetime import datetime
from decimal import Decimal

import httpx
import pytest
from exporter_support import (
    DAY,
    exporter_settings,
    fetch_raw,
    obtain_grant,
    running_exporter,
    truth,
)
from scwadd_core.bus import Bus, read_object
from scwadd_core.events import (
    EXPORT_COMPLETED,
    EXPORTS_BUCKET,
    GRANT_REVOKED,
    RAW_BUCKET,
    STREAM_EVENTS,
    FetchCompleted,
    FetchFailed,
    GrantReceived,
)
from scwadd_core.sealing import Keyring

pytestmark = pytest.mark.anyio


async def publish_grant(bus: Bus, job_id: str, grant) -> None:
    keyring = Keyring.parse("t:" + base64.b64encode(os.urandom(32)).decode())
    await bus.publish(
        GrantReceived(
            job_id=job_id,
            subscription_id=grant.subscription_id,
            resource_uri=grant.tokens.resource_uri,
            authorization_uri=grant.tokens.authorization_uri,
            scope=grant.tokens.scope or "",
            access_token=keyring.seal(grant.tokens.access_token, job_id=job_id),
        )
    )


async def subject_counts(bus: Bus) -> dict[str, int]:
    info = await bus.js.stream_info(STREAM_EVENTS, subjects_filter=">")
    return dict(info.state.subjects or {})


async def drained(bus: Bus, durable: str = "exporter") -> None:
    for _ in range(300):
        info = await bus.js.consumer_info(STREAM_EVENTS, durable)
        if info.num_pending == 0 and info.num_ack_pending == 0:
            return
        await asyncio.sleep(0.1)
    raise AssertionError(f"consumer {durable} still has work: {info}")


def deletes(sandbox) -> int:
    return sandbox.state.calls_by_client[(sandbox.client_id, "Authorization")]


def csv_values(body: bytes) -> dict[tuple[str, int, str], Decimal]:
    values = {}
    for row in csv.DictReader(io.StringIO(body.decode("utf-8-sig"))):
        start = int(datetime.fromisoformat(row["interval_start_utc"]).timestamp())
        for column in ("delivered", "received"):
            if row[column] != "":
                values[(row["usage_point_id"], start, column)] = Decimal(row[column])
    return values


@pytest.mark.parametrize("profile", ["solar", "gas-electric"])
async def test_export_equals_the_custodians_truth_and_the_grant_ends_revoked(
    sandbox, nats_server, database_url, exporter_port, profile, caplog
):
    caplog.set_level(logging.INFO)
    grant = await obtain_grant(sandbox, profile)
    end = sandbox.state.data_end
    start = end - 10 * DAY
    documents = await fetch_raw(sandbox, grant, start, end)
    bus = await Bus.connect(nats_server, name="test")
    try:
        await bus.ensure_streams()
        raw = await bus.object_store(RAW_BUCKET)
        names = []
        for n, document in enumerate(documents):
            names.append(f"job-1/{n}.xml")
            await raw.put(names[-1], document)
        await publish_grant(bus, "job-1", grant)
        fetched = dict(
            job_id="job-1",
            subscription_id=grant.subscription_id,
            raw_objects=names,
            usage_points=grant.usage_points,
            period_start=datetime.fromtimestamp(start).astimezone(),
            period_end=datetime.fromtimestamp(end).astimezone(),
            custodian_calls=1 + len(names),
        )
        # A duplicate that JetStream cannot de-duplicate (another event id), as a fetcher
        # replica retrying after a crash would send.
        await bus.publish(FetchCompleted(**fetched))
        await bus.publish(FetchCompleted(**fetched))

        settings = exporter_settings(sandbox, nats_server, database_url, exporter_port)
        async with running_exporter(settings) as exporter:
            final = await exporter.wait_for("job-1", {"revoked"})
            assert final["reason"] == "exported"
            assert await exporter.grants("flagged") == []
            await drained(bus)  # the duplicate, too, has been handled and acked
            metrics = (await exporter.client.get("/metrics")).text
            assert re.search(r'^scwadd_revocations_total\{outcome="revoked"\} [1-9]', metrics, re.M)

        exports = await bus.object_store(EXPORTS_BUCKET)
        listed = sorted(info.name for info in await exports.list())
        assert len(listed) == 2
        csv_name, manifest_name = sorted(listed, key=len)
        assert csv_name.endswith(".csv") and manifest_name == csv_name[:-4] + ".manifest.json"
        assert csv_name.startswith(re.sub(r"[^A-Za-z0-9_-]+", "-", grant.subscription_id)[:20])
        customer = next(c for c in sandbox.state.customers if c.profile == profile)
        assert customer.name.split()[0] not in csv_name

        body = await read_object(exports, csv_name)
        expected = truth(sandbox, grant.subscription_id, start, end)
        assert expected, "the sandbox should have readings in the window"
        assert csv_values(body) == expected
        manifest = json.loads(await read_object(exports, manifest_name))
        assert manifest["subscription_id"] == grant.subscription_id
        assert manifest["csv"] == csv_name
        assert manifest["rows"] == body.decode("utf-8-sig").count("\n") - 1
        assert {p["id"] for p in manifest["usage_points"]} == set(grant.usage_points)

        counts = await subject_counts(bus)
        assert counts.get(EXPORT_COMPLETED) == 1
        assert counts.get(GRANT_REVOKED) == 1
    finally:
        await bus.close()

    record = sandbox.state.authorizations[grant.authorization_id]
    assert record.status == "revoked" and record.revoked_by == "third_party"
    assert deletes(sandbox) == 1
    client_tokens = [t for t, r in sandbox.state.tokens.items() if r.token_class == "client"]
    assert client_tokens, "the exporter revoked with a client token the sandbox issued"
    service_lines = "\n".join(
        r.getMessage() for r in caplog.records if not r.name.startswith(("httpx", "httpcore"))
    )
    for secret in (*client_tokens, grant.tokens.access_token, sandbox.client_secret):
        assert secret not in service_lines


async def test_a_failed_fetch_is_revoked_too(sandbox, nats_server, sqlite_url, exporter_port):
    grant = await obtain_grant(sandbox, "electric-15min")
    bus = await Bus.connect(nats_server, name="test")
    try:
        await bus.ensure_streams()
        await publish_grant(bus, "job-2", grant)
        failed = dict(job_id="job-2", reason="PG&E did not send your data.")
        await bus.publish(FetchFailed(**failed))
        await bus.publish(FetchFailed(**failed))
        settings = exporter_settings(sandbox, nats_server, sqlite_url, exporter_port)
        async with running_exporter(settings) as exporter:
            final = await exporter.wait_for("job-2", {"revoked"})
            assert final["reason"] == "fetch_failed"
            await drained(bus)
        assert [i async for i in _names(bus)] == []
    finally:
        await bus.close()
    assert sandbox.state.authorizations[grant.authorization_id].status == "revoked"
    assert deletes(sandbox) == 1


async def _names(bus: Bus):
    store = await bus.object_store(EXPORTS_BUCKET)
    try:
        for info in await store.list():
            yield info.name
    except Exception as error:  # nats-py raises NotFoundError on an empty bucket
        if "not found" not in str(error).lower() and type(error).__name__ != "NotFoundError":
            raise


async def test_watchdog_revokes_a_grant_whose_fetch_never_finished(
    sandbox, nats_server, sqlite_url, exporter_port
):
    grant = await obtain_grant(sandbox, "electric-60min")
    bus = await Bus.connect(nats_server, name="test")
    try:
        await bus.ensure_streams()
        await publish_grant(bus, "job-3", grant)
        settings = exporter_settings(
            sandbox,
            nats_server,
            sqlite_url,
            exporter_port,
            GRANT_DEADLINE_MINUTES=0.01,
            WATCHDOG_INTERVAL_SECONDS=0.2,
        )
        async with running_exporter(settings) as exporter:
            final = await exporter.wait_for("job-3", {"revoked"})
            assert final["reason"] == "fetch_overdue"
    finally:
        await bus.close()
    assert sandbox.state.authorizations[grant.authorization_id].status == "revoked"


async def test_an_unrevocable_grant_is_flagged_then_revoked_when_the_custodian_recovers(
    sandbox, nats_server, sqlite_url, exporter_port, caplog
):
    grant = await obtain_grant(sandbox, "electric-15min")
    broken = sandbox.admin.put(
        "/admin/faults", json={"endpoints": {"Authorization": {"error_503_rate": 1.0}}}
    )
    broken.raise_for_status()
    bus = await Bus.connect(nats_server, name="test")
    try:
        await bus.ensure_streams()
        await publish_grant(bus, "job-4", grant)
        await bus.publish(FetchFailed(job_id="job-4", reason="PG&E did not send your data."))
        settings = exporter_settings(
            sandbox,
            nats_server,
            sqlite_url,
            exporter_port,
            REVOKE_MAX_ATTEMPTS=3,
            UNREVOKED_ALERT_MINUTES=0.001,
            REVOKE_RETRY_FLAGGED_MINUTES=0.01,
            WATCHDOG_INTERVAL_SECONDS=0.2,
        )
        async with running_exporter(settings) as exporter:
            flagged = await exporter.wait_for("job-4", {"flagged"})
            assert flagged["reason"] == "revocation_unavailable"
            assert "503" in flagged["detail"]
            assert [g["job_id"] for g in await exporter.grants("flagged")] == ["job-4"]
            bogus = await exporter.client.get("/grants", params={"status": "bogus"})
            assert bogus.status_code == 400 and "flagged" in bogus.json()["error"]
            for _ in range(50):
                metrics = (await exporter.client.get("/metrics")).text
                gauge = 'scwadd_grants_unrevoked{reason="revocation_unavailable"} 1.0'
                if gauge in metrics:
                    break
                await exporter.client.get("/healthz")
            assert gauge in metrics
            assert "grant NOT revoked" in caplog.text
            assert sandbox.state.authorizations[grant.authorization_id].status != "revoked"

            sandbox.admin.put("/admin/faults", json={}).raise_for_status()
            await exporter.wait_for("job-4", {"revoked"})
            # The gauge is refreshed by the next watchdog pass, not by the revocation itself.
            cleared = 'scwadd_grants_unrevoked{reason="revocation_unavailable"} 0.0'
            loop = asyncio.get_running_loop()
            deadline = loop.time() + 60
            while cleared not in (metrics := (await exporter.client.get("/metrics")).text):
                assert loop.time() < deadline, "the gauge never went back to 0"
                await asyncio.sleep(0.1)
    finally:
        await bus.close()
    assert sandbox.state.authorizations[grant.authorization_id].status == "revoked"


async def test_a_delete_whose_answer_was_lost_is_recorded_revoked_not_failed(sandbox, sessions):
    """The one second DELETE the normal flow keeps: the custodian revoked, its answer never came
    back (the client's read timeout), so the retry is answered 410. That ends the grant
    ``already_revoked`` (revoked, the customer told so), not an error or a flag."""
    from custodian_support import custodian_config
    from scwadd_core.custodian import Custodian, make_http_client
    from scwadd_core.events import GrantRevoked
    from scwadd_exporter.models import ExporterGrant, GrantState
    from scwadd_exporter.service import Exporter, ExporterPolicy

    grant = await obtain_grant(sandbox, "electric-15min")
    record = sandbox.state.authorizations[grant.authorization_id]
    published: list = []

    async def publish(event) -> None:
        published.append(event)

    def set_latency(ms: int) -> None:
        answer = sandbox.admin.put(
            "/admin/faults", json={"endpoints": {"Authorization": {"latency_ms": ms}}}
        )
        answer.raise_for_status()

    config = custodian_config(sandbox)
    # The custodian acts after 1.5 s; we stop listening after 0.5 s.
    http = make_http_client(config, timeout=httpx.Timeout(0.5, connect=10.0))
    async with Custodian(config, http=http) as custodian:
        await custodian.client_token()  # the token request is not the call under test
        exporter = Exporter(
            sessions=sessions,
            blobs=None,  # type: ignore[arg-type]  # a failed fetch reads no object
            revoker=custodian,
            publish=publish,
            convert=lambda documents, layout: None,  # type: ignore[arg-type,return-value]
            policy=ExporterPolicy(
                revoke_attempts=10, revoke_backoff_seconds=0.3, revoke_backoff_max_seconds=1.0
            ),
        )
        await publish_grant_to(exporter, grant)
        await asyncio.to_thread(set_latency, 1500)
        revoking = asyncio.create_task(
            exporter.on_fetch_failed(FetchFailed(job_id="job-lost", reason="no data"))
        )
        for _ in range(600):  # the first DELETE lands at the custodian, its answer lost
            if not record.active or revoking.done():
                break
            await asyncio.sleep(0.05)
        assert not record.active, "the DELETE never reached the custodian"
        await asyncio.to_thread(set_latency, 0)
        await asyncio.wait_for(revoking, timeout=120)
    with sessions() as session:
        row = session.get(ExporterGrant, "job-lost")
        assert row is not None and row.state == GrantState.ALREADY_REVOKED
    (revoked,) = [e for e in published if isinstance(e, GrantRevoked)]
    assert revoked.outcome == "already_revoked"
    assert record.revoked_by == "third_party"
    assert deletes(sandbox) >= 2  # the lost one, and the one answered 410


async def publish_grant_to(exporter, grant) -> None:
    keyring = Keyring.parse("t:" + base64.b64encode(os.urandom(32)).decode())
    await exporter.on_grant_received(
        GrantReceived(
            job_id="job-lost",
            subscription_id=grant.subscription_id,
            resource_uri=grant.tokens.resource_uri,
            authorization_uri=grant.tokens.authorization_uri,
            scope=grant.tokens.scope or "",
            access_token=keyring.seal(grant.tokens.access_token, job_id="job-lost"),
        )
    )

"""The webhooks service's rules on their own: the address guard, signing, the message shapes,
and the ledger's idempotence."""

from __future__ import annotations

import ipaddress
from datetime import UTC, datetime, timedelta

import pytest
from scwadd_core.db import make_engine, run_migrations, session_factory
from scwadd_core.events import ExportCompleted, GrantRevoked, JobProgress
from scwadd_webhooks import ledger
from scwadd_webhooks.delivery import RefusedAddress, Signer, is_refused, vetted_address
from scwadd_webhooks.service import RetryPolicy, message_for, origin
from scwadd_webhooks.settings import WebhookSettings
from standardwebhooks import Webhook
from webhooks_support import NEW_SECRET, OLD_SECRET


@pytest.mark.parametrize(
    "address",
    [
        "127.0.0.1",
        "10.1.2.3",
        "172.16.0.9",
        "192.168.1.1",
        "169.254.169.254",  # the cloud metadata service
        "100.64.0.1",  # shared address space
        "0.0.0.0",
        "::1",
        "fe80::1",
        "fc00::1",
        "::ffff:127.0.0.1",
        "224.0.0.1",
    ],
)
def test_addresses_that_are_not_public_are_refused(address: str) -> None:
    assert is_refused(ipaddress.ip_address(address), [])


def test_public_addresses_pass_and_allowed_networks_open_a_private_one() -> None:
    assert not is_refused(ipaddress.ip_address("93.184.216.34"), [])
    assert not is_refused(ipaddress.ip_address("2606:2800:220:1::1"), [])
    allowed = [ipaddress.ip_network("10.42.0.0/16")]
    assert not is_refused(ipaddress.ip_address("10.42.7.7"), allowed)
    assert is_refused(ipaddress.ip_address("10.43.7.7"), allowed)


@pytest.mark.anyio
async def test_a_name_resolving_to_loopback_is_refused() -> None:
    with pytest.raises(RefusedAddress, match="not a public address"):
        await vetted_address("localhost", 80, [])


def test_every_secret_signs_so_either_side_of_a_rotation_verifies() -> None:
    body = '{"type":"export.ready"}'
    now = datetime.now(UTC)
    headers = Signer([OLD_SECRET, NEW_SECRET]).headers("msg_1", body, now)
    assert headers["webhook-id"] == "msg_1"
    assert headers["webhook-timestamp"] == str(int(now.timestamp()))
    assert len(headers["webhook-signature"].split(" ")) == 2
    for secret in (OLD_SECRET, NEW_SECRET):
        assert Webhook(secret).verify(body, headers) == {"type": "export.ready"}
    with pytest.raises(Exception, match="No matching signature"):
        Webhook(NEW_SECRET).verify(body.replace("ready", "forged"), headers)


def test_messages_carry_ids_and_counts_only() -> None:
    export = ExportCompleted(job_id="j", csv_object="a.csv", manifest_object="a.json", rows=3)
    message = message_for(export)
    assert message is not None and message.event_type == "export.ready"
    assert message.message_id == f"msg_{export.event_id}"
    revoked = message_for(GrantRevoked(job_id="j", outcome="already_revoked"))
    assert revoked is not None and revoked.event_type == "grant.revoked"
    flagged = message_for(GrantRevoked(job_id="j", outcome="failed", reason="r"))
    assert flagged is not None and flagged.event_type == "grant.flagged"
    assert message_for(JobProgress(job_id="j", phase="done", message="m")) is None


def test_origin_hides_path_query_and_credentials() -> None:
    assert (
        origin("https://u:p@hooks.example.com:8443/x?token=s") == "https://hooks.example.com:8443"
    )


def test_backoff_doubles_up_to_its_cap() -> None:
    policy = RetryPolicy(window=timedelta(hours=24), initial=5, maximum=3600)
    waits = [policy.next_wait(n).total_seconds() for n in range(20)]
    assert 4 <= waits[0] <= 6
    assert 8 <= waits[1] <= 12
    assert max(waits) <= 3600 * 1.2


def test_settings_refuse_credentials_in_urls_and_bad_networks() -> None:
    with pytest.raises(ValueError, match="credentials"):
        WebhookSettings(NATS_URL="nats://x", WEBHOOK_ENDPOINTS="https://u:p@h.example/x")
    with pytest.raises(ValueError, match="not an http"):
        WebhookSettings(NATS_URL="nats://x", WEBHOOK_ENDPOINTS="file:///etc/passwd")
    with pytest.raises(ValueError, match="WEBHOOK_ALLOWED_NETWORKS"):
        WebhookSettings(NATS_URL="nats://x", WEBHOOK_ALLOWED_NETWORKS="10.0.0.0/33")


def test_a_redelivered_event_is_recorded_once_and_a_claim_is_taken_once(database_url: str) -> None:
    run_migrations(database_url, package="scwadd_webhooks.migrations")
    engine = make_engine(database_url)
    sessions = session_factory(engine)
    now = datetime.now(UTC)
    kwargs = {
        "message_id": "msg_1",
        "event_type": "export.ready",
        "job_id": "j",
        "payload": "{}",
        "endpoints": ["https://a.example/h", "https://b.example/h"],
        "now": now,
    }
    try:
        with sessions.begin() as session:
            assert ledger.enqueue(session, **kwargs) == 2  # type: ignore[arg-type]
        with sessions.begin() as session:
            assert ledger.enqueue(session, **kwargs) == 0  # type: ignore[arg-type]
        lease = timedelta(seconds=20)
        with sessions.begin() as session:
            assert len(ledger.claim_due(session, now, 10, lease)) == 2
        with sessions.begin() as session:
            assert ledger.claim_due(session, now, 10, lease) == [], "claimed rows are not due"
        with sessions.begin() as session:
            assert len(ledger.claim_due(session, now + lease, 10, lease)) == 2
    finally:
        engine.dispose()

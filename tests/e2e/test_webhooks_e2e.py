"""The operator's systems hear of the export and the revocation: a consent through the real pages
ends in signed Standard Webhooks messages at a receiver that verifies them with the library."""

from __future__ import annotations

import time

import pytest
from webhooks_support import NEW_SECRET, Receiver

from .conftest import System

pytestmark = pytest.mark.e2e


def test_a_consent_ends_in_verified_export_ready_and_grant_revoked(system: System) -> None:
    receiver = Receiver(secret=NEW_SECRET, failures_per_id=1)
    server, endpoint = receiver.serve()
    try:
        system.stack.restart_service(
            "webhooks",
            {
                "WEBHOOK_ENDPOINTS": endpoint,
                "WEBHOOK_SECRETS": NEW_SECRET,
                "WEBHOOK_ALLOWED_NETWORKS": "127.0.0.0/8",
                "WEBHOOK_BACKOFF_SECONDS": "0.2",
                "WEBHOOK_INTERVAL_SECONDS": "0.2",
            },
        )
        _consent, view = system.consent("electric-15min")
        assert view["phase"] == "done", view
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            types = {p["type"]: p for p in receiver.verified.values()}
            if {"export.ready", "grant.revoked"} <= types.keys():
                break
            time.sleep(0.2)
        else:
            raise AssertionError(f"webhooks not received: {receiver.types()}")
    finally:
        server.shutdown()
    assert receiver.bad_signatures == 0
    ready, revoked = types["export.ready"], types["grant.revoked"]
    assert ready["data"]["job_id"] == revoked["data"]["job_id"]
    assert revoked["data"]["outcome"] == "revoked"
    assert ready["data"]["csv_object"] in {e["name"] for e in system.exports()}
    # Each message was refused once and retried under the same webhook-id.
    assert all(receiver.attempts[i] == 2 for i in receiver.verified)

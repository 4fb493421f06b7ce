from __future__ import annotations

import json
from datetime import UTC, datetime

import pytest
from scwadd_core.events import (
    EVENT_TYPES,
    FETCH_COMPLETED,
    JOB_PROGRESS,
    EventDecodeError,
    FetchCompleted,
    JobProgress,
    decode,
    dlq_subject,
    encode,
    stable_event_id,
)


def test_every_subject_in_the_contract_has_a_model() -> None:
    assert set(EVENT_TYPES) == {
        "scwadd.events.grant.received",
        "scwadd.events.batch.ready",
        "scwadd.events.fetch.completed",
        "scwadd.events.fetch.failed",
        "scwadd.events.export.completed",
        "scwadd.events.grant.revoked",
        "scwadd.events.grant.revoke_requested",
        "scwadd.events.job.progress",
    }
    for subject, cls in EVENT_TYPES.items():
        assert cls.subject == subject


def test_round_trip() -> None:
    event = FetchCompleted(
        job_id="j",
        subscription_id="s",
        raw_objects=["j/up1.xml"],
        usage_points=["up1"],
        period_start=datetime(2025, 1, 1, tzinfo=UTC),
        period_end=datetime(2026, 1, 1, tzinfo=UTC),
        custodian_calls=2,
    )
    assert decode(FETCH_COMPLETED, encode(event)) == event


def test_unknown_fields_are_ignored_so_services_upgrade_one_at_a_time() -> None:
    body = json.loads(encode(JobProgress(job_id="j", phase="done", message="Done.")))
    body["added_in_a_later_release"] = 1
    assert isinstance(decode(JOB_PROGRESS, json.dumps(body).encode()), JobProgress)


def test_a_newer_version_is_refused() -> None:
    body = json.loads(encode(JobProgress(job_id="j", phase="done", message="Done.")))
    body["version"] = 2
    with pytest.raises(EventDecodeError, match="newer than the supported 1"):
        decode(JOB_PROGRESS, json.dumps(body).encode())


def test_invalid_bodies_name_fields_not_values() -> None:
    with pytest.raises(EventDecodeError) as caught:
        decode(JOB_PROGRESS, b'{"job_id": "j", "phase": "s3cr3t-phase", "message": "m"}')
    assert "phase" in str(caught.value) and "s3cr3t-phase" not in str(caught.value)
    with pytest.raises(EventDecodeError, match="no event type"):
        decode("scwadd.events.unknown", b"{}")


def test_stable_ids_and_dlq_subjects() -> None:
    assert stable_event_id("job", "revoked") == stable_event_id("job", "revoked")
    assert stable_event_id("job", "revoked") != stable_event_id("job", "failed")
    assert dlq_subject("scwadd.events.grant.received") == "scwadd.dlq.grant.received"

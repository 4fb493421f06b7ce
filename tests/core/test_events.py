from __future__ import annotations

import json
from datetime import UTC, datetime

import pytest
from scwadd_core.events import (
    EVENT_TYPES,
    EXPORT_COMPLETED,
    FETCH_COMPLETED,
    JOB_PROGRESS,
    EventDecodeError,
    ExportCompleted,
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


def test_an_export_completed_from_an_older_exporter_has_no_coverage() -> None:
    """The coverage fields were added with defaults: an exporter not yet upgraded still
    publishes events auth reads (its status page then names no period and no meters)."""
    old = b'{"job_id": "j", "csv_object": "a.csv", "manifest_object": "a.json", "rows": 3}'
    event = decode(EXPORT_COMPLETED, old)
    assert isinstance(event, ExportCompleted)
    assert event.period_start is None and event.requested_end is None
    assert event.usage_points == []
    new = ExportCompleted(
        job_id="j",
        csv_object="a.csv",
        manifest_object="a.json",
        rows=3,
        period_start=datetime(2025, 1, 1, 8, tzinfo=UTC),
        usage_points=[{"id": "UP1", "service": "gas"}],
    )
    again = decode(EXPORT_COMPLETED, encode(new))
    assert isinstance(again, ExportCompleted)
    assert again.usage_points[0].service == "gas" and not again.usage_points[0].received
    assert again.period_start == datetime(2025, 1, 1, 8, tzinfo=UTC)

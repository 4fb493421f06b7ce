"""The status page state folds events idempotently and in any order."""

from __future__ import annotations

import itertools

from scwadd_auth import status
from scwadd_auth.models import Base, JobStatus
from sqlalchemy import create_engine
from sqlalchemy.orm import sessionmaker


def fold(sessions, steps):
    with sessions.begin() as session:
        status.start_status(session, "job", "sid")
    return fold_more(sessions, steps)


def fold_more(sessions, steps):
    for kind, *args in steps:
        with sessions.begin() as session:
            if kind == "progress":
                status.apply_progress(session, "job", *args)
            elif kind == "export":
                status.apply_export_completed(session, "job", *args)
            else:
                status.apply_revoked(session, "job", *args)
    with sessions() as session:
        row = session.get(JobStatus, "job")
        return status.view(row)


HAPPY = [
    ("progress", "fetching", "Reading"),
    ("progress", "exporting", "Building"),
    ("export", 100),
    ("revoked", "revoked", None),
    ("progress", "done", status.DELIVERED_AND_REVOKED),
]


def test_happy_path_ends_delivered_and_revoked_in_any_order():
    for order in itertools.permutations(HAPPY):
        engine = create_engine("sqlite://")
        Base.metadata.create_all(engine)  # 120 orders: a bare schema keeps this fast
        # Every event delivered twice, as an at-least-once bus may do.
        view = fold(sessionmaker(engine), [*order, *order])
        engine.dispose()
        assert view.phase == "done"
        assert view.message == status.DELIVERED_AND_REVOKED
        assert view.finished and view.delivered and view.revoked
        assert view.rows == 100


def test_phase_never_moves_backwards(sessions):
    view = fold(sessions, [("progress", "exporting", "Building"), ("progress", "fetching", "x")])
    assert (view.phase, view.message) == ("exporting", "Building")


def test_failure_then_revocation_says_both(sessions):
    view = fold(
        sessions,
        [("progress", "failed", "PG&E refused to send your data."), ("revoked", "revoked", None)],
    )
    assert view.phase == "failed"
    assert view.finished
    assert "PG&E refused to send your data" in view.message
    assert "revoked" in view.message


def test_a_failed_revocation_is_told_to_the_customer(sessions):
    view = fold(sessions, [("export", 5), ("revoked", "failed", "HTTP 500")])
    assert view.phase == "failed"
    assert view.delivered and not view.revoked
    assert "could not revoke" in view.message


def test_unknown_jobs_are_ignored(sessions):
    with sessions.begin() as session:
        assert not status.apply_progress(session, "nobody", "fetching", "x")
        assert not status.apply_export_completed(session, "nobody", 1)
        assert not status.apply_revoked(session, "nobody", "revoked", None)


def test_done_is_not_shown_before_the_revocation_is_known(sessions):
    view = fold(sessions, [("export", 3), ("progress", "done", status.DELIVERED_AND_REVOKED)])
    assert view.phase == "exporting" and not view.finished and not view.revoked


def test_a_failure_is_not_final_until_the_revocation_is_known(sessions):
    view = fold(sessions, [("progress", "fetching", "Reading"), ("progress", "failed", "No data.")])
    assert view.phase == "fetching" and not view.finished
    assert view.message == "No data. We are now revoking our access to your data."
    view = fold_more(sessions, [("revoked", "revoked", None)])
    assert (view.phase, view.finished, view.revoked) == ("failed", True, True)
    assert view.message == "No data. Access to your data has been revoked."


def _export(start, end, points=None, requested=("2025-01-01T08:00:00Z", "2026-01-01T08:00:00Z")):
    from scwadd_core.events import ExportCompleted

    return ExportCompleted(
        job_id="job",
        csv_object="a.csv",
        manifest_object="a.manifest.json",
        rows=10,
        period_start=start,
        period_end=end,
        requested_start=requested[0],
        requested_end=requested[1],
        usage_points=points
        or [
            {"id": "UP-E", "service": "electricity", "received": True},
            {"id": "UP-G", "service": "gas"},
        ],
    )


def _delivered(sessions, export, scope=None):
    with sessions.begin() as session:
        status.start_status(session, "job", "sid")
        assert status.apply_export_completed(session, "job", export.rows, export)
        assert not status.apply_export_completed(session, "job", export.rows, export)  # again
        status.apply_revoked(session, "job", "revoked", None)
    with sessions() as session:
        return status.view(session.get(JobStatus, "job"), scope)


def test_a_full_year_names_its_pacific_dates_and_meters_and_says_nothing_is_missing(sessions):
    # Data ends a day before the period asked for: the ordinary lag, not a shorter history.
    view = _delivered(sessions, _export("2025-01-01T08:00:00Z", "2025-12-31T08:00:00Z"))
    assert view.phase == "done" and view.finished
    assert view.period == "1 January 2025 to 30 December 2025"
    assert view.shorter is None
    assert [(m.service, m.id, m.what) for m in view.meters] == [
        ("Electricity", "UP-E", "energy used and energy sent to the grid"),
        ("Gas", "UP-G", "gas used"),
    ]
    assert view.as_json()["meters"][1] == {"id": "UP-G", "service": "Gas", "what": "gas used"}


def test_the_customer_chose_three_months(sessions):
    export = _export("2025-10-03T07:00:00Z", "2026-01-01T08:00:00Z")
    view = _delivered(sessions, export, scope="FB=1_3;HistoryLength=7776000;BlockDuration=Daily;")
    assert view.shorter == (
        "Your file covers 3 months, not the 12 months we asked for: on PG&E's page you chose "
        "to share 3 months of history."
    )


def test_the_utility_had_less_than_the_customer_chose(sessions):
    export = _export("2025-11-01T07:00:00Z", "2026-01-01T08:00:00Z")
    view = _delivered(sessions, export, scope="FB=1_3;HistoryLength=7776000;")
    assert view.shorter is not None
    assert view.shorter.endswith(
        "chose to share 3 months of history, and PG&E had readings for only part of that."
    )


def test_the_utility_had_less_than_a_full_grant(sessions):
    export = _export("2025-07-01T07:00:00Z", "2026-01-01T08:00:00Z")
    view = _delivered(sessions, export, scope="FB=1_3;HistoryLength=63072000;")
    assert view.shorter == (
        "Your file covers 6 months, not the 12 months we asked for: PG&E had readings for only "
        "this part of the period."
    )
    # No scope at all (an older ledger row): the same honest sentence, without a guess.
    assert status.history_length_seconds(None) is None


def test_a_failed_page_names_the_step_in_words_and_offers_to_start_again(sessions):
    view = fold(
        sessions,
        [
            ("progress", "fetching", "Reading"),
            ("progress", "failed", "PG&E refused to send your data."),
            ("revoked", "revoked", None),
        ],
    )
    assert view.failed_step == "Reading your data from PG&E"
    assert view.start_again and view.finished


def test_a_failed_export_and_a_failed_revocation_name_their_steps(sessions):
    view = fold(
        sessions,
        [("progress", "exporting", "Building"), ("progress", "failed", "Bad data.")],
    )
    assert view.failed_step is None and not view.finished  # not final before the revocation
    view = fold_more(sessions, [("revoked", "revoked", None)])
    assert view.failed_step == "Building your file"


def test_a_failed_revocation_after_delivery_names_the_revocation(sessions):
    view = fold(sessions, [("export", 5), ("revoked", "failed", "HTTP 500")])
    assert view.failed_step == "Revoking our access to your data"
    assert "delivered" in view.message and "pge.com" in view.message
    # The data was delivered: starting again would only make a second grant.
    assert not view.start_again

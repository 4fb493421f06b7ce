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

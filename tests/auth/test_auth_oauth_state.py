"""OAuth state: random, hashed at rest, single-use, short-lived, bound to one browser."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from scwadd_auth import oauth_state
from scwadd_auth.models import OAuthState
from scwadd_auth.oauth_state import Verdict
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

TTL = timedelta(minutes=10)


def issue(sessions: sessionmaker[Session], browser: str, now: datetime | None = None) -> str:
    with sessions.begin() as session:
        return oauth_state.issue_state(session, browser, TTL, now=now).state


def claim(sessions, state, browser, code, now=None):
    with sessions.begin() as session:
        return oauth_state.claim_state(session, state, browser, code, now=now)


def test_state_has_at_least_128_bits_and_is_stored_only_hashed(sessions):
    browser = oauth_state.new_browser_token()
    states = {issue(sessions, browser) for _ in range(50)}
    assert len(states) == 50
    for state in states:
        # token_urlsafe: 6 bits per character
        assert len(state) * 6 >= 128
    with sessions() as session:
        stored = session.scalars(select(OAuthState)).all()
    stored_text = " ".join(f"{row.state_hash} {row.browser_hash}" for row in stored)
    for state in states:
        assert state not in stored_text
    assert browser not in stored_text


def test_first_claim_wins_and_a_second_use_is_reused_or_replay(sessions):
    browser = oauth_state.new_browser_token()
    state = issue(sessions, browser)
    first = claim(sessions, state, browser, "code-1")
    assert first.verdict is Verdict.CLAIMED
    assert first.job_id and first.status_id
    # The same browser sending the same code again is a replay of the same callback.
    again = claim(sessions, state, browser, "code-1")
    assert again.verdict is Verdict.REPLAY
    assert (again.job_id, again.status_id) == (first.job_id, first.status_id)
    # Any other code with a used state is refused.
    assert claim(sessions, state, browser, "code-2").verdict is Verdict.REUSED
    assert claim(sessions, state, browser, None).verdict is Verdict.REUSED


@pytest.mark.parametrize(
    ("state", "browser", "verdict"),
    [
        (None, "browser", Verdict.MISSING),
        ("", "browser", Verdict.MISSING),
        ("made-up-state", "browser", Verdict.UNKNOWN),
    ],
)
def test_missing_and_unknown_states_are_refused(sessions, state, browser, verdict):
    issue(sessions, "browser")
    assert claim(sessions, state, browser, "code").verdict is verdict


def test_a_state_from_another_browser_is_foreign(sessions):
    state = issue(sessions, oauth_state.new_browser_token())
    assert claim(sessions, state, oauth_state.new_browser_token(), "c").verdict is Verdict.FOREIGN
    assert claim(sessions, state, None, "c").verdict is Verdict.FOREIGN


def test_an_expired_state_is_refused(sessions):
    browser = oauth_state.new_browser_token()
    issued_at = datetime.now(UTC) - TTL - timedelta(seconds=1)
    state = issue(sessions, browser, now=issued_at)
    assert claim(sessions, state, browser, "code").verdict is Verdict.EXPIRED


def test_an_expired_state_is_expired_even_without_its_cookie_and_after_a_purge(sessions):
    # The customer came back after the TTL: the cookie (same lifetime) is gone too, and the
    # periodic purge has run. Before: "not one we issued" (purged) or "another browser".
    browser = oauth_state.new_browser_token()
    now = datetime.now(UTC)
    state = issue(sessions, browser, now=now - TTL - timedelta(seconds=10))
    with sessions.begin() as session:
        oauth_state.purge_expired(session, now)
    assert claim(sessions, state, None, "code").verdict is Verdict.EXPIRED
    assert claim(sessions, state, browser, "code").verdict is Verdict.EXPIRED


def test_purge_drops_states_a_day_past_expiry_or_use(sessions):
    browser = "b"
    now = datetime.now(UTC)
    issue(sessions, browser, now=now - timedelta(hours=1))  # expired an hour ago: kept
    issue(sessions, browser, now=now - timedelta(days=2))  # expired long ago, never used
    recent = issue(sessions, browser, now=now - timedelta(minutes=1))
    claim(sessions, recent, browser, "code", now=now)  # used a moment ago: kept
    old = issue(sessions, browser, now=now - timedelta(days=2))
    claim(sessions, old, browser, "code", now=now - timedelta(days=2) + timedelta(minutes=1))
    issue(sessions, browser, now=now)  # fresh, unused: kept
    with sessions.begin() as session:
        assert oauth_state.purge_expired(session, now) == 2
    with sessions() as session:
        assert session.query(OAuthState).count() == 3
    assert claim(sessions, recent, browser, "code").verdict is Verdict.REPLAY

import itertools
from datetime import UTC, datetime

import pytest
from hypothesis import given
from hypothesis import strategies as st
from scwadd_fetcher.windows import (
    DAY,
    Window,
    history_period,
    is_range_refusal,
    max_range_from_message,
    split,
)


def test_history_period_covers_today_and_whole_days_before():
    now = datetime(2026, 11, 26, 17, 30, tzinfo=UTC)
    period = history_period(365, now)
    assert period.end == int(datetime(2026, 11, 27, tzinfo=UTC).timestamp())
    assert period.start == int(datetime(2025, 11, 26, tzinfo=UTC).timestamp())
    assert period.seconds == 366 * DAY
    assert period.start <= now.timestamp() - 365 * DAY
    assert period.end > now.timestamp()


def test_history_period_rejects_nonsense():
    with pytest.raises(ValueError):
        history_period(0)


def test_no_split_when_the_custodian_allows_the_whole_period():
    period = Window(0, 366 * DAY)
    assert split(period, None) == [period]
    assert split(period, 366 * DAY) == [period]


@given(
    start=st.integers(min_value=0, max_value=2_000_000_000),
    length=st.integers(min_value=1, max_value=800 * DAY),
    max_seconds=st.integers(min_value=3600, max_value=400 * DAY),
)
def test_split_windows_are_contiguous_bounded_and_minimal(start, length, max_seconds):
    period = Window(start, start + length)
    windows = split(period, max_seconds)
    assert windows[0].start == period.start
    assert windows[-1].end == period.end
    for before, after in itertools.pairwise(windows):
        assert before.end == after.start  # no gap, no overlap
    assert all(0 < w.seconds <= max_seconds for w in windows)
    assert len(windows) == -(-length // max_seconds)  # as few as the limit allows


@pytest.mark.parametrize(
    ("message", "seconds"),
    [
        ("The requested range exceeds the maximum of 90 days", 90 * DAY),
        ('{"error":"invalid_request","error_description":"maximum range is 31 days"}', 31 * DAY),
        ("published-max - published-min must not exceed 2592000 seconds", 2592000),
        ("window too long: at most 1 year", 365 * DAY),
    ],
)
def test_max_range_is_read_from_the_custodians_message(message, seconds):
    assert is_range_refusal(message)
    assert max_range_from_message(message) == seconds


def test_unrelated_400_does_not_shrink_windows():
    message = "An unprocessed batch request for the same resource already exists"
    assert max_range_from_message(message) is None
    assert not is_range_refusal("Invalid Certificate")

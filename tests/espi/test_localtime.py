from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest
from hypothesis import given
from hypothesis import strategies as st
from scwadd_espi.localtime import (
    DstRule,
    decode_dst_rule,
    encode_dst_rule,
    espi_tzinfo,
    format_dst_rule,
    local_time_parameters_for,
    tzinfo_for,
)
from scwadd_espi.model import LocalTimeParameters


def test_pge_rules_decode_to_the_us_dates() -> None:
    start = decode_dst_rule("360E2000")
    end = decode_dst_rule("B40E2000")
    assert (start.month, start.day_of_week, start.hour) == (3, 7, 2)
    assert (end.month, end.day_of_week, end.hour) == (11, 7, 2)
    assert start.day_in(2024).isoformat() == "2024-03-10"  # second Sunday of March
    assert end.day_in(2024).isoformat() == "2024-11-03"  # first Sunday of November
    assert start.day_in(2025).isoformat() == "2025-03-09"
    assert end.day_in(2025).isoformat() == "2025-11-02"


def test_rules_for_an_iana_zone_are_the_pge_bitfields() -> None:
    params = local_time_parameters_for(ZoneInfo("America/Los_Angeles"), 2024)
    assert params.tz_offset == -28800
    assert params.dst_offset == 3600
    assert format_dst_rule(params.dst_start_rule) == "360E2000"
    assert format_dst_rule(params.dst_end_rule) == "B40E2000"


@given(
    month=st.integers(1, 12),
    operator=st.integers(2, 7),
    hour=st.integers(0, 23),
    weekday=st.integers(1, 7),
    seconds=st.integers(0, 3599),
)
def test_rule_bitfields_round_trip(
    month: int, operator: int, hour: int, weekday: int, seconds: int
) -> None:
    rule = DstRule(month=month, operator=operator, hour=hour, day_of_week=weekday, seconds=seconds)
    bits = encode_dst_rule(rule)
    assert decode_dst_rule(format_dst_rule(bits)) == rule
    assert rule.day_in(2030).month == month


def test_invalid_rule_is_refused() -> None:
    with pytest.raises(ValueError, match="month 0"):
        decode_dst_rule("00000000")


@pytest.mark.parametrize(
    "zone_name", ["America/Los_Angeles", "America/New_York", "America/Denver", "Australia/Sydney"]
)
def test_espi_zone_agrees_with_the_iana_zone_every_hour(zone_name: str) -> None:
    zone = ZoneInfo(zone_name)
    for year in (2023, 2024, 2025):
        params = local_time_parameters_for(zone, year)
        espi = espi_tzinfo(params)
        moment = datetime(year, 1, 1, tzinfo=UTC)
        while moment.year == year:
            ours = moment.astimezone(espi)
            theirs = moment.astimezone(zone)
            assert ours.replace(tzinfo=None) == theirs.replace(tzinfo=None), moment
            assert ours.utcoffset() == theirs.utcoffset(), moment
            assert ours.fold == theirs.fold, moment
            moment += timedelta(hours=1)


def test_fall_back_hour_is_labelled_twice_with_different_offsets() -> None:
    zone = espi_tzinfo(LocalTimeParameters(-28800, 3600, 0x360E2000, 0xB40E2000))
    first = datetime(2024, 11, 3, 8, 30, tzinfo=UTC).astimezone(zone)
    second = datetime(2024, 11, 3, 9, 30, tzinfo=UTC).astimezone(zone)
    assert first.strftime("%H:%M") == second.strftime("%H:%M") == "01:30"
    assert first.isoformat() == "2024-11-03T01:30:00-07:00"
    assert second.isoformat() == "2024-11-03T01:30:00-08:00"


def test_no_dst_rules_means_a_fixed_offset() -> None:
    zone = espi_tzinfo(LocalTimeParameters(tz_offset=-36000))
    assert datetime(2024, 7, 1, tzinfo=UTC).astimezone(zone).isoformat() == (
        "2024-06-30T14:00:00-10:00"
    )


def test_override_zone_wins_and_unknown_zone_is_refused() -> None:
    params = LocalTimeParameters(-18000, 3600, 0x360E2000, 0xB40E2000)
    assert tzinfo_for(params, "America/Los_Angeles") == ZoneInfo("America/Los_Angeles")
    assert tzinfo_for(None) is UTC
    with pytest.raises(ValueError, match="unknown time zone"):
        tzinfo_for(params, "Nowhere/Special")

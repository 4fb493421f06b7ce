"""Property tests: generated readings → ESPI XML → parser (and → CSV) give back exactly the same
values and timestamps, in both document styles, whatever order the entries come in."""

import io
import random
from datetime import UTC, datetime
from decimal import Decimal

from espi_support import assert_schema_valid, entries_of, feed_from_entries, read_csv, write
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from scwadd_espi.convert import convert
from scwadd_espi.model import (
    DateTimeInterval,
    IntervalBlock,
    IntervalReading,
    LocalTimeParameters,
    RationalNumber,
    ReadingType,
    UsagePoint,
)
from scwadd_espi.parser import read_all
from scwadd_espi.resolve import Resolver
from scwadd_espi.writer import MeterReadingData, UsagePointData

INT48 = st.integers(-(2**47), 2**47 - 1)
QUALITIES = st.sampled_from([0, 7, 8, 9, 10, 11, 12, 13, 14, 17, 18, 19])
MULTIPLIERS = st.sampled_from([-12, -9, -6, -3, -2, -1, 0, 1, 2, 3, 6, 9, 12])
optional = st.none().__or__

reading_types = st.builds(
    ReadingType,
    accumulation_behaviour=optional(st.sampled_from([1, 3, 4, 9])),
    commodity=optional(st.sampled_from([0, 1, 2, 7, 9])),
    consumption_tier=optional(st.integers(0, 5)),
    currency=optional(st.sampled_from([840, 124, 978])),
    data_qualifier=optional(st.sampled_from([0, 2, 8, 12])),
    default_quality=optional(QUALITIES),
    flow_direction=st.sampled_from([1, 19]),
    interval_length=optional(st.sampled_from([300, 900, 3600])),
    kind=optional(st.sampled_from([0, 12, 37])),
    phase=optional(st.sampled_from([0, 769])),
    power_of_ten_multiplier=MULTIPLIERS,
    time_attribute=optional(st.sampled_from([0, 8])),
    tou=optional(st.integers(0, 10)),
    uom=st.sampled_from([72, 169]),
    cpp=optional(st.integers(0, 3)),
    interharmonic=optional(st.builds(RationalNumber, st.integers(0, 800), st.integers(1, 800))),
    measuring_period=optional(st.sampled_from([0, 2, 3])),
    argument=optional(st.builds(RationalNumber, st.integers(0, 9), st.integers(1, 9))),
)


@st.composite
def blocks(draw: st.DrawFn) -> list[IntervalBlock]:
    """Blocks of consecutive readings with unique starts (so the CSV has one row each)."""
    duration = draw(st.sampled_from([300, 900, 3600]))
    start = draw(st.integers(0, 2**32 // duration)) * duration
    result = []
    for _ in range(draw(st.integers(1, 3))):
        count = draw(st.integers(1, 30))
        uniform = draw(st.booleans())  # exercises both of the parser's reading paths
        readings = []
        for index in range(count):
            readings.append(
                IntervalReading(
                    start=start + index * duration,
                    duration=duration,
                    value=draw(INT48),
                    cost=draw(optional(INT48)) if not uniform else None,
                    qualities=tuple(draw(st.lists(QUALITIES, max_size=2))) if not uniform else (),
                    tou=draw(optional(st.integers(0, 20))) if not uniform else None,
                    consumption_tier=draw(optional(st.integers(0, 5))) if not uniform else None,
                    cpp=draw(optional(st.integers(0, 3))) if not uniform else None,
                )
            )
        result.append(IntervalBlock(DateTimeInterval(start, count * duration), readings))
        start += (count + draw(st.integers(0, 3))) * duration
    return result


local_times = st.sampled_from(
    [
        LocalTimeParameters(-28800, 3600, 0x360E2000, 0xB40E2000),
        LocalTimeParameters(-18000, 3600, 0x360E2000, 0xB40E2000),
        LocalTimeParameters(3600, 0, 0, 0),
    ]
)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    style=st.sampled_from(["pge", "generic"]),
    reading_type=reading_types,
    generated=blocks(),
    local_time=local_times,
    kind=st.sampled_from([0, 1]),
    seed=st.integers(0, 2**16),
)
def test_readings_survive_write_and_parse(style, reading_type, generated, local_time, kind, seed):
    point = UsagePointData(
        id="UP-7",
        usage_point=UsagePoint(kind=kind),
        meter_readings=[MeterReadingData("MR-1", reading_type, generated)],
        local_time=local_time,
    )
    entries = entries_of([point], style=style)
    random.Random(seed).shuffle(entries)  # links, not order, tie the tree together
    data = feed_from_entries(entries, style=style)
    assert_schema_valid(data)

    parsed = read_all(io.BytesIO(data))
    resolver = Resolver()
    parsed_blocks = []
    for entry in parsed:
        if isinstance(entry.obj, IntervalBlock):
            parsed_blocks.append((Resolver.block_key(entry), entry.obj))
        else:
            resolver.add(entry)

    def by_start(block: IntervalBlock) -> int:
        return block.interval.start if block.interval else 0

    got = sorted((b for _, b in parsed_blocks), key=by_start)
    assert [(b.interval, list(b.readings)) for b in got] == [
        (b.interval, list(b.readings)) for b in generated
    ]
    for key, _block in parsed_blocks:
        channel = resolver.channel(key)
        assert channel.reading_type == reading_type
        assert channel.local_time == local_time
        assert channel.usage_point_id == "UP-7"
        assert channel.service_kind == kind


@settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(style=st.sampled_from(["pge", "generic"]), generated=blocks(), multiplier=MULTIPLIERS)
def test_csv_values_and_timestamps_are_exact(tmp_path_factory, style, generated, multiplier):
    reading_type = ReadingType(flow_direction=1, uom=72, power_of_ten_multiplier=multiplier)
    point = UsagePointData(
        "UP-9", UsagePoint(kind=0), [MeterReadingData("MR", reading_type, generated)]
    )
    tmp = tmp_path_factory.mktemp("rt")
    source = write(tmp, "in.xml", feed_from_entries(entries_of([point], style=style), style=style))
    report = convert([source], tmp / "out.csv")
    rows = read_csv(tmp / "out.csv")
    expected = [r for b in generated for r in b.readings]
    assert report.rows == len(rows) == len(expected)
    for row, reading in zip(rows, expected, strict=True):
        moment = datetime.fromtimestamp(reading.start, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
        assert row["interval_start_utc"] == moment
        assert datetime.fromisoformat(row["interval_start_local"]).timestamp() == reading.start
        assert int(row["duration_seconds"]) == reading.duration
        # Wh → kWh: exactly value x 10^(multiplier - 3), no float on the way.
        assert Decimal(row["delivered"]) == Decimal(reading.value).scaleb(multiplier - 3)
        assert row["received"] == ""
        assert row["unit"] == "kWh"

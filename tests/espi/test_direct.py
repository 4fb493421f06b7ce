"""The direct path (scwadd_espi._direct) writes what the general path writes, byte for byte.

The general path sorts every reading in SQLite and formats each row through the layout; the direct
path skips both for usage points whose one energy channel came in order. Every feed here is
converted both ways (the general one by turning the direct path off) and must give the same CSV
and the same report.
"""

from __future__ import annotations

import importlib
import io
from dataclasses import replace
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

import pytest
from espi_support import ELECTRIC, PACIFIC, feed_bytes, pacific_time, usage_point
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from scwadd_espi._direct import value_texts
from scwadd_espi._spool import Spool
from scwadd_espi.convert import convert
from scwadd_espi.layouts import decimal_text
from scwadd_espi.model import IntervalBlock, IntervalReading, ReadingType

# The module, not the function scwadd_espi exports under the same name.
convert_module = importlib.import_module("scwadd_espi.convert")


def _both_ways(data: bytes, layout: str = "default") -> None:
    direct_out = io.BytesIO()
    direct = convert([data], direct_out, layout=layout)
    with pytest.MonkeyPatch.context() as patched:
        patched.setattr(convert_module, "_write_direct", lambda *args: False)
        general_out = io.BytesIO()
        general = convert([data], general_out, layout=layout)
    assert direct_out.getvalue().decode() == general_out.getvalue().decode()
    assert direct.to_dict() == general.to_dict()


def _epoch(year: int, month: int, day: int, hour: int = 0) -> int:
    return int(datetime(year, month, day, hour, tzinfo=PACIFIC).astimezone(UTC).timestamp())


def _day_blocks(first: int, days: int, step: int, value: Any) -> list[IntervalBlock]:
    blocks = []
    for day in range(days):
        start = first + day * 86400
        readings = [
            IntervalReading(start + i * step, step, value(start + i * step), qualities=(0,))
            for i in range(86400 // step)
        ]
        blocks.append(IntervalBlock(None, readings))
    return blocks


def test_a_plain_feed_never_opens_the_database(monkeypatch: pytest.MonkeyPatch) -> None:
    """The common shape (one channel per usage point, blocks in order) takes the direct path."""
    # Five days across the spring DST change.
    blocks = _day_blocks(_epoch(2024, 3, 8), 5, 900, lambda s: s % 5000)
    data = feed_bytes(
        [usage_point("UP1", [("MR1", ELECTRIC, blocks)], local_time=pacific_time(2024))]
    )

    def refuse(self: Spool) -> None:
        raise AssertionError("the general path was taken")

    monkeypatch.setattr(Spool, "database", refuse)
    report = convert([data], io.BytesIO())
    assert report.rows == 5 * 96


RECEIVED = replace(ELECTRIC, flow_direction=19)
NET = replace(ELECTRIC, flow_direction=4)
POWER = replace(ELECTRIC, uom=38)  # watts: not interval energy, counted as ignored
TIER_2 = replace(ELECTRIC, tou=2, consumption_tier=1)  # a time-of-use tier's own MeterReading


@st.composite
def _blocks(draw: st.DrawFn, first: int) -> list[IntervalBlock]:
    blocks = []
    start = first
    for _ in range(draw(st.integers(1, 4))):
        step = draw(st.sampled_from([900, 3600]))
        count = draw(st.integers(1, 30))
        regular = draw(st.sampled_from([True, True, True, False]))
        readings = []
        for _ in range(count):
            value = draw(
                st.one_of(
                    st.integers(-(10**6), 10**6),
                    st.integers(-(10**6), 10**6),
                    st.integers(-(10**17), 10**17),
                    st.sampled_from([0, 1, 10, 100000]),
                )
            )
            if regular:
                tier = draw(st.sampled_from([None, 3]))
                readings.append(
                    IntervalReading(start, step, value, qualities=(0,), consumption_tier=tier)
                )
                start += step
            else:
                readings.append(
                    IntervalReading(
                        start,
                        draw(st.sampled_from([step, 60, 7200])),
                        draw(st.one_of(st.none(), st.just(value))),
                        qualities=draw(st.sampled_from([(), (0,), (7, 8)])),
                        tou=draw(st.sampled_from([None, 1])),
                    )
                )
                start += draw(st.sampled_from([step, step * 2, step + 60]))
        blocks.append(IntervalBlock(None, readings))
        start += draw(st.sampled_from([0, 0, 3600, -3600]))  # a gap, or an overlap
    return blocks


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=st.data())
def test_direct_and_general_paths_write_the_same(data: st.DataObject) -> None:
    points = []
    for number in range(data.draw(st.integers(1, 3))):
        first = data.draw(
            st.sampled_from(
                [
                    _epoch(2024, 11, 2, 20),  # fall back on the 3rd
                    _epoch(2024, 3, 9, 22),  # spring forward on the 10th
                    _epoch(2024, 6, 1),
                    _epoch(2024, 6, 1, 5) + 60,
                ]
            )
        )
        meters = []
        kinds: list[ReadingType] = data.draw(
            st.lists(
                st.sampled_from([ELECTRIC, RECEIVED, NET, POWER, TIER_2]), min_size=1, max_size=2
            )
        )
        for index, kind in enumerate(kinds):
            multiplier = data.draw(st.sampled_from([-6, -3, 0, 3, None]))
            reading_type = replace(kind, power_of_ten_multiplier=multiplier)
            meters.append((f"MR{number}-{index}", reading_type, data.draw(_blocks(first))))
        points.append(usage_point(f"UP{number}", meters, local_time=pacific_time(2024)))
    _both_ways(feed_bytes(points, validate=False))


@given(
    values=st.lists(
        st.one_of(st.integers(-(10**16), 10**16), st.integers(-1000, 1000)), min_size=1
    ),
    exponent=st.integers(-18, 4),
)
def test_value_texts_are_the_exact_decimal_texts(values: list[int], exponent: int) -> None:
    texts = value_texts(values, exponent)
    if texts is not None:
        assert texts == [decimal_text(Decimal(v).scaleb(exponent)) for v in values]


def test_value_texts_refuse_what_a_float_cannot_say_exactly() -> None:
    assert value_texts([10**15], -3) is None
    assert value_texts([1], -5) is None  # 1e-05: repr would use an exponent
    assert value_texts([1, 10**16], 0) == ["1", str(10**16)]  # integers are always exact


def test_reading_columns_behave_as_the_list_of_readings() -> None:
    """The reading scan hands a block's readings as columns; they read as a list would."""
    from scwadd_espi._reading_scan import ReadingColumns

    readings = [
        IntervalReading(0, 900, 5, qualities=(0,)),
        IntervalReading(900, 900, None, cost=7, tou=1, consumption_tier=2, cpp=0),
    ]
    columns = ReadingColumns(tuple(zip(*readings, strict=True)))
    assert columns == readings and readings == columns
    assert list(columns) == readings and len(columns) == 2
    assert columns[1] == readings[1] and columns[-1] == readings[-1]
    assert columns[:1] == readings[:1]
    assert columns != readings[:1]
    assert IntervalBlock(None, columns) == IntervalBlock(None, readings)

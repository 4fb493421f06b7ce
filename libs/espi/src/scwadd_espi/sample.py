"""A generated, PG&E-shaped sample feed: something to convert without a utility account.

``write_sample_feed(out)`` writes one week of 15-minute electricity (delivered, plus solar export
as a second MeterReading) and hourly gas for two usage points, around the November DST change,
with Pacific LocalTimeParameters. Values are deterministic (a daily load shape plus a fixed
pseudo-random wobble) so the same call always writes the same bytes.

The pieces are public for everything else that makes PG&E-shaped documents (the tests, the
benchmark): the ReadingTypes PG&E sends (:data:`ELECTRIC`, :data:`SOLAR_EXPORT`, :data:`GAS`) and
:func:`local_day_blocks`, one IntervalBlock per local calendar day.
"""

from __future__ import annotations

import math
import random
from collections.abc import Callable, Iterator
from datetime import UTC, date, datetime, timedelta
from zoneinfo import ZoneInfo

from scwadd_espi.localtime import local_time_parameters_for
from scwadd_espi.model import (
    DateTimeInterval,
    IntervalBlock,
    IntervalReading,
    Quality,
    ReadingType,
    UsagePoint,
)
from scwadd_espi.writer import MeterReadingData, Output, UsagePointData, write_usage_feed

SAMPLE_ZONE = ZoneInfo("America/Los_Angeles")
SAMPLE_FIRST_DAY = date(2024, 10, 30)
SAMPLE_DAYS = 7

#: 15-minute electricity delivered to the customer, Wh x 10**-3.
ELECTRIC = ReadingType(
    accumulation_behaviour=4,
    commodity=1,
    currency=840,
    flow_direction=1,
    interval_length=900,
    kind=12,
    power_of_ten_multiplier=-3,
    uom=72,
)
#: 15-minute electricity received from the customer (solar export).
SOLAR_EXPORT = ReadingType(
    accumulation_behaviour=4,
    commodity=1,
    currency=840,
    flow_direction=19,
    interval_length=900,
    kind=12,
    power_of_ten_multiplier=-3,
    uom=72,
)
#: Hourly gas, therms x 10**-3 (PG&E itself sends -8, which the official schema does not list).
GAS = ReadingType(
    accumulation_behaviour=4,
    commodity=7,
    currency=840,
    flow_direction=1,
    interval_length=3600,
    kind=12,
    power_of_ten_multiplier=-3,
    uom=169,
)


def local_days(first_day: date, days: int, zone: ZoneInfo) -> Iterator[tuple[int, int]]:
    """Start and end (epoch seconds) of each local calendar day: 23 or 25 hours on DST days."""
    for offset in range(days):
        day = first_day + timedelta(days=offset)
        following = day + timedelta(days=1)
        start = datetime(day.year, day.month, day.day, tzinfo=zone)
        end = datetime(following.year, following.month, following.day, tzinfo=zone)
        yield int(start.timestamp()), int(end.timestamp())


def local_day_blocks(
    first_day: date,
    days: int,
    zone: ZoneInfo,
    interval: int = 900,
    value: Callable[[int], int] = lambda start: 1000 + start % 997,
    cost: Callable[[int], int | None] = lambda start: None,
    quality: tuple[int, ...] = (),
) -> Iterator[IntervalBlock]:
    """One IntervalBlock per local calendar day, as PG&E sends them; ``value`` and ``cost`` of
    each reading come from its start (by default a repeatable made-up load, no cost)."""
    for start, end in local_days(first_day, days, zone):
        readings = [
            IntervalReading(moment, interval, value(moment), cost(moment), quality)
            for moment in range(start, end, interval)
        ]
        yield IntervalBlock(DateTimeInterval(start, end - start), readings)


def _hour_of_day(epoch: int) -> float:
    local = datetime.fromtimestamp(epoch, UTC).astimezone(SAMPLE_ZONE)
    return local.hour + local.minute / 60


def _blocks(kind: str, interval: int, seed: int) -> Iterator[IntervalBlock]:
    wobble = random.Random(seed)  # noqa: S311 - repeatable sample data, not a secret
    for start, end in local_days(SAMPLE_FIRST_DAY, SAMPLE_DAYS, SAMPLE_ZONE):
        readings = []
        for moment in range(start, end, interval):
            hour = _hour_of_day(moment)
            if kind == "delivered":  # Wh per 15 minutes: a night floor, morning and evening peaks
                shape = (
                    90
                    + 160 * math.exp(-((hour - 8) ** 2) / 4)
                    + 260 * math.exp(-((hour - 19) ** 2) / 6)
                )
                value = int(shape * 1000 * (0.85 + 0.3 * wobble.random()))
                cost = value // 40  # $0.25/kWh: value/1e6 kWh x 0.25 $ x 1e5 (cost unit)
                readings.append(IntervalReading(moment, interval, value, cost, (Quality.VALID,)))
            elif kind == "received":  # solar export around midday
                sun = max(0.0, math.sin(math.pi * (hour - 7) / 10)) if 7 <= hour <= 17 else 0.0
                value = int(sun * 420 * 1000 * (0.7 + 0.3 * wobble.random()))
                readings.append(IntervalReading(moment, interval, value, None, (Quality.VALID,)))
            else:  # gas, therms x 1000 per hour
                shape = (
                    20
                    + 60 * math.exp(-((hour - 7) ** 2) / 3)
                    + 40 * math.exp(-((hour - 20) ** 2) / 5)
                )
                value = int(shape * (0.8 + 0.4 * wobble.random()))
                readings.append(IntervalReading(moment, interval, value, None, (Quality.VALID,)))
        yield IntervalBlock(DateTimeInterval(start, end - start), readings)


def sample_usage_points() -> list[UsagePointData]:
    local_time = local_time_parameters_for(SAMPLE_ZONE, SAMPLE_FIRST_DAY.year)
    return [
        UsagePointData(
            id="1234567890",
            usage_point=UsagePoint(kind=0),
            meter_readings=[
                MeterReadingData(
                    "RUxFQ1RSSUM6REVMSVZFUkVE", ELECTRIC, _blocks("delivered", 900, 1)
                ),
                MeterReadingData(
                    "RUxFQ1RSSUM6UkVDRUlWRUQ", SOLAR_EXPORT, _blocks("received", 900, 2)
                ),
            ],
            local_time=local_time,
            title="Electric service",
        ),
        UsagePointData(
            id="2345678901",
            usage_point=UsagePoint(kind=1),
            meter_readings=[MeterReadingData("R0FTOkRFTElWRVJFRA", GAS, _blocks("gas", 3600, 3))],
            local_time=local_time,
            title="Gas service",
        ),
    ]


def write_sample_feed(out: Output) -> int:
    """Write the sample (PG&E style); returns the number of entries."""
    published = datetime(2024, 11, 6, 12, 0, tzinfo=UTC)
    return write_usage_feed(
        out, "SAMPLE-SUBSCRIPTION", sample_usage_points(), style="pge", published=published
    )

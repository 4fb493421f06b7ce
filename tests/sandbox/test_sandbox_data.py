"""The synthetic customers: deterministic, PG&E's units, Pacific days, plausible shapes."""

from __future__ import annotations

import base64
import datetime as dt
from zoneinfo import ZoneInfo

from scwadd_sandbox import data

PACIFIC = ZoneInfo("America/Los_Angeles")


def _day(year: int, month: int, day: int) -> tuple[int, int]:
    start = dt.datetime(year, month, day, tzinfo=PACIFIC)
    end = dt.datetime.combine(start.date() + dt.timedelta(days=1), dt.time(), PACIFIC)
    return int(start.timestamp()), int(end.timestamp())


def test_same_seed_same_customers_and_readings_other_seed_other_data() -> None:
    first, again, other = data.build_customers(1), data.build_customers(1), data.build_customers(2)
    assert first == again
    assert first[0].retail_customer_id != other[0].retail_customer_id
    start, end = _day(2025, 7, 1)
    point = first[0].service_points[0]
    one = list(data.readings(1, point, point.meters[0], start, end))
    assert one == list(data.readings(1, point, point.meters[0], start, end))
    moved = other[0].service_points[0]
    assert [r.value for r in one] != [
        r.value for r in data.readings(2, moved, moved.meters[0], start, end)
    ]


def test_a_reading_does_not_depend_on_the_range_asked_for() -> None:
    point = data.build_customers(5)[0].service_points[0]
    meter = point.meters[0]
    start, end = _day(2025, 1, 10)
    whole = {r.start: r for r in data.readings(5, point, meter, start, end)}
    part = list(data.readings(5, point, meter, start + 3600, start + 7200))
    assert part and all(whole[r.start] == r for r in part)


def test_ids_have_pges_shapes() -> None:
    """UsagePoint ids are 10 decimal digits, a ReadingType id is base64 of
    ``uom:null:interval:flow``, a MeterReading id base64 of that plus ``:1`` (the reference's
    "PG&E's id shapes")."""
    customers = data.build_customers(3, 10)
    for customer in customers:
        for point in customer.service_points:
            assert point.usage_point_id.isdigit() and len(point.usage_point_id) == 10
            for meter in point.meters:
                spec = meter.spec
                decoded = base64.b64decode(spec.reading_type_id).decode()
                assert decoded == (f"{spec.uom}:null:{spec.interval_length}:{spec.flow_direction}")
                assert base64.b64decode(meter.meter_reading_id).decode() == (
                    f"{spec.reading_type_id}:1"
                )
    hourly = {c.profile: c for c in customers}["electric-60min"].service_points[0].meters[0]
    assert hourly.spec.reading_type_id == "NzI6bnVsbDozNjAwOjE="  # PG&E's own example
    points = [p.usage_point_id for c in customers for p in c.service_points]
    assert len(set(points)) == len(points)


def test_dst_days_and_daily_gas_durations() -> None:
    customers = {c.profile: c for c in data.build_customers(9)}
    electric, gas = customers["gas-electric"].service_points
    for (start, end), hours in ((_day(2025, 3, 9), 23), (_day(2025, 11, 2), 25)):
        assert len(list(data.readings(9, electric, electric.meters[0], start, end))) == hours
        [day] = list(data.readings(9, gas, gas.meters[0], start, end))
        # PG&E's gas day starts at 00:00:01 local and lasts the local day.
        assert (day.start, day.duration) == (start + 1, hours * 3600)
    fifteen = customers["electric-15min"].service_points[0]
    start, end = _day(2025, 11, 2)
    assert len(list(data.readings(9, fifteen, fifteen.meters[0], start, end))) == 100


def test_solar_exports_by_day_and_not_by_night() -> None:
    solar = {c.profile: c for c in data.build_customers(4)}["solar"].service_points[0]
    forward, reverse = solar.meters
    assert (forward.spec.flow_direction, reverse.spec.flow_direction) == (1, 19)
    start, end = _day(2025, 6, 21)
    exported = {r.start: r.value for r in data.readings(4, solar, reverse, start, end)}
    night = [v for t, v in exported.items() if dt.datetime.fromtimestamp(t, PACIFIC).hour < 4]
    noon = [v for t, v in exported.items() if 11 <= dt.datetime.fromtimestamp(t, PACIFIC).hour < 14]
    assert set(night) == {0}
    assert sum(noon) > 0
    for item in data.readings(4, solar, forward, start, end):
        assert isinstance(item.value, int) and item.value >= 0


def test_units_are_pges() -> None:
    customers = {c.profile: c for c in data.build_customers(1)}
    electric = customers["electric-60min"].service_points[0].meters[0].spec
    gas = customers["gas-electric"].service_points[1].meters[0].spec
    assert (electric.uom, electric.power_of_ten_multiplier, electric.interval_length) == (
        72,
        -3,
        3600,
    )
    assert (gas.uom, gas.power_of_ten_multiplier, gas.commodity) == (169, -8, 7)

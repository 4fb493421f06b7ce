"""Deterministic synthetic customers and their meter readings.

Everything here is a pure function of the seed: the customers, their identifiers and every
reading. A reading is computed from ``(seed, meter reading id, interval start)`` alone, so any
range can be produced on demand, two requests for overlapping ranges agree value by value, and
the ground-truth endpoint returns exactly what the ESPI documents carry.

Units follow PG&E: electricity in Wh with powerOfTenMultiplier -3 (raw 1449000 = 1449 Wh), gas
in therms with powerOfTenMultiplier -8. Interval boundaries are Pacific-time days: a spring-forward
day holds 23 hours of readings (92 at 15 minutes), a fall-back day 25 hours (100), and a daily
gas reading on those days lasts 82800 or 90000 seconds. As in real PG&E feeds, a gas reading starts
one second after local midnight (``00:00:01``).

Ids have PG&E's shapes ("PG&E's id shapes" in the reference): UsagePoint ids are 10 decimal
digits; a ReadingType id is base64 of ``uom:null:interval:flow`` (``NzI6bnVsbDozNjAwOjE=`` is
``72:null:3600:1``); a MeterReading id is base64 of that id plus ``:1``. A client must treat them
as opaque strings: nothing else about them is promised.
"""

from __future__ import annotations

import base64
import datetime as dt
import functools
import hashlib
import math
from collections.abc import Iterator
from dataclasses import dataclass
from zoneinfo import ZoneInfo

PACIFIC = ZoneInfo("America/Los_Angeles")

UOM_WH = 72
UOM_THERM = 169
ELECTRIC_MULTIPLIER = -3
GAS_MULTIPLIER = -8
FLOW_FORWARD = 1
FLOW_REVERSE = 19
KIND_ELECTRICITY = 0
KIND_GAS = 1
COMMODITY_ELECTRICITY = 1
COMMODITY_GAS = 7
QUALITY_VALIDATED = 17
QUALITY_ESTIMATED = 8
QUALITY_EDITED = 7
# Seasonal time-of-use codes (tariff E-TOU-C: peak 16:00-21:00 every day), explained in every
# feed by a ProgramIdMappings entry as PG&E does. Codes 2 and 5 (part-peak) exist in PG&E's
# mapping but E-TOU-C has no part-peak, so they never occur.
TOU_SUMMER_PEAK = 1
TOU_SUMMER_PART_PEAK = 2
TOU_SUMMER_OFF_PEAK = 3
TOU_WINTER_PEAK = 4
TOU_WINTER_PART_PEAK = 5
TOU_WINTER_OFF_PEAK = 6
TOU_NAMES: dict[int, str] = {
    TOU_SUMMER_PEAK: "Summer Peak",
    TOU_SUMMER_PART_PEAK: "Summer Part-Peak",
    TOU_SUMMER_OFF_PEAK: "Summer Off-Peak",
    TOU_WINTER_PEAK: "Winter Peak",
    TOU_WINTER_PART_PEAK: "Winter Part-Peak",
    TOU_WINTER_OFF_PEAK: "Winter Off-Peak",
}
SUMMER_MONTHS = range(6, 10)  # June to September, PG&E's summer season
# Gas readings (and their blocks) start this long after local midnight, as PG&E's do.
GAS_DAY_OFFSET = 1
DAY = 86400


@dataclass(frozen=True)
class ReadingSpec:
    """What a MeterReading measures: its ReadingType."""

    reading_type_id: str
    uom: int
    power_of_ten_multiplier: int
    flow_direction: int
    interval_length: int  # seconds; 86400 means "one Pacific day" for gas
    commodity: int

    @property
    def daily(self) -> bool:
        return self.interval_length == DAY


@dataclass(frozen=True)
class Meter:
    """A MeterReading: one series of readings of one UsagePoint."""

    meter_reading_id: str
    spec: ReadingSpec


@dataclass(frozen=True)
class ServicePoint:
    """A UsagePoint (PG&E service agreement)."""

    usage_point_id: str
    kind: int  # 0 electricity, 1 gas
    address: str
    meters: tuple[Meter, ...]
    solar: bool = False
    load_scale: float = 1.0


@dataclass(frozen=True)
class Customer:
    retail_customer_id: str
    name: str
    profile: str  # what the customer is for, e.g. "solar"
    service_points: tuple[ServicePoint, ...]
    city: str = "Oakland"
    postal_code: str = "94610"

    def service_point(self, usage_point_id: str) -> ServicePoint | None:
        for point in self.service_points:
            if point.usage_point_id == usage_point_id:
                return point
        return None


@dataclass(frozen=True)
class Reading:
    start: int
    duration: int
    value: int  # raw, x 10**power_of_ten_multiplier in the spec's uom
    quality: int
    tou: int | None
    cost: int  # hundred-thousandths of a dollar


# The customer book: (profile, name, [(kind, interval seconds, solar, load scale, street)]).
_PROFILES: tuple[tuple[str, str, tuple[tuple[int, int, bool, float, str], ...]], ...] = (
    ("electric-15min", "Avery Quinn", ((KIND_ELECTRICITY, 900, False, 1.0, "12 Alder St"),)),
    ("electric-60min", "Blake Romero", ((KIND_ELECTRICITY, 3600, False, 1.3, "48 Birch Ave"),)),
    ("solar", "Casey Nakamura", ((KIND_ELECTRICITY, 900, True, 1.1, "7 Cedar Ct"),)),
    (
        "gas-electric",
        "Devon Okafor",
        ((KIND_ELECTRICITY, 3600, False, 0.9, "300 Dogwood Ln"), (KIND_GAS, DAY, False, 1.0, "")),
    ),
    (
        "multi-site",
        "Emery Valdez",
        (
            (KIND_ELECTRICITY, 900, False, 1.0, "1 Elm Plaza"),
            (KIND_ELECTRICITY, 3600, False, 2.5, "1 Elm Plaza, Unit B"),
            (KIND_ELECTRICITY, 900, True, 0.8, "22 Fir Rd"),
            (KIND_GAS, DAY, False, 1.4, "1 Elm Plaza"),
        ),
    ),
)


def _decimal_id(seed: int, digits: int, *parts: object) -> str:
    """A stable decimal id of exactly ``digits`` digits (PG&E's UsagePoint ids have 10)."""
    digest = hashlib.sha256(":".join(str(p) for p in (seed, *parts)).encode()).digest()
    low = 10 ** (digits - 1)
    return str(int.from_bytes(digest[:8], "big") % (9 * low) + low)


def reading_type_id(uom: int, interval_length: int, flow_direction: int) -> str:
    """PG&E's ReadingType id: base64 of ``uom:null:interval:flow`` (``NzI6bnVsbDozNjAwOjE=``)."""
    text = f"{uom}:null:{interval_length}:{flow_direction}"
    return base64.b64encode(text.encode()).decode()


def meter_reading_id(reading_type: str) -> str:
    """PG&E's MeterReading id: base64 of its ReadingType id plus ``:1``."""
    return base64.b64encode(f"{reading_type}:1".encode()).decode()


DEFAULT_CUSTOMERS = len(_PROFILES)

# Where each profile's customers live (town, ZIP code), for the RetailCustomer's ServiceLocations.
_TOWNS: tuple[tuple[str, str], ...] = (
    ("Oakland", "94610"),
    ("San Jose", "95112"),
    ("Fresno", "93721"),
    ("Sacramento", "95816"),
    ("Berkeley", "94704"),
)

# Names for the customers beyond the five above (benchmarks need many distinct customers).
_GIVEN_NAMES = ("Harper", "Jordan", "Kendall", "Logan", "Morgan", "Parker", "Reese", "Sawyer")
_FAMILY_NAMES = ("Alvarez", "Bennett", "Chen", "Delgado", "Ellison", "Fischer", "Garza", "Hayes")


def _extra_name(index: int) -> str:
    """A distinct name for customer ``index`` (>= 5); a number is added once the names run out."""
    offset = index - len(_PROFILES)
    given = _GIVEN_NAMES[offset % len(_GIVEN_NAMES)]
    round_, family_index = divmod(offset // len(_GIVEN_NAMES), len(_FAMILY_NAMES))
    name = f"{given} {_FAMILY_NAMES[family_index]}"
    return f"{name} {round_ + 1}" if round_ else name


def _street(street: str, index: int) -> str:
    """The profile's street with a house number of its own for customer ``index`` (>= 5)."""
    number, _, rest = street.partition(" ")
    return f"{int(number) + 100 * (index // len(_PROFILES))} {rest}"


def build_customers(seed: int, count: int = DEFAULT_CUSTOMERS) -> tuple[Customer, ...]:
    """``count`` customers: the first five are the profiles above; further ones cycle through the
    same profiles with ids, names, addresses and readings of their own."""
    if count < 1:
        raise ValueError(f"a sandbox needs at least one customer, not {count}")
    customers = []
    for index in range(count):
        profile, name, points = _PROFILES[index % len(_PROFILES)]
        if index >= len(_PROFILES):
            name = _extra_name(index)
        service_points = []
        for point_index, (kind, interval, solar, scale, street) in enumerate(points):
            up_id = _decimal_id(seed, 10, "usagepoint", index, point_index)
            address = street or points[0][4]
            if index >= len(_PROFILES):
                address = _street(address, index)
            meters = []
            flows = (FLOW_FORWARD, FLOW_REVERSE) if solar else (FLOW_FORWARD,)
            for flow in flows:
                electric = kind == KIND_ELECTRICITY
                uom = UOM_WH if electric else UOM_THERM
                spec = ReadingSpec(
                    reading_type_id=reading_type_id(uom, interval, flow),
                    uom=uom,
                    power_of_ten_multiplier=ELECTRIC_MULTIPLIER if electric else GAS_MULTIPLIER,
                    flow_direction=flow,
                    interval_length=interval,
                    commodity=COMMODITY_ELECTRICITY if electric else COMMODITY_GAS,
                )
                # Unique within its UsagePoint only, as PG&E's are (the path scopes it).
                meter_id = meter_reading_id(spec.reading_type_id)
                meters.append(Meter(meter_reading_id=meter_id, spec=spec))
            service_points.append(
                ServicePoint(
                    usage_point_id=up_id,
                    kind=kind,
                    address=address,
                    meters=tuple(meters),
                    solar=solar,
                    load_scale=scale,
                )
            )
        customers.append(
            Customer(
                retail_customer_id=_decimal_id(seed, 10, "customer", index),
                name=name,
                profile=profile,
                service_points=tuple(service_points),
                city=_TOWNS[index % len(_TOWNS)][0],
                postal_code=_TOWNS[index % len(_TOWNS)][1],
            )
        )
    return tuple(customers)


def default_data_end(now: float) -> int:
    """The start of today in Pacific time: data exists up to the end of yesterday."""
    local = dt.datetime.fromtimestamp(now, PACIFIC)
    midnight = local.replace(hour=0, minute=0, second=0, microsecond=0)
    # Rebuild from the date so a DST change earlier today does not shift midnight.
    return int(dt.datetime(midnight.year, midnight.month, midnight.day, tzinfo=PACIFIC).timestamp())


@functools.lru_cache(maxsize=65536)
def _offset_of_hour(hour: int) -> int:
    """UTC offset (seconds) in Pacific time during the UTC hour ``hour`` (epoch // 3600).

    Pacific offsets only change on whole hours, so one lookup per hour is exact."""
    offset = dt.datetime.fromtimestamp(hour * 3600, PACIFIC).utcoffset()
    return int(offset.total_seconds()) if offset is not None else 0


@functools.lru_cache(maxsize=8192)
def _midnight_of(local_day: int) -> int:
    """Epoch of Pacific midnight starting the local day number ``local_day`` (days since 1970)."""
    day = dt.date(1970, 1, 1) + dt.timedelta(days=local_day)
    return int(dt.datetime(day.year, day.month, day.day, tzinfo=PACIFIC).timestamp())


def _local_day(epoch: int) -> int:
    return (epoch + _offset_of_hour(epoch // 3600)) // DAY


def pacific_midnight(epoch: int) -> int:
    return _midnight_of(_local_day(epoch))


def next_pacific_midnight(epoch: int) -> int:
    return _midnight_of(_local_day(epoch) + 1)


def pacific_midnight_days_before(epoch: int, days: int) -> int:
    """Pacific midnight ``days`` local days before the day holding ``epoch``."""
    return _midnight_of(_local_day(epoch) - days)


def whole_days(start: int, end: int) -> tuple[int, int]:
    """[start, end) widened to whole Pacific days: PG&E serves whole days even when the
    requested range cuts one (``interval`` 86400, or 82800 / 90000 on DST days)."""
    first = pacific_midnight(start)
    last = pacific_midnight(end - 1)
    return first, next_pacific_midnight(last)


def day_updated(epoch: int) -> int:
    """When the readings of the Pacific day holding ``epoch`` were updated (published): at the
    day's end. ``updated-min`` / ``updated-max`` select days by it."""
    return next_pacific_midnight(epoch)


def ceil_pacific_midnight(epoch: int) -> int:
    """The first Pacific midnight at or after ``epoch``."""
    midnight = pacific_midnight(epoch)
    return midnight if midnight == epoch else next_pacific_midnight(epoch)


def interval_starts(spec: ReadingSpec, start: int, end: int) -> Iterator[tuple[int, int]]:
    """(start, duration) of every interval of ``spec`` whose start lies in [start, end)."""
    if spec.daily:
        # A daily reading starts at 00:00:01 local and lasts the local day (82800 / 90000 s on
        # DST days), so it ends at 00:00:01 of the next day.
        day = pacific_midnight(start - GAS_DAY_OFFSET)
        if day + GAS_DAY_OFFSET < start:
            day = next_pacific_midnight(day)
        while day + GAS_DAY_OFFSET < end:
            following = next_pacific_midnight(day)
            yield day + GAS_DAY_OFFSET, following - day
            day = following
        return
    step = spec.interval_length
    first = -(-start // step) * step
    for t in range(first, end, step):
        yield t, step


@functools.lru_cache(maxsize=1024)
def _stream(seed: int, *parts: str) -> int:
    """A 64-bit key naming one random stream (a meter's noise, a sky's clouds...)."""
    digest = hashlib.sha256(":".join((str(seed), *parts)).encode()).digest()
    return int.from_bytes(digest[:8], "big")


_MASK = 2**64 - 1


def _unit(stream: int, t: int) -> float:
    """A uniform [0, 1) number depending on nothing but (stream, t): splitmix64's finaliser."""
    z = (stream + (t + 1) * 0x9E3779B97F4A7C15) & _MASK
    z = ((z ^ (z >> 30)) * 0xBF58476D1CE4E5B9) & _MASK
    z = ((z ^ (z >> 27)) * 0x94D049BB133111EB) & _MASK
    return (z ^ (z >> 31)) / 2**64


def _local_hours(epoch: int) -> tuple[float, int]:
    """(local hour of day as a fraction, day of the year) in Pacific time."""
    local_seconds = epoch + _offset_of_hour(epoch // 3600)
    return (local_seconds % DAY) / 3600, _day_of_year(local_seconds // DAY)


@functools.lru_cache(maxsize=8192)
def _day_of_year(local_day: int) -> int:
    return (dt.date(1970, 1, 1) + dt.timedelta(days=local_day)).timetuple().tm_yday


def _load_kw(seed: int, point: ServicePoint, t: int) -> float:
    hour, day_of_year = _local_hours(t)
    summer = max(0.0, math.cos((day_of_year - 200) / 365 * 2 * math.pi))
    winter = max(0.0, math.cos((day_of_year - 15) / 365 * 2 * math.pi))
    base = 0.25 + 0.1 * winter
    morning = 0.45 * math.exp(-(((hour - 7.5) / 1.5) ** 2))
    evening = (0.9 + 0.8 * summer) * math.exp(-(((hour - 19.0) / 2.2) ** 2))
    afternoon_ac = 1.2 * summer * math.exp(-(((hour - 16.0) / 2.5) ** 2))
    noise = 0.75 + 0.5 * _unit(_stream(seed, point.usage_point_id, "load"), t)
    return point.load_scale * (base + morning + evening + afternoon_ac) * noise


def _solar_kw(seed: int, point: ServicePoint, t: int) -> float:
    hour, day_of_year = _local_hours(t)
    daylight = 12.0 + 2.3 * math.cos((day_of_year - 172) / 365 * 2 * math.pi)
    sunrise = 12.8 - daylight / 2
    if not sunrise < hour < sunrise + daylight:
        return 0.0
    elevation = math.sin(math.pi * (hour - sunrise) / daylight)
    day_start = pacific_midnight(t)
    clouds = 0.35 + 0.65 * _unit(_stream(seed, point.usage_point_id, "sky"), day_start)
    return 4.2 * elevation * clouds


def _gas_therms(seed: int, point: ServicePoint, start: int, duration: int) -> float:
    _hour, day_of_year = _local_hours(start)
    winter = max(0.0, math.cos((day_of_year - 15) / 365 * 2 * math.pi))
    noise = 0.8 + 0.4 * _unit(_stream(seed, point.usage_point_id, "gas"), start)
    return point.load_scale * (0.6 + 3.4 * winter) * noise * duration / DAY


def reading(seed: int, point: ServicePoint, meter: Meter, start: int, duration: int) -> Reading:
    spec = meter.spec
    quality_draw = _unit(
        _stream(seed, point.usage_point_id, meter.meter_reading_id, "quality"), start
    )
    quality = (
        QUALITY_EDITED
        if quality_draw < 0.002
        else QUALITY_ESTIMATED
        if quality_draw < 0.012
        else QUALITY_VALIDATED
    )
    if spec.uom == UOM_THERM:
        therms = _gas_therms(seed, point, start, duration)
        value = round(therms * 10 ** (-spec.power_of_ten_multiplier))
        cost = round(therms * 2.35 * 100_000)
        return Reading(start, duration, value, quality, None, cost)
    # Energy over the interval, sampled at its middle so a reading's shape follows the clock.
    middle = start + duration // 2
    load = _load_kw(seed, point, middle)
    generation = _solar_kw(seed, point, middle) if point.solar else 0.0
    net_kw = load - generation
    kw = max(net_kw, 0.0) if spec.flow_direction == FLOW_FORWARD else max(-net_kw, 0.0)
    watt_hours = kw * 1000 * duration / 3600
    value = round(watt_hours * 10 ** (-spec.power_of_ten_multiplier))
    hour, _ = _local_hours(start)
    peak = 16 <= hour < 21
    rate = 0.52 if peak else 0.38
    sign = 1 if spec.flow_direction == FLOW_FORWARD else -1
    cost = sign * round(watt_hours / 1000 * rate * 100_000)
    return Reading(start, duration, value, quality, tou_code(start, peak), cost)


def tou_code(start: int, peak: bool) -> int:
    """The seasonal time-of-use code of an electric reading (see ``TOU_NAMES``)."""
    month = dt.datetime.fromtimestamp(start, PACIFIC).month
    if month in SUMMER_MONTHS:
        return TOU_SUMMER_PEAK if peak else TOU_SUMMER_OFF_PEAK
    return TOU_WINTER_PEAK if peak else TOU_WINTER_OFF_PEAK


def readings(
    seed: int, point: ServicePoint, meter: Meter, start: int, end: int
) -> Iterator[Reading]:
    """Every reading of ``meter`` starting in [start, end)."""
    for t, duration in interval_starts(meter.spec, start, end):
        yield reading(seed, point, meter, t, duration)

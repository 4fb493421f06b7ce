"""The conversion report: what a conversion read, wrote and noticed, for a manifest.

:class:`ConversionReport` holds no meter values and no customer name; ``to_dict()`` is
JSON-ready. :class:`ConversionError` is input that cannot be converted faithfully.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any


class ConversionError(ValueError):
    """Input that cannot be converted faithfully; the message names the file and the problem."""


_DAY = 86_400
_DST_SHIFT = 3_600


def series_of(duration: int) -> int:
    """The series a reading's duration belongs to, for the report's gap check: readings of a
    local day (86400 s; 82800 or 90000 s on the days daylight saving time starts or ends, as
    PG&E sends daily gas readings) are one series, so a DST day is not taken for the end of one
    series and the start of another (which reported both DST days of every 12-month gas feed as
    gaps). Other durations are their own series."""
    return _DAY if abs(duration - _DAY) <= _DST_SHIFT else duration


@dataclass
class InputReport:
    name: str
    sha256: str
    bytes: int
    entries: int = 0
    interval_blocks: int = 0
    readings: int = 0


@dataclass
class Gap:
    start_utc: str
    end_utc: str
    seconds: int


@dataclass
class ReadingTypeReport:
    meter_reading: str
    flow_direction: int | None
    column: str
    uom: int | None
    unit: str
    power_of_ten_multiplier: int | None
    interval_length: int | None
    commodity: int | None
    accumulation_behaviour: int | None
    #: The ReadingType's tier, written on its rows when the readings carry none.
    tou: int | None = None
    consumption_tier: int | None = None
    #: The row group (the default layout's ``channel`` column); None for ignored channels.
    channel: int | None = None
    #: Conservation, checked on every conversion: read = written + repeats + ignored.
    readings_read: int = 0
    readings_written: int = 0
    repeats: int = 0
    ignored: int = 0


@dataclass
class UsagePointReport:
    id: str
    service: str
    unit: str
    time_zone: str
    reading_types: list[ReadingTypeReport] = field(default_factory=list)
    first_interval_start_utc: str | None = None
    last_interval_end_utc: str | None = None
    rows: int = 0
    gap_count: int = 0
    gap_seconds: int = 0
    gaps: list[Gap] = field(default_factory=list)
    #: Rows holding a reading without a value (espi.xsd: value is optional): written, energy
    #: left blank as unknown.
    rows_without_value: int = 0


@dataclass
class ConversionReport:
    layout: str
    inputs: list[InputReport] = field(default_factory=list)
    usage_points: list[UsagePointReport] = field(default_factory=list)
    customer_name_present: bool = False
    rows: int = 0
    readings_read: int = 0
    duplicates: int = 0
    conflicts: int = 0
    ignored_readings: int = 0
    notes: list[str] = field(default_factory=list)
    output_sha256: str = ""
    output_bytes: int = 0

    @property
    def gap_count(self) -> int:
        return sum(point.gap_count for point in self.usage_points)

    @property
    def period(self) -> tuple[str | None, str | None]:
        starts = [p.first_interval_start_utc for p in self.usage_points]
        ends = [p.last_interval_end_utc for p in self.usage_points]
        return (
            min((s for s in starts if s), default=None),
            max((e for e in ends if e), default=None),
        )

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready facts for a manifest (no meter values, no customer name)."""
        data = asdict(self)
        data["gap_count"] = self.gap_count
        data["period_start_utc"], data["period_end_utc"] = self.period
        return data

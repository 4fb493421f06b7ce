"""A file's readings as typed, exactly scaled records, each with its channel.

``iter_readings(source)`` yields one :class:`Reading` per ESPI IntervalReading, in document
order, every one of them (repeats across overlapping documents included: :func:`convert
<scwadd_espi.convert.convert>` is where repeats are written once). Each reading carries its
:class:`ChannelInfo`: the usage point, the MeterReading and its ReadingType, the flow direction
and the unit its value is in. Values are :class:`~decimal.Decimal`, exact: the raw integer times
10^powerOfTenMultiplier, in the display unit (Wh become kWh).

The links between entries may come in any order (a block may precede its MeterReading), so the
source is read twice: a path or bytes as they are, any other binary stream copied to a
temporary file first.
"""

from __future__ import annotations

import contextlib
import io
import shutil
import tempfile
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path
from typing import IO

from scwadd_espi.layouts import service_name
from scwadd_espi.model import IntervalBlock, ReadingType, display_unit
from scwadd_espi.parser import iter_entries, source_name
from scwadd_espi.report import ConversionError
from scwadd_espi.resolve import Resolver, UnresolvedError

#: ESPI's ``cost`` is in hundred-thousandths of the currency (ESPI IntervalReading.cost).
_COST_EXPONENT = -5


@dataclass(frozen=True, slots=True)
class ChannelInfo:
    """One channel: a MeterReading with its ReadingType, on one usage point.

    ``meter_reading`` is the MeterReading's href path; ``unit`` the display unit values are in
    (``kWh``, ``therms``, ``m3``, ...); ``flow_direction`` ESPI's code (1 delivered, 19 received,
    4 net); ``reading_type`` the whole ReadingType, raw."""

    usage_point_id: str
    meter_reading: str
    service: str
    flow_direction: int | None
    unit: str
    reading_type: ReadingType


@dataclass(frozen=True, slots=True)
class Reading:
    """One IntervalReading: ``start`` in UTC, ``duration`` in seconds, ``value`` exact in
    ``channel.unit`` (None when the reading has no value), ``cost`` in the currency's units
    (dollars at PG&E) or None, ``qualities`` the ReadingQuality codes, ``tou`` and
    ``consumption_tier`` the reading's own, else its ReadingType's."""

    channel: ChannelInfo
    start: datetime
    duration: int
    value: Decimal | None
    cost: Decimal | None
    qualities: tuple[int, ...]
    tou: int | None
    consumption_tier: int | None


def iter_readings(
    source: str | Path | bytes | IO[bytes], *, name: str | None = None
) -> Iterator[Reading]:
    """Every reading of one ESPI document (an Atom feed, an entry or a bare object), with its
    channel; see the module docstring.

    Raises :class:`~scwadd_espi.parser.EspiParseError` (file, line, column, what was expected)
    for malformed input, :class:`~scwadd_espi.report.ConversionError` when a block's
    MeterReading, ReadingType or UsagePoint cannot be found through the links."""
    label = name or ("<bytes>" if isinstance(source, bytes) else source_name(source))
    with _twice_readable(source) as opener:
        resolver = Resolver()
        for entry in iter_entries(opener(), name=label):
            if not isinstance(entry.obj, IntervalBlock):
                resolver.add(entry)
        channels: dict[str | None, ChannelInfo] = {}
        exponents: dict[str | None, int] = {}
        for entry in iter_entries(opener(), name=label):
            block = entry.obj
            if not isinstance(block, IntervalBlock):
                continue
            key = Resolver.block_key(entry)
            info = channels.get(key)
            if info is None:
                try:
                    channel = resolver.channel(key)
                except UnresolvedError as error:
                    where = f"{label}:{entry.line}" if entry.line else label
                    raise ConversionError(f"{where}: IntervalBlock entry: {error}") from None
                rt = channel.reading_type
                unit, shift = display_unit(rt.uom)
                info = channels[key] = ChannelInfo(
                    usage_point_id=channel.usage_point_id,
                    meter_reading=channel.meter_reading,
                    service=service_name(channel.service_kind),
                    flow_direction=rt.flow_direction,
                    unit=unit,
                    reading_type=rt,
                )
                exponents[key] = (rt.power_of_ten_multiplier or 0) + shift
            exponent = exponents[key]
            rt = info.reading_type
            for r in block.readings:
                yield Reading(
                    channel=info,
                    start=datetime.fromtimestamp(r.start, UTC),
                    duration=r.duration,
                    value=None if r.value is None else Decimal(r.value).scaleb(exponent),
                    cost=None if r.cost is None else Decimal(r.cost).scaleb(_COST_EXPONENT),
                    qualities=r.qualities,
                    tou=r.tou if r.tou is not None else rt.tou,
                    consumption_tier=(
                        rt.consumption_tier if r.consumption_tier is None else r.consumption_tier
                    ),
                )


@contextlib.contextmanager
def _twice_readable(
    source: str | Path | bytes | IO[bytes],
) -> Iterator[Callable[[], str | Path | IO[bytes]]]:
    """A function that gives the source anew from its start: a path as it is, bytes in memory,
    any other stream copied once to a temporary file (removed afterwards)."""
    if isinstance(source, str | Path):
        yield lambda: source
        return
    if isinstance(source, bytes):
        yield lambda: io.BytesIO(source)
        return
    with tempfile.TemporaryDirectory(prefix="scwadd-readings-") as scratch:
        path = Path(scratch) / "document.xml"
        with open(path, "wb") as copy:
            shutil.copyfileobj(source, copy)
        yield lambda: path

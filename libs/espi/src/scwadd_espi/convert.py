"""ESPI documents → one CSV, plus the facts a manifest needs.

``convert(inputs, out, layout="default", tz=None) -> ConversionReport`` reads any number of ESPI
documents (paths, binary streams or bytes; ``names=`` labels them in errors), merges their
readings, writes one CSV and reports what it did: usage points, reading types, units, period
covered, rows, gaps, duplicates, conflicts and the CSV's sha256.

Memory stays flat however big the inputs: readings are spooled, block by block, to a file in a
temporary directory (:mod:`._spool`). The default layout writes a usage point whose one energy
channel came in order straight from it (:mod:`._direct`, the same bytes); anything else is read
back through SQLite, sorted by usage point, interval start and duration.
A channel is a MeterReading with its ReadingType; readings repeated within one channel across
overlapping documents are written once: the one from the most recently ``updated`` entry wins
(on a tie, the later input); a repeat with a different value counts as a conflict. Parallel
channels (tiers, meters) are never merged. Every conversion checks, per channel, that readings
read = written + repeats + ignored. Values are scaled exactly with :class:`~decimal.Decimal`.

The column layouts are documented in ``docs/csv.md``.
"""

from __future__ import annotations

import contextlib
import hashlib
import io
import os
import tempfile
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from decimal import Decimal
from operator import add
from pathlib import Path
from typing import IO, Any

from scwadd_espi._clock import Clock, local_interval_label, utc_text
from scwadd_espi._direct import DirectPoint
from scwadd_espi._reading_scan import ReadingColumns
from scwadd_espi._spool import Columns, Spool
from scwadd_espi.layouts import (
    DEFAULT_COLUMNS,
    LAYOUT_CLASSES,
    LAYOUTS,
    ZERO,
    LayoutWriter,
    Row,
    quality_text,
    service_name,
)
from scwadd_espi.localtime import tzinfo_for
from scwadd_espi.model import (
    FlowDirection,
    IntervalBlock,
    ReadingType,
    UnitOfMeasure,
    display_unit,
)
from scwadd_espi.parser import EspiParseError, Source, iter_entries, source_name
from scwadd_espi.report import (
    ConversionError,
    ConversionReport,
    Gap,
    InputReport,
    ReadingTypeReport,
    UsagePointReport,
    series_of,
)
from scwadd_espi.resolve import Channel, Resolver, UnresolvedError, usage_point_id

# Which column a MeterReading's values go to, by its ReadingType's flowDirection.
ROLE_DELIVERED, ROLE_RECEIVED, ROLE_NET = 0, 1, 2
_ROLES: dict[int | None, int] = {
    None: ROLE_DELIVERED,
    FlowDirection.FORWARD: ROLE_DELIVERED,
    FlowDirection.REVERSE: ROLE_RECEIVED,
    FlowDirection.NET: ROLE_NET,
}
_ENERGY_UNITS = {
    None,
    UnitOfMeasure.WH,
    UnitOfMeasure.THERM,
    UnitOfMeasure.FT3,
    UnitOfMeasure.M3,
    UnitOfMeasure.VARH,
}
_MAX_GAPS_LISTED = 200


class _HashingWriter(io.RawIOBase):
    def __init__(self, target: IO[bytes]) -> None:
        super().__init__()
        self._target = target
        self.digest = hashlib.sha256()
        self.size = 0

    def writable(self) -> bool:
        return True

    def write(self, data: Any) -> int:
        chunk = bytes(data)
        self.digest.update(chunk)
        self.size += len(chunk)
        self._target.write(chunk)
        return len(chunk)


class _HashingReader(io.RawIOBase):
    def __init__(self, source: IO[bytes]) -> None:
        super().__init__()
        self._source = source
        self.digest = hashlib.sha256()
        self.size = 0
        self.name = getattr(source, "name", "<stream>")

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> int:
        data = self._source.read(len(buffer))
        if not data:
            return 0
        self.digest.update(data)
        self.size += len(data)
        memoryview(buffer).cast("B")[: len(data)] = data
        return len(data)


# The conversion ----------------------------------------------------------------------------------


@contextlib.contextmanager
def _output(out: str | Path | IO[bytes]) -> Iterator[IO[bytes]]:
    """A path is written to a temporary file beside it and renamed into place only when
    complete; a stream is written as it goes."""
    if not isinstance(out, str | Path):
        yield out
        return
    target = Path(out)
    handle = tempfile.NamedTemporaryFile(  # noqa: SIM115 - renamed or removed below
        dir=target.parent or ".", prefix=f".{target.name}.", suffix=".partial", delete=False
    )
    try:
        with handle:
            yield handle
        os.replace(handle.name, target)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(handle.name)
        raise


def convert(
    inputs: Sequence[Source | bytes],
    out: str | Path | IO[bytes],
    layout: str = "default",
    tz: str | None = None,
    *,
    names: Sequence[str] | None = None,
    progress: Callable[[int], None] | None = None,
    workdir: str | Path | None = None,
) -> ConversionReport:
    """Convert ESPI documents into one CSV at ``out``; see the module docstring.

    Raises :class:`~scwadd_espi.parser.EspiParseError` for malformed input and
    :class:`ConversionError` for documents whose readings cannot be placed; nothing is written
    to a path ``out`` in either case.
    """
    if layout not in LAYOUT_CLASSES:
        raise ValueError(f"unknown layout {layout!r}: expected one of {', '.join(LAYOUTS)}")
    if tz is not None:
        tzinfo_for(None, tz)  # fail on a bad zone before reading anything
    report = ConversionReport(layout=layout)
    resolver = Resolver()
    lenient = _Lenient()
    with tempfile.TemporaryDirectory(prefix="scwadd-convert-", dir=workdir) as scratch:
        spool = Spool(scratch)
        try:
            for index, source in enumerate(inputs):
                if names is not None:
                    name = names[index]
                elif isinstance(source, bytes):
                    name = f"<input {index + 1}>"
                else:
                    name = source_name(source)
                report.inputs.append(_read_input(source, name, spool, resolver, progress, lenient))
            lenient.summarise(report.notes)
            report.readings_read = sum(i.readings for i in report.inputs)
            channels, lines = _resolve_channels(spool, resolver, report, tz)
            with _output(out) as raw:
                hashing = _HashingWriter(raw)
                buffered = io.BufferedWriter(hashing, buffer_size=1 << 16)
                text = io.TextIOWrapper(buffered, encoding="utf-8", newline="")
                if layout == "pge":
                    text.write("\ufeff")  # PG&E's own file starts with a BOM; Excel wants it
                _write_rows(spool, channels, lines, layout, tz, resolver, report, text)
                for point in report.usage_points:
                    if point.rows_without_value:
                        report.notes.append(
                            f"usage point {point.id}: {point.rows_without_value} row(s) hold a "
                            "reading without a value, left blank (unknown, not zero)"
                        )
                text.flush()
                text.detach()
                buffered.flush()
                report.output_sha256 = hashing.digest.hexdigest()
                report.output_bytes = hashing.size
        finally:
            spool.close()
    report.customer_name_present = resolver.customer_name() is not None
    return report


def _read_input(
    source: Source | bytes,
    name: str,
    spool: Spool,
    resolver: Resolver,
    progress: Callable[[int], None] | None,
    lenient: _Lenient,
) -> InputReport:
    facts = InputReport(name=name, sha256="", bytes=0)
    if isinstance(source, bytes | bytearray | memoryview):
        source = io.BytesIO(bytes(source))
    hashing: _HashingReader | None = None
    readable: Source
    # Files and in-memory documents are hashed apart, so the parser may read them as it likes
    # (twice, for the split reader); other streams are hashed as they are read.
    if isinstance(source, str | Path):
        try:
            with open(source, "rb") as handle:
                digest = hashlib.file_digest(handle, "sha256")
        except OSError as error:
            raise EspiParseError(name, None, None, f"cannot read: {error.strerror}") from None
        facts.sha256, facts.bytes = digest.hexdigest(), Path(source).stat().st_size
        readable = source
    elif isinstance(source, io.BytesIO):
        view = source.getbuffer()
        facts.sha256, facts.bytes = hashlib.sha256(view).hexdigest(), len(view)
        del view  # a live view would pin the buffer's size
        readable = source
    else:
        hashing = _HashingReader(source)
        readable = io.BufferedReader(hashing)
    for entry in iter_entries(readable, name=name, progress=progress):
        facts.entries += 1
        if entry.notes:
            lenient.add(entry.notes)
        if isinstance(entry.obj, IntervalBlock):
            facts.interval_blocks += 1
            # Columns (starts, durations, values, ...), built once for the check and the spool.
            readings = entry.obj.readings
            if isinstance(readings, ReadingColumns):
                columns = readings.columns  # as the reading scan read them
            else:
                columns = tuple(zip(*readings, strict=True))
            _check_block(columns, name, entry.line)
            origin = f"{name}:{entry.line}" if entry.line else name
            facts.readings += spool.add_columns(
                Resolver.block_key(entry), columns, entry.updated, origin
            )
        else:
            resolver.add(entry)
    if hashing is not None:
        facts.sha256, facts.bytes = hashing.digest.hexdigest(), hashing.size
    return facts


class _Lenient:
    """What the parser read leniently, for the report's notes: the first few verbatim, then a
    count (a feed may hold a million entries written the same way)."""

    _LISTED = 5

    def __init__(self) -> None:
        self.listed: list[str] = []
        self.more = 0

    def add(self, notes: Sequence[str]) -> None:
        for note in notes:
            if len(self.listed) < self._LISTED:
                self.listed.append(note)
            else:
                self.more += 1

    def summarise(self, notes: list[str]) -> None:
        notes.extend(self.listed)
        if self.more:
            notes.append(f"{self.more} more Atom dates without a UTC offset were read as UTC")


# Readings must fit what a CSV row can say: a calendar date (years 1900-9999), a positive
# duration, and integers SQLite holds (ESPI's own Int48 is far inside that).
_EARLIEST = -2208988800  # 1900-01-01T00:00:00Z
_LATEST = 253402300799  # 9999-12-31T23:59:59Z
_LARGEST = 2**63 - 1


def _check_block(columns: Columns, name: str, line: int | None) -> None:
    """Refuse a block whose readings a CSV row cannot say (see above); ``columns`` are its
    readings' fields as columns (IntervalReading's order), empty for a block without readings."""
    if not columns:
        return
    starts, durations, values, costs = columns[:4]
    problem = None
    if min(starts) < _EARLIEST or max(map(add, starts, durations)) > _LATEST:
        problem = "an IntervalReading's timePeriod lies outside the years 1900-9999"
    elif min(durations) <= 0:
        problem = "an IntervalReading's timePeriod duration is not a positive number of seconds"
    else:
        numbers = values if None not in values else [v for v in values if v is not None]
        if costs.count(None) != len(costs):
            numbers = [*numbers, *(c for c in costs if c is not None)]
        if numbers and max(max(numbers), -min(numbers)) > _LARGEST:
            problem = "an IntervalReading's value or cost is beyond 64-bit integers"
    if problem is not None:
        raise EspiParseError(name, line, None, f"in the IntervalBlock entry here, {problem}")


@dataclass
class _ChannelInfo:
    """One channel: a MeterReading with its ReadingType, on one usage point."""

    channel: Channel
    role: int | None
    point_index: int
    number: int  # index into report's channel list (its ReadingTypeReport)
    group: int  # the row group within the usage point, 1-based; 0 for ignored channels


def _resolve_channels(
    spool: Spool, resolver: Resolver, report: ConversionReport, tz: str | None
) -> tuple[dict[int, _ChannelInfo], list[ReadingTypeReport]]:
    """Each spooled block collection's channel, and the report's line for every channel.

    Channels are identified by usage point, MeterReading and ReadingType: two block collections
    reaching the same MeterReading through different link forms are one channel; parallel
    channels of the same flowDirection (time-of-use tiers in separate MeterReadings, two meters
    on one usage point) stay apart. Within a usage point, energy channels are placed in row
    groups: a group is a tier (the ReadingType's ``tou`` and ``consumptionTier``) and, for
    several channels of one tier and flowDirection, their order of appearance; a group holds at
    most one channel per column (delivered, received, net), which pairs PG&E's delivered and
    received MeterReadings in one row as before."""
    points: dict[str, UsagePointReport] = {}
    order: list[str] = []
    infos: dict[int, _ChannelInfo] = {}
    identities: dict[tuple[str, str, ReadingType], _ChannelInfo] = {}
    lines: list[ReadingTypeReport] = []
    groups: dict[int, list[tuple[int | None, int | None, int]]] = {}  # per point: group keys
    taken: dict[tuple[int, int | None, int | None, int], int] = {}  # channels per tier and role
    unusable_noted: set[str] = set()
    for key, key_id in spool.block_keys.items():
        try:
            channel = resolver.channel(key)
        except UnresolvedError as error:
            where = spool.origins.get(key, "")
            raise ConversionError(f"{where}: IntervalBlock entry: {error}") from None
        rt = channel.reading_type
        identity = (channel.usage_point or channel.usage_point_id, channel.meter_reading, rt)
        known = identities.get(identity)
        if known is not None:
            infos[key_id] = known  # the same MeterReading reached through another link form
            continue
        role = _ROLES.get(rt.flow_direction) if rt.uom in _ENERGY_UNITS else None
        unit, _shift = display_unit(rt.uom)
        if channel.usage_point_id not in points:
            zone = channel.local_time
            try:
                tzinfo_for(zone)
            except ValueError as error:
                if tz is None:
                    raise ConversionError(
                        f"the LocalTimeParameters of usage point {channel.usage_point_id} cannot "
                        f"be used: {error}; give --tz ZONE (an IANA zone such as "
                        "America/Los_Angeles; tz= in Python) to label local times in that zone "
                        "instead"
                    ) from None
                if channel.usage_point_id not in unusable_noted:
                    unusable_noted.add(channel.usage_point_id)
                    report.notes.append(
                        f"the LocalTimeParameters of usage point {channel.usage_point_id} cannot "
                        f"be used ({error}): local times are labelled in {tz} (--tz) instead"
                    )
            points[channel.usage_point_id] = UsagePointReport(
                id=channel.usage_point_id,
                service=service_name(channel.service_kind),
                unit="",
                time_zone=_zone_label(zone),
            )
            order.append(channel.usage_point_id)
        point = points[channel.usage_point_id]
        point_index = order.index(channel.usage_point_id)
        if role is not None and (not point.unit or role == ROLE_DELIVERED):
            point.unit = unit
        group = 0
        if role is not None:
            tier = (rt.tou, rt.consumption_tier)
            ordinal = taken.get((point_index, *tier, role), 0)
            taken[(point_index, *tier, role)] = ordinal + 1
            point_groups = groups.setdefault(point_index, [])
            group_key = (*tier, ordinal)
            if group_key not in point_groups:
                point_groups.append(group_key)
            group = point_groups.index(group_key) + 1
        line = ReadingTypeReport(
            meter_reading=channel.meter_reading,
            flow_direction=rt.flow_direction,
            column=("delivered", "received", "net")[role] if role is not None else "ignored",
            uom=rt.uom,
            unit=unit,
            power_of_ten_multiplier=rt.power_of_ten_multiplier,
            interval_length=rt.interval_length,
            commodity=rt.commodity,
            accumulation_behaviour=rt.accumulation_behaviour,
            tou=rt.tou,
            consumption_tier=rt.consumption_tier,
            channel=group or None,
        )
        point.reading_types.append(line)
        info = _ChannelInfo(channel, role, point_index, len(lines), group)
        lines.append(line)
        identities[identity] = info
        infos[key_id] = info
        if role is None:
            report.notes.append(
                f"MeterReading {channel.meter_reading} (flowDirection {rt.flow_direction}, "
                f"uom {rt.uom}) is not interval energy: its readings are counted as ignored"
            )
    # Units must agree within a usage point's energy columns, else delivered - received is
    # meaningless; the display unit makes Wh and kWh agree, Wh and therms never.
    for point in points.values():
        units = {r.unit for r in point.reading_types if r.column != "ignored"}
        if len(units) > 1:
            raise ConversionError(
                f"usage point {point.id} mixes units {sorted(units)}: expected one unit per "
                "usage point"
            )
    # Usage points the documents describe but hold no readings for are reported too (rows 0):
    # "no data for the gas meter" is a fact the manifest must carry.
    for path, entry in resolver.usage_points.items():
        point_id = usage_point_id(path)
        if point_id not in points:
            kind = getattr(entry.obj, "kind", None)
            params = resolver.local_time_for(path)
            points[point_id] = UsagePointReport(
                id=point_id,
                service=service_name(kind),
                unit="",
                time_zone=_zone_label(params),
            )
            order.append(point_id)
            report.notes.append(f"usage point {point_id} has no interval readings")
    report.usage_points = [points[p] for p in order]
    return infos, lines


def _zone_label(params: Any) -> str:
    if params is None:
        return "UTC (no LocalTimeParameters)"
    if params.unusable is not None:
        return "unusable LocalTimeParameters"
    offset = params.tz_offset
    sign = "+" if offset >= 0 else "-"
    hours, rest = divmod(abs(offset), 3600)
    label = f"UTC{sign}{hours:02d}:{rest // 60:02d}"
    if params.dst_offset:
        label += f", DST +{params.dst_offset // 60} min"
    return label


def _write_rows(
    spool: Spool,
    channels: dict[int, _ChannelInfo],
    lines: list[ReadingTypeReport],
    layout: str,
    tz: str | None,
    resolver: Resolver,
    report: ConversionReport,
    text: IO[str],
) -> None:
    writer = LAYOUT_CLASSES[layout](text, resolver.customer_name())
    writer.begin(report.usage_points)
    clocks: dict[int, Clock] = {}
    received_groups: set[tuple[int, int]] = set()  # (usage point, channel group)
    group_tiers: dict[tuple[int, int], tuple[int | None, int | None]] = {}
    for info in channels.values():
        if info.role == ROLE_RECEIVED:
            received_groups.add((info.point_index, info.group))
        if info.point_index not in clocks:
            clocks[info.point_index] = Clock(tzinfo_for(info.channel.local_time, tz))
        rt = info.channel.reading_type
        group_tiers[(info.point_index, info.group)] = (rt.tou, rt.consumption_tier)
    if tz:
        for point in report.usage_points:
            point.time_zone = tz
    if layout == "default" and _write_direct(spool, channels, lines, clocks, report, writer, text):
        _check_conservation(lines, report)
        return
    db = spool.database()
    db.execute(
        "CREATE TABLE channels (block_key INTEGER PRIMARY KEY, point INTEGER, grp INTEGER,"
        " role INTEGER, exponent INTEGER, channel INTEGER)"
    )
    db.executemany(
        "INSERT INTO channels VALUES (?,?,?,?,?,?)",
        [
            (
                key_id,
                info.point_index,
                info.group,
                -1 if info.role is None else info.role,
                (info.channel.reading_type.power_of_ten_multiplier or 0)
                + display_unit(info.channel.reading_type.uom)[1],
                info.number,
            )
            for key_id, info in channels.items()
        ],
    )
    # Readings per channel as they were spooled: the "read" side of the conservation check.
    for key_id, count in spool.read_counts.items():
        info = channels[key_id]
        lines[info.number].readings_read += count
        if info.role is None:
            lines[info.number].ignored += count
    report.ignored_readings = sum(line.ignored for line in lines)
    cursor = db.execute(
        """
        SELECT point, start, duration, grp, role, value, exponent, cost, quality, tou, tier,
               channel
        FROM readings JOIN channels USING (block_key)
        WHERE role >= 0
        ORDER BY point, start, duration, grp, role, updated DESC, seq DESC
        """
    )
    current_point = -1
    series_end: dict[int, int] = {}
    interval_key: tuple[int, int, int] | None = None
    group_rows: list[Row] = []
    group_number = 0
    # Per role: scaled value, cost, quality codes, tou, consumptionTier.
    values: dict[int, tuple[Decimal | None, int | None, str, int | None, int | None]] = {}
    winners: dict[int, tuple[int | None, int]] = {}

    def close_group() -> None:
        if not values or interval_key is None:
            return
        point_index, start, duration = interval_key
        delivered = values.get(ROLE_DELIVERED)
        received = values.get(ROLE_RECEIVED)
        net_reading = values.get(ROLE_NET)
        delivered_value = delivered[0] if delivered else None
        received_value = received[0] if received else None
        # A reading without a value (espi.xsd: value is optional) leaves the net unknown: it is
        # not a zero, so no difference is made from it.
        unknown = (
            (delivered is not None and delivered_value is None)
            or (received is not None and received_value is None)
            or (net_reading is not None and net_reading[0] is None)
        )
        if net_reading is not None:
            net = net_reading[0]
        elif unknown or (delivered_value is None and received_value is None):
            net = None
        else:
            net = (delivered_value or ZERO) - (received_value or ZERO)
        main = delivered or received or net_reading
        assert main is not None
        if unknown:
            report.usage_points[point_index].rows_without_value += 1
        tier_tou, tier_consumption = group_tiers[(point_index, group_number)]
        group_rows.append(
            Row(
                point=report.usage_points[point_index],
                clock=clocks[point_index],
                start=start,
                duration=duration,
                delivered=delivered_value,
                received=received_value,
                net=net,
                has_received_channel=(point_index, group_number) in received_groups,
                cost=main[1],
                quality=quality_text(main[2]),
                tou=main[3] if main[3] is not None else tier_tou,
                consumption_tier=main[4] if main[4] is not None else tier_consumption,
                channel=group_number,
                unknown=unknown,
            )
        )
        values.clear()
        winners.clear()

    def close_interval() -> None:
        close_group()
        if interval_key is None or not group_rows:
            return
        point_index, start, duration = interval_key
        point = report.usage_points[point_index]
        written = writer.rows(group_rows)
        group_rows.clear()
        point.rows += written
        report.rows += written
        series = series_of(duration)
        previous_end = series_end.get(series)
        if previous_end is not None and start > previous_end:
            point.gap_count += 1
            point.gap_seconds += start - previous_end
            if len(point.gaps) < _MAX_GAPS_LISTED:
                gap = Gap(utc_text(previous_end), utc_text(start), start - previous_end)
                point.gaps.append(gap)
        if previous_end is None and point.first_interval_start_utc is None:
            point.first_interval_start_utc = utc_text(start)
        end = start + duration
        if previous_end is None or end > previous_end:
            series_end[series] = end

    def close_point() -> None:
        if current_point >= 0 and series_end:
            point = report.usage_points[current_point]
            point.last_interval_end_utc = utc_text(max(series_end.values()))

    for (
        point_index,
        start,
        duration,
        group,
        role,
        value,
        exponent,
        cost,
        quality,
        tou,
        tier,
        number,
    ) in cursor:
        key = (point_index, start, duration)
        if key != interval_key:
            close_interval()
            interval_key = key
            group_number = group
            if point_index != current_point:
                close_point()
                current_point = point_index
                series_end = {}
                writer.begin_point(report.usage_points[point_index])
        elif group != group_number:
            close_group()
            group_number = group
        line = lines[number]
        if role in values:
            # A repeat inside one channel: a (row group, column) holds one channel only.
            line.repeats += 1
            report.duplicates += 1
            winner_value, winner_exponent = winners[role]
            if not _same_value(winner_value, winner_exponent, value, exponent):
                report.conflicts += 1
            continue
        line.readings_written += 1
        winners[role] = (value, exponent)
        scaled = None if value is None else Decimal(value).scaleb(exponent)
        values[role] = (scaled, cost, quality, tou, tier)
    close_interval()
    close_point()
    _check_conservation(lines, report)


def _exponent(info: _ChannelInfo) -> int:
    """The power of ten that scales the channel's raw values to the unit written."""
    rt = info.channel.reading_type
    return (rt.power_of_ten_multiplier or 0) + display_unit(rt.uom)[1]


def _write_direct(
    spool: Spool,
    channels: dict[int, _ChannelInfo],
    lines: list[ReadingTypeReport],
    clocks: dict[int, Clock],
    report: ConversionReport,
    writer: LayoutWriter,
    text: IO[str],
) -> bool:
    """The default layout through the direct path (:mod:`._direct`) when every usage point's
    energy readings come from one collection of one channel, in order; False, with nothing
    written or counted, otherwise."""
    energy: dict[int, int] = {}
    for key_id, info in channels.items():
        if info.role is None:
            continue
        if info.point_index in energy or not spool.in_order(key_id):
            return False
        energy[info.point_index] = key_id
    # Readings per channel as spooled: the "read" side of the conservation check.
    for key_id, info in channels.items():
        count = spool.read_counts.get(key_id, 0)
        lines[info.number].readings_read += count
        if info.role is None:
            lines[info.number].ignored += count
    report.ignored_readings = sum(line.ignored for line in lines)
    for point_index in sorted(energy):
        key_id = energy[point_index]
        info = channels[key_id]
        assert info.role is not None
        rt = info.channel.reading_type
        writer.begin_point(report.usage_points[point_index])
        direct = DirectPoint(
            report.usage_points[point_index],
            key_id,
            info.role,
            _exponent(info),
            (rt.tou, rt.consumption_tier, info.group),
            clocks[point_index],
            writer,
            text,
        )
        written = direct.write(spool)
        lines[info.number].readings_written += written
        report.rows += written
    return True


def _check_conservation(lines: list[ReadingTypeReport], report: ConversionReport) -> None:
    """Every reading read is written, a repeat, or ignored, channel by channel; else the CSV
    would silently hold less than the documents (issue 9: a mismatch is an error)."""
    for line in lines:
        accounted = line.readings_written + line.repeats + line.ignored
        if line.readings_read != accounted:
            raise ConversionError(
                f"MeterReading {line.meter_reading}: {line.readings_read} readings read but "
                f"{line.readings_written} written + {line.repeats} repeats + {line.ignored} "
                f"ignored = {accounted}: the conversion would lose readings"
            )
    spooled = sum(line.readings_read for line in lines)
    if spooled != report.readings_read:
        raise ConversionError(
            f"{report.readings_read} readings read from the inputs but {spooled} reached a "
            "channel: the conversion would lose readings"
        )


def _same_value(a: int | None, a_exp: int, b: int | None, b_exp: int) -> bool:
    if a is None or b is None:
        return a is b
    if a_exp == b_exp:
        return a == b
    return Decimal(a).scaleb(a_exp) == Decimal(b).scaleb(b_exp)


__all__ = [
    "DEFAULT_COLUMNS",
    "LAYOUTS",
    "ConversionError",
    "ConversionReport",
    "InputReport",
    "UsagePointReport",
    "convert",
    "local_interval_label",
]

"""Reading an IntervalBlock's readings straight from the bytes, without an lxml element for each.

An IntervalBlock entry is almost all IntervalReadings, and building an element for each of their
half-dozen parts, then querying the elements, costs more than everything else the parser does.
The split reader (:mod:`._split`) hands each entry's bytes here first. When the entry holds one
run of IntervalReading elements in the plain shape utilities send (no attributes, no comments,
no entity references, integer text, the children in the schema's order), one compiled regular
expression reads every reading's fields, and the run is replaced by an empty marker element of
the same name before lxml parses the rest of the entry.

Nothing is taken on trust from the bytes alone:

- the run must be readings and nothing else, byte for byte (every byte the pattern does not
  take as part of a reading fails the run), so nothing is dropped and the run is well-formed;
- lxml must then find the marker as the only IntervalReading of the entry, directly inside the
  IntervalBlock that is the object of the entry's ``<content>``, with the marker's prefix bound
  to the ESPI namespace (or to none, as PG&E's namespace-less documents are read); the readings
  carry no attributes, so they cannot bind the prefix to anything else.

Anything else and the entry is parsed the ordinary way, which reads every shape the schema
allows and gives the precise error for a bad one.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from itertools import repeat
from typing import Any, NamedTuple, overload

from lxml import etree

from scwadd_espi._elements import _new_reading
from scwadd_espi.model import ATOM_NS, ESPI_NS, IntervalReading

# The start of a reading's start tag, with its prefix ("ns0:" or nothing).
_FIRST_READING = re.compile(rb"<((?:[A-Za-z_][A-Za-z0-9_.\-]*:)?)IntervalReading[ \t\r\n>]")
_XML_SPACE = rb"[ \t\r\n]*"
# Tags as lxml spells them; the second of each pair is PG&E's namespace-less form.
_MARKER = frozenset({f"{{{ESPI_NS}}}IntervalReading", "IntervalReading"})
_BLOCK = frozenset({f"{{{ESPI_NS}}}IntervalBlock", "IntervalBlock"})
_CONTENT = frozenset({f"{{{ATOM_NS}}}content", "content"})
_ENTRY = frozenset({f"{{{ATOM_NS}}}entry", "entry"})
# Inside ReadingQuality elements the pattern accepted, the only text is their quality codes.
_QUALITY_CODE = re.compile(rb">[ \t\r\n]*([+-]?[0-9]+)")


def _reading_pattern(prefix: bytes, space: bytes) -> re.Pattern[bytes]:
    """One reading in schema order (cost, ReadingQuality*, timePeriod, value, consumptionTier,
    tou, cpp; duration and start in either order), or, failing that, any single byte (group 11),
    so that ``findall`` accounts for every byte of the run.

    Groups: 1 cost, 2 the ReadingQuality elements, 3-4 duration and start, 5-6 start and
    duration, 7 value, 8 consumptionTier, 9 tou, 10 cpp, 11 a byte that is not a reading's."""
    p = re.escape(prefix)
    integer = space + rb"([+-]?[0-9]+)" + space
    code = space + rb"[+-]?[0-9]+" + space

    def element(name: bytes, content: bytes) -> bytes:
        return b"<" + p + name + space + b">" + content + b"</" + p + name + space + b">" + space

    def optional(name: bytes) -> bytes:
        return b"(?:" + element(name, integer) + b")?"

    quality = element(b"ReadingQuality", space + element(b"quality", code))
    period = element(
        b"timePeriod",
        space
        + b"(?:"
        + element(b"duration", integer)
        + element(b"start", integer)
        + b"|"
        + element(b"start", integer)
        + element(b"duration", integer)
        + b")",
    )
    reading = element(
        b"IntervalReading",
        space
        + optional(b"cost")
        + b"((?:"
        + quality
        + b")*)"
        + period
        + optional(b"value")
        + optional(b"consumptionTier")
        + optional(b"tou")
        + optional(b"cpp"),
    )
    return re.compile(reading + rb"|([\s\S])")


# Compiled once per prefix and layout: a handful in any real run.
_patterns: dict[tuple[bytes, bool], re.Pattern[bytes]] = {}


def _pattern_for(prefix: bytes, spaced: bool) -> re.Pattern[bytes]:
    key = (prefix, spaced)
    pattern = _patterns.get(key)
    if pattern is None:
        if len(_patterns) > 64:  # prefixes come from the input: keep the cache bounded
            _patterns.clear()
        pattern = _patterns[key] = _reading_pattern(prefix, _XML_SPACE if spaced else b"")
    return pattern


def _integers(texts: tuple[bytes, ...]) -> Iterable[int | None]:
    """A column of optional integers: one conversion per reading, none when all are absent."""
    absent = texts.count(b"")
    if absent == len(texts):
        return repeat(None)
    if absent == 0:
        return map(int, texts)
    return [int(text) if text else None for text in texts]


def _columns(run: bytes, prefix: bytes) -> list[tuple[bytes, ...]] | None:
    """The pattern's groups for every reading, a column each; None unless the run is all readings.

    Compact documents (no space between tags) take the pattern without optional spaces, which
    runs about a third faster; anything else the one that allows the spaces XML allows."""
    compact = run[len(prefix) + 17 : len(prefix) + 18] == b"<"  # just after "<p:IntervalReading>"
    for spaced in (False, True) if compact else (True,):
        found = _pattern_for(prefix, spaced).findall(run)
        columns = list(zip(*found, strict=True))
        if columns and columns[-1].count(b"") == len(found):  # no byte outside a reading
            return columns
    return None


# The one-shape pattern: the shape (which optional children a reading has) is taken from the
# run's first reading; the pattern then has no optional part, so it runs about twice as fast.
_CHILD_TAG = re.compile(rb"<(?:[A-Za-z_][A-Za-z0-9_.\-]*:)?([A-Za-z]+)>")
_OPTIONAL_AFTER = (b"value", b"consumptionTier", b"tou", b"cpp")
_INTEGER = rb"([+-]?[0-9]+)"


class _Shape(NamedTuple):
    pattern: re.Pattern[bytes]
    fixed: int  # bytes of one reading outside its captured integers
    fields: tuple[bytes, ...]  # the captured elements, in order


_shapes: dict[tuple[bytes, tuple[bytes, ...]], _Shape | None] = {}


def _shape_for(prefix: bytes, names: tuple[bytes, ...]) -> _Shape | None:
    """The compact pattern of a reading with exactly the children ``names`` (tag names in
    document order, IntervalReading first), when that is a shape the schema allows and this
    pattern knows: cost, at most one ReadingQuality, timePeriod, then value, consumptionTier,
    tou, cpp, each optional."""
    key = (prefix, names)
    if key in _shapes:
        return _shapes[key]
    rest = list(names)
    fields: list[bytes] = []
    regex, literal = [], []

    def element(name: bytes, inner: tuple[bytes, bytes]) -> tuple[bytes, bytes]:
        open_tag, close_tag = b"<" + prefix + name + b">", b"</" + prefix + name + b">"
        return (
            re.escape(open_tag) + inner[0] + re.escape(close_tag),
            open_tag + inner[1] + close_tag,
        )

    def take(name: bytes) -> bool:
        if rest and rest[0] == name:
            rest.pop(0)
            return True
        return False

    def integer(name: bytes) -> None:
        fields.append(name)
        part = element(name, (_INTEGER, b""))
        regex.append(part[0])
        literal.append(part[1])

    shape: _Shape | None = None
    if take(b"IntervalReading"):
        if take(b"cost"):
            integer(b"cost")
        if take(b"ReadingQuality"):
            if take(b"quality"):
                fields.append(b"quality")
                inner = element(b"quality", (_INTEGER, b""))
                part = element(b"ReadingQuality", inner)
                regex.append(part[0])
                literal.append(part[1])
            else:
                rest.insert(0, b"")  # not a shape this pattern knows
        if take(b"timePeriod"):
            period_regex, period_literal = [], []
            for first, second in ((b"duration", b"start"), (b"start", b"duration")):
                if rest[:2] == [first, second]:
                    del rest[:2]
                    for name in (first, second):
                        fields.append(name)
                        part = element(name, (_INTEGER, b""))
                        period_regex.append(part[0])
                        period_literal.append(part[1])
                    break
            part = element(b"timePeriod", (b"".join(period_regex), b"".join(period_literal)))
            regex.append(part[0])
            literal.append(part[1])
            for name in _OPTIONAL_AFTER:
                if take(name):
                    integer(name)
            if not rest and b"start" in fields and b"duration" in fields:
                whole = element(b"IntervalReading", (b"".join(regex), b"".join(literal)))
                shape = _Shape(re.compile(whole[0]), len(whole[1]), tuple(fields))
    if len(_shapes) > 64:  # shapes come from the input: keep the cache bounded
        _shapes.clear()
    _shapes[key] = shape
    return shape


def _read_one_shape(run: bytes, prefix: bytes) -> ReadingColumns | None:
    """The run's readings when all are compact and of the first one's shape; None otherwise.

    Nothing is taken on trust: the matches must tile the run exactly, i.e. their lengths (the
    shape's fixed bytes plus the captured integers) add up to the run's length; matches do not
    overlap, so that holds only when every byte of the run belongs to one of them."""
    end = run.find(b"</" + prefix + b"IntervalReading>")
    if end < 0:
        return None
    shape = _shape_for(prefix, tuple(_CHILD_TAG.findall(run, 0, end)))
    if shape is None:
        return None
    found = shape.pattern.findall(run)
    if not found:
        return None
    columns = dict(zip(shape.fields, zip(*found, strict=True), strict=True))
    captured = sum(len(b"".join(column)) for column in columns.values())
    if shape.fixed * len(found) + captured != len(run):
        return None
    count = len(found)
    durations = columns[b"duration"]
    nothing = (None,) * count

    def optional(name: bytes) -> tuple[int | None, ...]:
        column = columns.get(name)
        return nothing if column is None else tuple(map(int, column))

    quality = columns.get(b"quality")
    if quality is None:
        qualities: tuple[tuple[int, ...], ...] = ((),) * count
    else:
        codes = {text: (int(text),) for text in set(quality)}
        qualities = tuple(map(codes.__getitem__, quality))
    return ReadingColumns(
        (
            tuple(map(int, columns[b"start"])),
            (int(durations[0]),) * count
            if durations.count(durations[0]) == count
            else tuple(map(int, durations)),
            optional(b"value"),
            optional(b"cost"),
            qualities,
            optional(b"tou"),
            optional(b"consumptionTier"),
            optional(b"cpp"),
        )
    )


class ReadingColumns(Sequence[IntervalReading]):
    """A block's readings kept as the columns the scan read (IntervalReading's fields, in its
    order, a tuple each); the records are made only when asked for. The conversion spools the
    columns as they are (:attr:`columns`), so a two-year feed's 70,000 readings are never built
    as records only to be taken apart again. Equal to any sequence of the same readings."""

    __slots__ = ("columns",)

    def __init__(self, columns: tuple[tuple[Any, ...], ...]) -> None:
        self.columns = columns

    def __len__(self) -> int:
        return len(self.columns[0])

    @overload
    def __getitem__(self, index: int) -> IntervalReading: ...
    @overload
    def __getitem__(self, index: slice) -> list[IntervalReading]: ...
    def __getitem__(self, index: int | slice) -> IntervalReading | list[IntervalReading]:
        if isinstance(index, slice):
            return list(self)[index]
        return _new_reading(tuple(column[index] for column in self.columns))

    def __iter__(self) -> Iterator[IntervalReading]:
        return map(_new_reading, zip(*self.columns, strict=True))

    def __eq__(self, other: object) -> bool:
        if isinstance(other, ReadingColumns):
            return self.columns == other.columns
        if isinstance(other, Sequence):
            return list(self) == list(other)
        return NotImplemented

    __hash__ = None  # type: ignore[assignment]  # like the list it stands for

    def __repr__(self) -> str:
        return repr(list(self))


def _column(values: Iterable[int | None], count: int) -> tuple[int | None, ...]:
    return (None,) * count if isinstance(values, repeat) else tuple(values)


def _read(run: bytes, prefix: bytes) -> ReadingColumns | None:
    if run[len(prefix) + 17 : len(prefix) + 18] == b"<":  # compact: try the one-shape pattern
        quick = _read_one_shape(run, prefix)
        if quick is not None:
            return quick
    columns = _columns(run, prefix)
    if columns is None:
        return None
    cost, quality, duration1, start1, start2, duration2, value, tier, tou, cpp, _ = columns
    count = len(cost)
    if start2.count(b"") == count:
        starts, durations = start1, duration1
    elif start1.count(b"") == count:
        starts, durations = start2, duration2
    else:
        starts = tuple(a or b for a, b in zip(start1, start2, strict=True))
        durations = tuple(a or b for a, b in zip(duration1, duration2, strict=True))
    # Durations and quality codes rarely change within a block: convert each distinct one once.
    duration_values = (
        (int(durations[0]),) * count
        if durations.count(durations[0]) == count
        else tuple(map(int, durations))
    )
    codes = {text: tuple(map(int, _QUALITY_CODE.findall(text))) for text in set(quality)}
    return ReadingColumns(
        (
            tuple(map(int, starts)),
            duration_values,
            _column(_integers(value), count),
            _column(_integers(cost), count),
            tuple(map(codes.__getitem__, quality)),
            _column(_integers(tou), count),
            _column(_integers(tier), count),
            _column(_integers(cpp), count),
        )
    )


@dataclass(frozen=True)
class ReadingRun:
    """An entry's readings, read from its bytes, and the entry with the run replaced by a marker."""

    stub: bytes
    readings: ReadingColumns

    def claim(self, wrapped: etree._Element) -> etree._Element | None:
        """The entry element whose IntervalBlock the readings belong to, with the marker removed;
        None when the marker is not exactly where the readings may be taken from."""
        markers = list(wrapped.iter("{*}IntervalReading"))
        if len(markers) != 1:
            return None
        marker = markers[0]
        block = marker.getparent()
        content = None if block is None else block.getparent()
        entry = None if content is None else content.getparent()
        if (
            block is None
            or content is None
            or entry is None
            or entry.getparent() is not wrapped
            or len(marker) != 0
            or marker.attrib
            or marker.text is not None
            or marker.tag not in _MARKER
            or block.tag not in _BLOCK
            or content.tag not in _CONTENT
            or entry.tag not in _ENTRY
        ):
            return None
        # The parser reads the last <content> of an entry and the first object inside it.
        contents = [child for child in entry if child.tag in _CONTENT]
        objects = [child for child in content if isinstance(child.tag, str)]
        if contents[-1] is not content or objects[0] is not block:
            return None
        block.remove(marker)
        return entry


def cut_readings(segment: bytes, multiline: bool = True) -> ReadingRun | None:
    """The readings of the one run of IntervalReadings in ``segment``, when it is plain enough to
    read from the bytes; None sends the segment to lxml whole. ``multiline`` False says the
    segment has no newline (the caller looked already)."""
    first = _FIRST_READING.search(segment)
    if first is None:
        return None
    prefix = first.group(1)
    close = b"</" + prefix + b"IntervalReading"
    last = segment.rfind(close)
    end = segment.find(b">", last + len(close)) + 1
    if last < first.start() or end <= 0:
        return None
    run = segment[first.start() : end]
    readings = _read(run, prefix)
    if readings is None:
        return None
    # Newlines kept: lxml's line numbers for what follows the run stay those of the document.
    marker = b"<" + prefix + b"IntervalReading/>" + b"\n" * (run.count(b"\n") if multiline else 0)
    return ReadingRun(segment[: first.start()] + marker + segment[end:], readings)

"""The reading scanner (IntervalReadings read from the bytes, see ``_reading_scan``) must read
exactly what lxml reads, take the plain shapes utilities send, and hand anything else to lxml:
each document here is read twice, by the split reader (which uses the scanner) and by iterparse
(which never does), and both readings must agree, result for result or error for error."""

from __future__ import annotations

import io
import re
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import date

import pytest
from espi_support import (
    ELECTRIC,
    PACIFIC,
    assert_schema_valid,
    both_readers,
    feed_bytes,
    local_day_blocks,
    pacific_time,
    pretty_printed,
    usage_point,
)
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from lxml import etree
from scwadd_espi import _elements, _reading_scan, _split
from scwadd_espi.model import ESPI_NS, DateTimeInterval, IntervalBlock, IntervalReading
from scwadd_espi.parser import EspiParseError, ParsedEntry, read_all
from scwadd_espi.readings import iter_readings


class ScanCount:
    """How many entries had their readings taken from the bytes (the real scanner runs)."""

    def __init__(self) -> None:
        self.claimed = 0


@contextmanager
def counting_claims() -> Iterator[ScanCount]:
    count = ScanCount()
    claim = _reading_scan.ReadingRun.claim

    def counting_claim(
        run: _reading_scan.ReadingRun, wrapped: etree._Element
    ) -> etree._Element | None:
        owner = claim(run, wrapped)
        count.claimed += owner is not None
        return owner

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(_reading_scan.ReadingRun, "claim", counting_claim)
        yield count


@pytest.fixture
def scans() -> Iterator[ScanCount]:
    with counting_claims() as count:
        yield count


def _both(data: bytes) -> tuple[object, object]:
    """What the split reader and iterparse make of ``data``: entries, or the error's place."""
    outcomes = []
    for source in both_readers(data):
        try:
            outcomes.append(read_all(source, name="doc.xml"))
        except EspiParseError as error:
            outcomes.append((error.line, error.column, error.message))
    return outcomes[0], outcomes[1]


def _blocks(entries: object) -> list[IntervalBlock]:
    assert isinstance(entries, list)
    return [
        e.obj for e in entries if isinstance(e, ParsedEntry) and isinstance(e.obj, IntervalBlock)
    ]


def _feed(blocks: list[IntervalBlock], style: str = "pge") -> bytes:
    return feed_bytes(
        [usage_point("UP1", [("MR1", ELECTRIC, blocks)], local_time=pacific_time())],
        style=style,  # type: ignore[arg-type]
    )


INT = st.integers(-(2**47), 2**47 - 1)
OPTIONAL_INT = st.none() | INT


@st.composite
def reading_blocks(draw: st.DrawFn) -> list[IntervalBlock]:
    blocks = []
    start = 1_700_000_000
    for _ in range(draw(st.integers(1, 3))):
        count = draw(st.integers(1, 20))
        codes = st.sampled_from([0, 7, 8, 17, 19])
        if draw(st.booleans()):
            qualities = [tuple(draw(st.lists(codes, max_size=3))) for _ in range(count)]
        else:
            # As many codes as readings, dealt unevenly: block-wide counts then match the
            # readings while some reading has two codes and another none.
            qualities = [() for _ in range(count)]
            for _ in range(count):
                owner = draw(st.integers(0, count - 1))
                qualities[owner] += (draw(codes),)
        if draw(st.booleans()):  # any optional field on any reading
            fields = [
                (
                    draw(OPTIONAL_INT),
                    draw(OPTIONAL_INT),
                    draw(st.none() | st.integers(0, 20)),
                    draw(st.none() | st.integers(0, 5)),
                    draw(st.none() | st.integers(0, 3)),
                )
                for _ in range(count)
            ]
        else:  # every reading alike, the shape lxml's block-wide XPath path takes
            cost, tou = draw(st.none() | st.just(5)), draw(st.none() | st.just(1))
            fields = [(draw(INT), cost, tou, None, None) for _ in range(count)]
        readings = [
            IntervalReading(
                start=start + 900 * index,
                duration=draw(st.sampled_from([900, 900, 3600])),
                value=value,
                cost=cost,
                qualities=qualities[index],
                tou=tou,
                consumption_tier=tier,
                cpp=cpp,
            )
            for index, (value, cost, tou, tier, cpp) in enumerate(fields)
        ]
        blocks.append(IntervalBlock(DateTimeInterval(start, 900 * len(readings)), readings))
        start += 900 * len(readings)
    return blocks


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    blocks=reading_blocks(),
    style=st.sampled_from(["pge", "generic"]),
    pretty=st.booleans(),
)
def test_every_reading_shape_reads_as_lxml_reads_it(
    blocks: list[IntervalBlock], style: str, pretty: bool
) -> None:
    data = _feed(blocks, style)
    if pretty:
        data = pretty_printed(data)
    with counting_claims() as count:
        split, streamed = _both(data)
    assert split == streamed
    assert [list(b.readings) for b in _blocks(split)] == [list(b.readings) for b in blocks]
    assert count.claimed == len(blocks)  # every block was read by the scanner


def test_start_before_duration_and_a_default_namespace(scans: ScanCount) -> None:
    data = _feed(list(local_day_blocks(date(2024, 3, 1), 2, PACIFIC, quality=(0,))), "pge")
    swapped = re.sub(
        rb"(<ns0:duration>\d+</ns0:duration>)(<ns0:start>\d+</ns0:start>)", rb"\2\1", data
    )
    # The ESPI namespace as the default on each object instead of the ns0 prefix.
    unprefixed = swapped.replace(b"ns0:", b"").replace(b"xmlns:ns0=", b"xmlns=")
    split, streamed = _both(unprefixed)
    assert split == streamed
    assert sum(len(b.readings) for b in _blocks(split)) == 2 * 96
    assert scans.claimed == 2


def test_readings_without_a_namespace_are_read_as_espi(scans: ScanCount) -> None:
    """PG&E has sent objects that lost their namespace; lxml's path reads them as ESPI too."""
    data = _feed(list(local_day_blocks(date(2024, 3, 1), 1, PACIFIC)))
    bare = data.replace(b"ns0:", b"").replace(b' xmlns:ns0="http://naesb.org/espi"', b"")
    split, streamed = _both(bare)
    assert split == streamed
    assert len(_blocks(split)[0].readings) == 96
    assert scans.claimed == 1


ONE_DAY = _feed(list(local_day_blocks(date(2024, 3, 1), 1, PACIFIC, quality=(0,))))
READING = b"<ns0:IntervalReading>"


def _damage(old: bytes, new: bytes, occurrence: int = 5) -> bytes:
    at = -1
    for _ in range(occurrence):
        at = ONE_DAY.index(old, at + 1)
    return ONE_DAY[:at] + new + ONE_DAY[at + len(old) :]


@pytest.mark.parametrize(
    ("document", "outcome"),
    [
        # Shapes the scanner leaves to lxml, which reads them.
        (_damage(READING, b'<ns0:IntervalReading foo="1">'), "read"),
        (_damage(READING, READING + b"<ns0:extension><x>1</x></ns0:extension>"), "read"),
        (_damage(b"<ns0:value>", b"<ns0:value>&#49;"), "read"),
        (
            _damage(b"</ns0:value>", b"</ns0:value><ns0:tou>1</ns0:tou><ns0:cost>5</ns0:cost>"),
            "read",
        ),
        (_damage(READING, b"<ns0:stray>9</ns0:stray>" + READING), "read"),
        (_damage(READING, b'<ns0:IntervalReading xmlns:ns0="http://naesb.org/espi">'), "read"),
        # ... and those that are wrong, which lxml refuses.
        (_damage(b"</ns0:IntervalReading>", b"</ns0:IntervalReadin>"), "error"),
        (_damage(b"<ns0:value>", b"<ns0:value>&oops;"), "error"),
        (_damage(b"<ns0:value>", b"<ns0:value>x"), "error"),
        (_damage(b"</ns0:timePeriod>", b"</ns0:timePeriod>\x0b"), "error"),
    ],
    ids=[
        "attribute",
        "extension",
        "character-reference",
        "out-of-order",
        "stray-element",
        "namespace-on-reading",
        "mismatched-tag",
        "undefined-entity",
        "not-an-integer",
        "illegal-character",
    ],
)
def test_unusual_or_broken_readings_are_left_to_lxml(
    document: bytes, outcome: str, scans: ScanCount
) -> None:
    split, streamed = _both(document)
    assert split == streamed
    if outcome == "read":
        assert len(_blocks(split)[0].readings) == 96
    else:
        assert isinstance(split, tuple), split  # the same error at the same line and column
    assert scans.claimed == 0


def test_the_plain_day_is_claimed(scans: ScanCount) -> None:
    split, streamed = _both(ONE_DAY)
    assert split == streamed
    assert len(_blocks(split)[0].readings) == 96
    assert scans.claimed == 1


@pytest.mark.parametrize(
    "document",
    [
        # Readings bound to another namespace: neither reader takes them as ESPI readings.
        ONE_DAY.replace(
            b'<ns0:IntervalBlock xmlns:ns0="http://naesb.org/espi">',
            b'<e:IntervalBlock xmlns:e="http://naesb.org/espi" xmlns:ns0="urn:other">',
        ).replace(b"</ns0:IntervalBlock>", b"</e:IntervalBlock>"),
        # Readings outside any IntervalBlock: directly in the MeterReading's content.
        ONE_DAY.replace(
            b'<ns0:IntervalBlock xmlns:ns0="http://naesb.org/espi">',
            b'<ns0:MeterReading xmlns:ns0="http://naesb.org/espi">',
        ).replace(b"</ns0:IntervalBlock>", b"</ns0:MeterReading>"),
        # The run inside an attribute value (not well-formed): the marker must not be found.
        ONE_DAY.replace(b"<ns0:interval>", b'<ns0:interval a="', 1).replace(
            b"</ns0:IntervalBlock>", b'"></ns0:interval></ns0:IntervalBlock>', 1
        ),
        # The block is not the entry's object: another object comes first in the content ...
        ONE_DAY.replace(
            b'<ns1:content><ns0:IntervalBlock xmlns:ns0="http://naesb.org/espi">',
            b"<ns1:content><ns0:ServiceStatus><ns0:currentStatus>1</ns0:currentStatus>"
            b'</ns0:ServiceStatus><ns0:IntervalBlock xmlns:ns0="http://naesb.org/espi">',
        ),
        # ... or a later <content> is the one the entry is read from.
        ONE_DAY.replace(
            b"</ns0:IntervalBlock></ns1:content>",
            b"</ns0:IntervalBlock></ns1:content><ns1:content><ns0:ServiceStatus>"
            b"<ns0:currentStatus>1</ns0:currentStatus></ns0:ServiceStatus></ns1:content>",
        ),
    ],
    ids=[
        "other-namespace",
        "not-in-a-block",
        "inside-an-attribute",
        "not-the-first-object",
        "not-the-last-content",
    ],
)
def test_readings_out_of_place_are_not_claimed(document: bytes, scans: ScanCount) -> None:
    assert document != ONE_DAY
    split, streamed = _both(document)
    assert split == streamed
    assert scans.claimed == 0


def test_line_numbers_after_the_run_are_the_documents(tmp_path) -> None:
    """The run is replaced by a marker carrying its newlines: an error after it is placed right."""
    pretty = pretty_printed(_feed(list(local_day_blocks(date(2024, 3, 1), 3, PACIFIC))))
    at = pretty.index(b"<ns1:published>", pretty.rindex(b"</ns0:IntervalReading>"))
    data = pretty[:at] + b"<ns1:published>yesterday" + pretty[at + len(b"<ns1:published>") + 20 :]
    split, streamed = _both(data)
    assert isinstance(split, tuple) and split == streamed
    assert split[0] == data[:at].count(b"\n") + 1


def test_the_marker_replaces_the_run_and_keeps_its_lines() -> None:
    segment = (
        b"<e:IntervalBlock>\n<e:IntervalReading>\n<e:timePeriod><e:duration>900</e:duration>"
        b"<e:start>0</e:start></e:timePeriod>\n</e:IntervalReading>\n</e:IntervalBlock>"
    )
    run = _reading_scan.cut_readings(segment)
    assert run is not None
    assert run.stub == b"<e:IntervalBlock>\n<e:IntervalReading/>\n\n\n</e:IntervalBlock>"
    assert run.readings == [IntervalReading(0, 900, None)]


def test_the_split_reader_plans_these_documents() -> None:
    """Every document above takes the split reader, so the scanner is really in play."""
    assert _split.plan(_split.opener_for(io.BytesIO(ONE_DAY))) is not None


# ReadingQuality is 0..n per IntervalReading (espi.xsd): a code given twice is kept twice, on
# every path. The block-wide XPath path once read [(0, 0), ()] as [(0,), (0,)].
REPEATED_QUALITIES = [
    [(0, 0)],
    [(0, 0), (0, 0)],
    [(0, 0), ()],
    [(), (0, 0)],
    [(0, 0), (), (7,)],
    [(17, 17, 17), (19,), ()],
]


def _quality_block(qualities: list[tuple[int, ...]]) -> IntervalBlock:
    readings = [
        IntervalReading(1_700_000_000 + 900 * index, 900, 100 + index, qualities=codes)
        for index, codes in enumerate(qualities)
    ]
    return IntervalBlock(DateTimeInterval(1_700_000_000, 900 * len(readings)), readings)


@pytest.mark.parametrize("qualities", REPEATED_QUALITIES, ids=str)
@pytest.mark.parametrize("style", ["pge", "generic"])
@pytest.mark.parametrize("layout", ["compact", "pretty", "not-scanned"])
def test_a_repeated_reading_quality_is_kept_by_both_readers(
    qualities: list[tuple[int, ...]], style: str, layout: str, scans: ScanCount
) -> None:
    block = _quality_block(qualities)
    data = _feed([block], style)
    assert_schema_valid(data)  # the repeat is valid ESPI
    if layout == "pretty":
        data = pretty_printed(data)
    elif layout == "not-scanned":  # a comment in a reading: the split reader leaves it to lxml
        data = re.sub(rb"(<(?:\w+:)?IntervalReading>)", rb"\1<!-- -->", data, count=1)
    split, streamed = _both(data)
    assert [list(b.readings) for b in _blocks(split)] == [block.readings]
    assert [list(b.readings) for b in _blocks(streamed)] == [block.readings]
    assert scans.claimed == (0 if layout == "not-scanned" else 1)


@pytest.mark.parametrize("qualities", REPEATED_QUALITIES, ids=str)
def test_a_repeated_reading_quality_is_kept_by_each_block_reader(
    qualities: list[tuple[int, ...]],
) -> None:
    """The parts one by one: the scanner on compact and spaced bytes, the block-wide XPath path
    (which may only decline), the element-by-element reader, and iter_readings over them."""
    block = _quality_block(qualities)
    data = _feed([block])
    for document in (data, pretty_printed(data)):
        start = document.index(b"<ns0:IntervalReading>")
        end = document.rindex(b"</ns0:IntervalReading>") + len(b"</ns0:IntervalReading>")
        run = _reading_scan.cut_readings(document[start:end])
        assert run is not None and list(run.readings) == block.readings
    element = next(etree.fromstring(data).iter(f"{{{ESPI_NS}}}IntervalBlock"))
    fast = _elements._fast_block(element)
    assert fast is None or list(fast.readings) == block.readings
    reader = _elements._Reader("doc.xml", None)
    by_element = [
        reader.interval_reading(reading)
        for reading in element.iterchildren(f"{{{ESPI_NS}}}IntervalReading")
    ]
    assert by_element == block.readings
    assert [r.qualities for r in iter_readings(data)] == qualities


# IntervalReading's children other than ReadingQuality, DateTimeInterval's start and duration,
# and ReadingQuality's quality are at most one each (espi.xsd): a second one is refused with an
# error at its line on every path, never read as the first with the rest dropped.
REPEATABLE_ONCE = {
    # element: (its parent, relative to the reading; the reading's shape the block takes)
    "value": (".", "plain"),
    "cost": (".", "plain"),
    "timePeriod": (".", "plain"),
    "tou": (".", "plain"),
    "start": ("{*}timePeriod", "plain"),
    "duration": ("{*}timePeriod", "plain"),
    "quality": ("{*}ReadingQuality", "plain"),
    "consumptionTier": (".", "full"),
    "cpp": (".", "full"),
}


def _repeat_block(shape: str) -> IntervalBlock:
    """Three readings; "plain" is the shape the XPath block path reads (value, a quality code,
    cost and tou on every reading), "full" adds consumptionTier and cpp."""
    full = shape == "full"
    readings = [
        IntervalReading(
            1_700_000_000 + 900 * index,
            900,
            100 + index,
            cost=5,
            qualities=(0,),
            tou=1,
            consumption_tier=2 if full else None,
            cpp=0 if full else None,
        )
        for index in range(3)
    ]
    return IntervalBlock(DateTimeInterval(1_700_000_000, 2700), readings)


def _with_repeat(data: bytes, name: str, reading: int = 1, pretty: bool = False) -> bytes:
    """``data`` with the ``name`` child of its ``reading``-th IntervalReading given twice (the
    copy right after the original, its text changed so that the two differ)."""
    root = etree.fromstring(data)
    target = list(root.iter("{*}IntervalReading"))[reading]
    parent_path, _ = REPEATABLE_ONCE[name]
    parent = target if parent_path == "." else target.find(parent_path)
    assert parent is not None
    original = parent.find("{*}" + name)
    assert original is not None
    copy = etree.fromstring(etree.tostring(original))
    for element in copy.iter():
        if element.text and element.text.strip():
            element.text = str(int(element.text) + 1)
    original.addnext(copy)
    repeated = etree.tostring(root, xml_declaration=True, encoding="UTF-8")
    return pretty_printed(repeated) if pretty else repeated


def _repeat_line(data: bytes, name: str, reading: int = 1) -> int:
    """lxml's line of the second ``name`` in the reading: where the error must point."""
    target = list(etree.fromstring(data).iter("{*}IntervalReading"))[reading]
    parent_path, _ = REPEATABLE_ONCE[name]
    parent = target if parent_path == "." else target.find(parent_path)
    assert parent is not None
    line = parent.findall("{*}" + name)[1].sourceline
    assert line is not None
    return line


@pytest.mark.parametrize("name", REPEATABLE_ONCE)
@pytest.mark.parametrize("style", ["pge", "generic"])
@pytest.mark.parametrize("pretty", [False, True], ids=["compact", "pretty"])
def test_a_repeated_single_child_is_refused_by_both_readers(
    name: str, style: str, pretty: bool, scans: ScanCount
) -> None:
    block = _repeat_block(REPEATABLE_ONCE[name][1])
    data = _with_repeat(_feed([block], style), name, pretty=pretty)
    split, streamed = _both(data)
    assert split == streamed  # the same error at the same line and column
    assert isinstance(split, tuple), split
    line, _, message = split
    assert line == _repeat_line(data, name)
    assert f"a second <{name}>" in message
    assert scans.claimed == 0  # the scanner left the entry to lxml


@pytest.mark.parametrize("name", REPEATABLE_ONCE)
def test_a_repeated_single_child_is_refused_by_each_block_reader(name: str) -> None:
    """The parts one by one: the scanner declines the run on compact and spaced bytes, the
    block-wide XPath path declines the block, the element-by-element reader refuses the reading
    at the repeated element's line, and iter_readings and a file path end in that error."""
    block = _repeat_block(REPEATABLE_ONCE[name][1])
    clean = _feed([block])
    # The clean block is read by every path: the repeat is what each one declines.
    clean_block = next(etree.fromstring(clean).iter(f"{{{ESPI_NS}}}IntervalBlock"))
    if REPEATABLE_ONCE[name][1] == "plain":
        fast = _elements._fast_block(clean_block)
        assert fast is not None and list(fast.readings) == block.readings
    for pretty in (False, True):
        data = _with_repeat(clean, name, pretty=pretty)
        start = data.index(b"<ns0:IntervalReading>")
        end = data.rindex(b"</ns0:IntervalReading>") + len(b"</ns0:IntervalReading>")
        assert _reading_scan.cut_readings(data[start:end]) is None
        element = next(etree.fromstring(data).iter(f"{{{ESPI_NS}}}IntervalBlock"))
        assert _elements._fast_block(element) is None
        reader = _elements._Reader("doc.xml", None)
        readings = list(element.iterchildren(f"{{{ESPI_NS}}}IntervalReading"))
        assert reader.interval_reading(readings[0]) == block.readings[0]
        with pytest.raises(EspiParseError, match=f"a second <{name}>") as refused:
            reader.interval_reading(readings[1])
        assert refused.value.line == _repeat_line(data, name)
        with pytest.raises(EspiParseError, match=f"a second <{name}>") as by_readings:
            list(iter_readings(data))
        assert by_readings.value.line == refused.value.line


def test_the_error_points_at_the_repeated_element(tmp_path) -> None:
    """With a path, the column is found too: that of the second <value>, on its own line."""
    data = _with_repeat(_feed([_repeat_block("plain")]), "value", pretty=True)
    path = tmp_path / "doc.xml"
    path.write_bytes(data)
    with pytest.raises(EspiParseError) as refused:
        read_all(path)
    line = _repeat_line(data, "value")
    text = data.splitlines()[line - 1]
    assert (refused.value.line, refused.value.column) == (line, text.index(b"<ns0:value>") + 1)
    assert refused.value.message == (
        "IntervalReading holds a second <value>: expected at most one (espi.xsd "
        "IntervalReading: only ReadingQuality repeats)"
    )


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    blocks=reading_blocks(),
    style=st.sampled_from(["pge", "generic"]),
    pretty=st.booleans(),
    data=st.data(),
)
def test_a_repeat_anywhere_is_the_same_error_for_both_readers(
    blocks: list[IntervalBlock], style: str, pretty: bool, data: st.DataObject
) -> None:
    """Any reading of any shape the property test above makes, any of its single children
    given twice: both readers refuse the document at the same place, naming the element."""
    document = _feed(blocks, style)
    readings = [r for b in blocks for r in b.readings]
    index = data.draw(st.integers(0, len(readings) - 1))
    present = ["timePeriod", "start", "duration"] + [
        name
        for name, field in (
            ("value", "value"),
            ("cost", "cost"),
            ("tou", "tou"),
            ("consumptionTier", "consumption_tier"),
            ("cpp", "cpp"),
        )
        if getattr(readings[index], field) is not None
    ]
    if readings[index].qualities:
        present.append("quality")
    name = data.draw(st.sampled_from(present))
    repeated = _with_repeat(document, name, index, pretty)
    split, streamed = _both(repeated)
    assert split == streamed
    assert isinstance(split, tuple), split
    assert split[0] == _repeat_line(repeated, name, index)
    assert f"a second <{name}>" in split[2]

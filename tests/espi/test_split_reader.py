"""The split reader (plain feeds in a file or in memory) and iterparse (everything else) must
read every document the same way and report errors at the same places."""

import io
from datetime import date

import pytest
from espi_support import (
    ELECTRIC,
    GAS,
    PACIFIC,
    SOLAR_EXPORT,
    both_readers,
    feed_bytes,
    local_day_blocks,
    pacific_time,
    pretty_printed,
    usage_point,
    write,
)
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st
from scwadd_espi import _split
from scwadd_espi.parser import EspiParseError, read_all


def _both(data: bytes):
    split, streamed = both_readers(data)
    return read_all(split, name="doc.xml"), read_all(streamed, name="doc.xml")


def _points():
    return [
        usage_point(
            "UP1",
            [
                ("MR1", ELECTRIC, local_day_blocks(date(2024, 11, 2), 3, PACIFIC, quality=(0,))),
                ("MR2", SOLAR_EXPORT, local_day_blocks(date(2024, 11, 2), 3, PACIFIC)),
            ],
            local_time=pacific_time(),
        ),
        usage_point(
            "UP2", [("MR3", GAS, local_day_blocks(date(2024, 11, 2), 3, PACIFIC, 3600))], kind=1
        ),
    ]


@pytest.mark.parametrize("style", ["pge", "generic"])
def test_plain_feeds_take_the_split_reader_and_read_the_same(style: str) -> None:
    data = feed_bytes(_points(), style=style)
    assert _split.plan(_split.opener_for(io.BytesIO(data))) is not None
    split, streamed = _both(data)
    assert split == streamed
    # UP1, its LocalTimeParameters, 2 x (MeterReading, ReadingType, 3 blocks); UP2, 1 x (...).
    assert len(split) == 2 + 2 * (2 + 3) + 1 + (2 + 3)


def test_pretty_printed_feed_with_line_numbers(tmp_path) -> None:
    root = pretty_printed(feed_bytes(_points(), style="generic"))
    path = write(tmp_path, "pretty.xml", root)
    assert _split.plan(_split.opener_for(str(path))) is not None
    split = read_all(path)
    streamed = read_all(both_readers(root)[1])
    assert split == streamed
    assert [e.line for e in split] == [e.line for e in streamed]
    assert split[0].line is not None and split[-1].line is not None and split[-1].line > 100


@pytest.mark.parametrize(
    "damage",
    [
        (b"<ns0:value>", b"<ns0:value>x"),  # not an integer: the element's own line
        (b"</ns0:IntervalReading>", b"</ns0:IntervalReadin>"),  # a mismatched tag
        (b"<ns0:cost>", b"<ns0:cost>&oops;"),  # an undefined entity
        (b"<ns0:cost>", b"<ns0:cost>\xff"),  # not UTF-8: libxml2's push parser says line 1
    ],
)
def test_errors_are_placed_alike(damage: tuple[bytes, bytes]) -> None:
    pretty = pretty_printed(
        feed_bytes(
            [
                usage_point(
                    "UP1",
                    [
                        (
                            "MR1",
                            ELECTRIC,
                            local_day_blocks(date(2024, 1, 1), 2, PACIFIC, cost=lambda t: t % 97),
                        )
                    ],
                )
            ]
        )
    )
    old, new = damage
    at = pretty.index(old, len(pretty) // 2)  # in a later entry, many lines down
    data = pretty[:at] + new + pretty[at + len(old) :]
    assert _split.plan(_split.opener_for(io.BytesIO(data))) is not None
    errors = []
    for reader in both_readers(data):
        with pytest.raises(EspiParseError) as caught:
            read_all(reader, name="doc.xml")
        errors.append(caught.value)
    split, streamed = errors
    assert split.line == streamed.line == data[:at].count(b"\n") + 1
    assert split.message == streamed.message
    if streamed.column is not None:
        assert split.column == streamed.column


@pytest.mark.parametrize(
    "document",
    [
        b"<?xml version='1.0' encoding='ISO-8859-1'?><feed xmlns='http://www.w3.org/2005/Atom'/>",
        b"<feed xmlns='http://www.w3.org/2005/Atom'><!-- <entry> --></feed>",
        b"<feed xmlns='http://www.w3.org/2005/Atom'><entry><![CDATA[<entry>]]></entry></feed>",
        b"<ServiceStatus xmlns='http://naesb.org/espi'><currentStatus>1</currentStatus>"
        b"</ServiceStatus>",
        b"<feed xmlns='http://www.w3.org/2005/Atom'><entry></entry>",
    ],
    ids=["latin-1", "comment", "cdata", "bare-object", "unclosed"],
)
def test_anything_unusual_goes_to_iterparse(document: bytes) -> None:
    assert _split.plan(_split.opener_for(io.BytesIO(document))) is None


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    cut=st.integers(0, 4000),
    length=st.integers(0, 40),
    piece=st.sampled_from(
        [
            *(b"", b"<", b">", b"&", b"x", b"1", b" ", b"\n", b"\xff", b"&#49;"),
            *(b"</ns1:entry>", b"<ns1:entry>", b"<ns0:IntervalReading>", b"</ns0:value>"),
        ]
    ),
    pretty=st.booleans(),
)
def test_damaged_feeds_fail_or_read_alike(
    cut: int, length: int, piece: bytes, pretty: bool
) -> None:
    base = feed_bytes(
        [usage_point("UP1", [("MR1", ELECTRIC, local_day_blocks(date(2024, 1, 1), 1, PACIFIC))])]
    )
    if pretty:
        # A stray <entry> start tag ends the split reader's segment: its error is placed where
        # the segment was cut, lines before the end tag iterparse stops at.
        assume(b"entry" not in piece)
        base = pretty_printed(base)
    position = len(base) // 3 + cut
    data = base[:position] + piece + base[position + length :]
    outcomes = []
    for reader in both_readers(data):
        try:
            outcomes.append(("read", read_all(reader, name="doc.xml")))
        except EspiParseError as error:
            outcomes.append(("error", error.line))
    assert outcomes[0] == outcomes[1]

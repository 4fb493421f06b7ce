"""Hostile and malformed input: each fails with an EspiParseError that says where and what."""

import io
from datetime import date

import pytest
from espi_support import ELECTRIC, PACIFIC, feed_bytes, local_day_blocks, usage_point, write
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from scwadd_espi.convert import ConversionError, convert
from scwadd_espi.model import IntervalBlock, MeterReading, ServiceStatus, UsagePoint
from scwadd_espi.parser import MAX_NESTING, EspiParseError, read_all

ATOM = "http://www.w3.org/2005/Atom"
ESPI = "http://naesb.org/espi"

BILLION_LAUGHS = b"""<?xml version="1.0"?>
<!DOCTYPE lolz [
 <!ENTITY lol "lol">
 <!ENTITY lol2 "&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;">
 <!ENTITY lol3 "&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;">
 <!ENTITY lol4 "&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;">
 <!ENTITY lol5 "&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;">
 <!ENTITY lol6 "&lol5;&lol5;&lol5;&lol5;&lol5;&lol5;&lol5;&lol5;&lol5;&lol5;">
 <!ENTITY lol7 "&lol6;&lol6;&lol6;&lol6;&lol6;&lol6;&lol6;&lol6;&lol6;&lol6;">
 <!ENTITY lol8 "&lol7;&lol7;&lol7;&lol7;&lol7;&lol7;&lol7;&lol7;&lol7;&lol7;">
 <!ENTITY lol9 "&lol8;&lol8;&lol8;&lol8;&lol8;&lol8;&lol8;&lol8;&lol8;&lol8;">
]>
<feed xmlns="http://www.w3.org/2005/Atom"><entry><content>
<ServiceStatus xmlns="http://naesb.org/espi"><currentStatus>&lol9;</currentStatus></ServiceStatus>
</content></entry></feed>
"""


def _parse(data: bytes, name: str = "doc.xml") -> list:
    return read_all(io.BytesIO(data), name=name)


def test_billion_laughs_is_refused_at_the_doctype() -> None:
    with pytest.raises(EspiParseError) as caught:
        _parse(BILLION_LAUGHS)
    error = caught.value
    assert (error.source, error.line, error.column) == ("doc.xml", 2, 1)
    assert "DOCTYPE" in str(error)


def test_external_entity_is_refused_and_never_read(tmp_path) -> None:
    secret = tmp_path / "secret.txt"
    secret.write_text("TOP-SECRET-CONTENT")
    xxe = (
        f'<?xml version="1.0"?>\n<!DOCTYPE feed [<!ENTITY xxe SYSTEM "file://{secret}">]>\n'
        f'<feed xmlns="{ATOM}"><entry><content><ServiceStatus xmlns="{ESPI}">'
        "<currentStatus>&xxe;</currentStatus></ServiceStatus></content></entry></feed>"
    ).encode()
    with pytest.raises(EspiParseError, match="DOCTYPE") as caught:
        _parse(xxe)
    assert "TOP-SECRET" not in str(caught.value)


@pytest.mark.parametrize(
    "prefix",
    [b"", b"\xef\xbb\xbf", b"<?xml version='1.0'?>\n<!-- a comment -->\n<?pi data?>\n"],
    ids=["plain", "bom", "after-comment-and-pi"],
)
def test_doctype_is_refused_wherever_it_hides_in_the_prolog(prefix: bytes) -> None:
    data = prefix + b'<!DOCTYPE feed SYSTEM "http://example.invalid/x.dtd"><feed/>'
    with pytest.raises(EspiParseError, match="DOCTYPE"):
        _parse(data)


def test_doctype_in_utf16_is_refused_too() -> None:
    data = '<?xml version="1.0" encoding="UTF-16"?>\n<!DOCTYPE feed [<!ENTITY a "b">]>\n<feed/>'
    with pytest.raises(EspiParseError, match="DOCTYPE"):
        _parse(data.encode("utf-16"))


def test_fifty_level_deep_bomb_inside_an_entry_is_refused() -> None:
    bomb = b"<x>" * 50 + b"1" + b"</x>" * 50
    data = (
        f'<feed xmlns="{ATOM}"><entry><content><UsagePoint xmlns="{ESPI}">'.encode()
        + bomb
        + b"</UsagePoint></content></entry></feed>"
    )
    with pytest.raises(EspiParseError, match=f"more than {MAX_NESTING} levels"):
        _parse(data)


def test_fifty_level_deep_bomb_without_entries_is_refused() -> None:
    data = b"<a>" * 50 + b"</a>" * 50
    with pytest.raises(EspiParseError, match="nested more than"):
        _parse(data)


def test_undeclared_entity_is_an_error() -> None:
    data = f'<ServiceStatus xmlns="{ESPI}"><currentStatus>&oops;</currentStatus></ServiceStatus>'
    with pytest.raises(EspiParseError, match="oops"):
        _parse(data.encode())


def test_truncated_document_names_line_and_column(tmp_path) -> None:
    whole = feed_bytes(
        [usage_point("UP", [("MR", ELECTRIC, local_day_blocks(date(2024, 1, 1), 1, PACIFIC))])]
    )
    cut = whole[: len(whole) // 2]
    path = write(tmp_path, "cut.xml", cut)
    with pytest.raises(EspiParseError) as caught:
        read_all(path)
    error = caught.value
    assert error.source == str(path)
    last_line = cut.count(b"\n") + 1
    assert error.line == last_line and error.column is not None and error.column > 1
    assert str(error).startswith(f"{path}:{last_line}:{error.column}: malformed XML")


def test_non_integer_value_names_the_element_line_and_column(tmp_path) -> None:
    data = (
        f'<IntervalBlock xmlns="{ESPI}">\n'
        "  <IntervalReading><timePeriod><duration>900</duration><start>0</start></timePeriod>\n"
        "    <value>12.5</value></IntervalReading>\n</IntervalBlock>\n"
    )
    path = write(tmp_path, "bad.xml", data.encode())
    with pytest.raises(EspiParseError) as caught:
        read_all(path)
    error = caught.value
    assert (error.line, error.column) == (3, 5)
    assert "must be an integer" in error.message and "'12.5'" in error.message


def test_unknown_root_says_what_was_expected() -> None:
    with pytest.raises(EspiParseError, match="expected an Atom <feed> or <entry>"):
        _parse(b"<html><body/></html>")


def test_entry_without_content_is_an_error() -> None:
    with pytest.raises(EspiParseError, match="needs a <content>"):
        _parse(f'<feed xmlns="{ATOM}"><entry><id>x</id></entry></feed>'.encode())


def test_empty_input_is_an_error() -> None:
    with pytest.raises(EspiParseError):
        _parse(b"")


def test_prefixes_do_not_matter_and_a_dropped_namespace_is_tolerated() -> None:
    data = (
        '<a:feed xmlns:a="http://www.w3.org/2005/Atom" xmlns:zz="http://naesb.org/espi">'
        '<a:entry><a:link rel="self" href="/UsagePoint/1"/><a:content>'
        "<zz:UsagePoint><zz:ServiceCategory><zz:kind>1</zz:kind></zz:ServiceCategory>"
        "</zz:UsagePoint></a:content></a:entry>"
        # PG&E once sent objects without their prefix, i.e. in no namespace at all:
        '<a:entry><a:link rel="self" href="/UsagePoint/1/MeterReading/2"/><a:content>'
        "<MeterReading/></a:content></a:entry>"
        '<a:entry><a:link rel="up" href="/UsagePoint/1/MeterReading/2/IntervalBlock"/><a:content>'
        "<IntervalBlock><interval><duration>900</duration><start>0</start></interval>"
        "<IntervalReading><timePeriod><duration>900</duration><start>0</start></timePeriod>"
        "<value>5</value></IntervalReading></IntervalBlock></a:content></a:entry></a:feed>"
    )
    entries = _parse(data.encode())
    assert entries[0].obj == UsagePoint(kind=1)
    assert entries[1].obj == MeterReading()
    block = entries[2].obj
    assert isinstance(block, IntervalBlock)
    assert [r.value for r in block.readings] == [5]


def test_bare_service_status_document() -> None:
    data = f'<ServiceStatus xmlns="{ESPI}"><currentStatus>1</currentStatus></ServiceStatus>'
    assert [e.obj for e in _parse(data.encode())] == [ServiceStatus(1)]


def test_padded_and_large_quality_codes_read_exactly() -> None:
    readings = "".join(
        f"<IntervalReading><ReadingQuality><quality> {q} </quality></ReadingQuality>"
        f"<timePeriod><duration>900</duration><start>{i * 900}</start></timePeriod>"
        f"<value>{i}</value></IntervalReading>"
        for i, q in enumerate([8, 19, 0])
    )
    data = f'<IntervalBlock xmlns="{ESPI}">{readings}</IntervalBlock>'.encode()
    block = _parse(data)[0].obj
    assert [r.qualities for r in block.readings] == [(8,), (19,), (0,)]
    assert [r.value for r in block.readings] == [0, 1, 2]


def _block_with_interval(interval: str) -> bytes:
    readings = "".join(
        f"<IntervalReading><timePeriod><duration>900</duration><start>{i * 900}</start>"
        f"</timePeriod><value>{i}</value></IntervalReading>"
        for i in range(3)
    )
    return f'<IntervalBlock xmlns="{ESPI}">{interval}{readings}</IntervalBlock>'.encode()


@pytest.mark.parametrize(
    ("interval", "expected"),
    [
        ("<interval><start>0</start><duration>2700</duration></interval>", (0, 2700)),
        # An interval in another namespace is not ESPI's: ignored, the readings still read.
        ('<interval xmlns="urn:other"><duration>1</duration><start>2</start></interval>', None),
    ],
)
def test_block_interval_is_read_by_name_and_namespace(interval: str, expected) -> None:
    block = _parse(_block_with_interval(interval))[0].obj
    found = block.interval
    assert (None if found is None else (found.start, found.duration)) == expected
    assert [(r.start, r.value) for r in block.readings] == [(0, 0), (900, 1), (1800, 2)]


def test_a_block_interval_with_two_starts_is_refused() -> None:
    # Which start is the block's? Taking the first would silently drop the other.
    twice = "<interval><duration>2700</duration><start>0</start><start>9</start></interval>"
    with pytest.raises(EspiParseError, match="interval holds a second <start>"):
        _parse(_block_with_interval(twice))


_SEED_FEED = feed_bytes(
    [
        usage_point(
            "UP1",
            [
                (
                    "MR1",
                    ELECTRIC,
                    list(local_day_blocks(date(2024, 11, 2), 1, PACIFIC, quality=(0,))),
                )
            ],
        )
    ],
    validate=False,
)
_PIECES = [
    b"<",
    b">",
    b"/",
    b'"',
    b"&",
    b"9",
    b"-",
    b"",
    b"\x00",
    b"\xff",
    b"<value>",
    b"e+5",
    b"99999999999999999999999",
    b"</IntervalReading>",
    b"<!DOCTYPE x>",
]


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    edits=st.lists(
        st.tuples(st.floats(0, 1, exclude_max=True), st.integers(0, 30), st.sampled_from(_PIECES)),
        min_size=1,
        max_size=4,
    )
)
def test_damaged_documents_fail_only_with_a_clear_error(edits) -> None:
    data = bytearray(_SEED_FEED)
    for where, cut, piece in edits:
        position = int(where * len(data))
        data[position : position + cut] = piece
    try:
        convert([bytes(data)], io.BytesIO())
    except (EspiParseError, ConversionError) as error:
        assert str(error).startswith("<input 1>")

"""The real-world Green Button shapes of ../shared/cases/greenbutton (copied into data/), with the
right values from that README, through both readers (issue 9, sections 2 and 3)."""

from __future__ import annotations

import io
import re
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path

import pytest
from espi_support import both_readers, pretty_printed
from scwadd_espi.convert import ConversionError, convert
from scwadd_espi.parser import EspiParseError, read_all

DATA = Path(__file__).parent / "data"


def _convert(name: str, **options: object) -> tuple[list[dict[str, str]], object, object]:
    """The CSV rows and the report, read by the split reader and by iterparse: both must agree."""
    data = (DATA / name).read_bytes()
    results = []
    for source in both_readers(data):
        out = io.BytesIO()
        report = convert([source], out, names=[name], **options)  # type: ignore[arg-type]
        text = out.getvalue().decode("utf-8")
        results.append((text, report))
    (text_a, report_a), (text_b, report_b) = results
    assert text_a == text_b
    assert report_a.to_dict() == report_b.to_dict()  # type: ignore[attr-defined]
    import csv

    return list(csv.DictReader(io.StringIO(text_a))), report_a, text_a


def _total(rows: list[dict[str, str]], column: str = "delivered") -> Decimal:
    return sum((Decimal(r[column]) for r in rows if r[column]), Decimal(0))


def test_several_interval_blocks_in_one_entry_are_all_read() -> None:
    rows, report, _ = _convert("two-blocks-in-one-entry.xml")
    assert [r["delivered"] for r in rows] == ["0.001", "0.002"]
    assert report.readings_read == 2  # type: ignore[attr-defined]
    assert report.inputs[0].interval_blocks == 2  # type: ignore[attr-defined]


def test_several_blocks_read_alike_when_pretty_printed_and_compact() -> None:
    data = (DATA / "two-blocks-in-one-entry.xml").read_bytes()
    compact = re.sub(rb">\s+<", b"><", data)
    for variant in (compact, pretty_printed(compact)):
        out = io.BytesIO()
        convert([variant], out)
        assert out.getvalue().count(b"\r\n") == 3  # header and two rows


def test_tier_channels_over_the_same_interval_are_both_kept() -> None:
    rows, report, _ = _convert("tier-channels-same-interval.xml")
    assert len(rows) == 2
    assert _total(rows) == Decimal("63.2424")
    assert sorted((r["tou"], r["delivered"]) for r in rows) == [
        ("1", "16.4178"),
        ("3", "46.8246"),
    ]
    assert sorted(r["channel"] for r in rows) == ["1", "2"]
    assert report.duplicates == 0 and report.conflicts == 0  # type: ignore[attr-defined]
    lines = report.usage_points[0].reading_types  # type: ignore[attr-defined]
    assert sorted((line.tou, line.readings_written) for line in lines) == [(1, 1), (3, 1)]


@pytest.mark.parametrize("layout", ["pge", "scwadd"])
def test_one_row_layouts_sum_the_tier_channels_exactly(layout: str) -> None:
    _, report, text = _convert("tier-channels-same-interval.xml", layout=layout)
    assert report.rows == 1  # type: ignore[attr-defined]
    assert "63.2424" in text


def test_short_dst_rule_needs_tz_and_says_so() -> None:
    with pytest.raises(ConversionError, match=r"--tz") as caught:
        convert([DATA / "short-dst-rule.xml"], io.BytesIO())
    assert "short-dst-rule.xml:12:" in str(caught.value)
    assert "'B60E'" in str(caught.value)


def test_short_dst_rule_with_tz() -> None:
    rows, report, _ = _convert("short-dst-rule.xml", tz="America/Los_Angeles")
    assert len(rows) == 4
    assert _total(rows) == Decimal("0.89")
    assert rows[0]["interval_start_local"] == "2015-08-13T00:00:00-07:00"
    notes = report.notes  # type: ignore[attr-defined]
    assert any("LocalTimeParameters" in n and "America/Los_Angeles" in n for n in notes)


def test_empty_local_time_parameters_need_tz() -> None:
    with pytest.raises(ConversionError, match=r"--tz"):
        convert([DATA / "empty-local-time-parameters-gas-m3.xml"], io.BytesIO())


def test_empty_local_time_parameters_gas_in_m3_with_tz() -> None:
    rows, report, _ = _convert("empty-local-time-parameters-gas-m3.xml", tz="America/Toronto")
    assert len(rows) == 3
    assert {r["service"] for r in rows} == {"gas"}
    assert {r["unit"] for r in rows} == {"m3"}
    assert [r["delivered"] for r in rows] == ["212", "198", "172"]
    assert _total(rows) == Decimal("582")
    # The note names the element's own line (17), whichever reader read it.
    assert any(
        "America/Toronto" in n and "gas-m3.xml:17" in n
        for n in report.notes  # type: ignore[attr-defined]
    )


def _with_dates(published: bytes, updated: bytes) -> bytes:
    data = (DATA / "two-blocks-in-one-entry.xml").read_bytes()
    data = data.replace(
        b"<updated>2025-01-05T00:00:00Z</updated>", b"<updated>" + updated + b"</updated>"
    )
    return data.replace(
        b"<title>IB</title>", b"<title>IB</title><published>" + published + b"</published>"
    )


@pytest.mark.parametrize(
    ("published", "updated"),
    [(b"2016-07-07T02:19:27", b"2016-07-07T02:19:27"), (b"2024-06-21", b"2024-06-21")],
)
def test_atom_dates_without_offset_are_read_as_utc_with_a_note(
    published: bytes, updated: bytes
) -> None:
    data = _with_dates(published, updated)
    for source in both_readers(data):
        out = io.BytesIO()
        report = convert([source], out, names=["dates.xml"])
        assert out.getvalue().count(b"\r\n") == 3
        assert any("dates.xml:" in n and "read as UTC" in n for n in report.notes)
        # One note per entry at most, and a bounded list however many entries.
        assert len(report.notes) <= 6
    block = next(e for e in read_all(io.BytesIO(data)) if e.title == "IB")
    as_utc = datetime.fromisoformat(published.decode()).replace(tzinfo=UTC)
    assert block.published == int(as_utc.timestamp())


def test_an_atom_date_that_is_no_date_still_fails_with_its_place() -> None:
    data = _with_dates(b"yesterday", b"2024-06-21T00:00:00Z")
    for source in both_readers(data):
        with pytest.raises(EspiParseError, match=r"^bad\.xml:\d+:\d*.*xs:dateTime"):
            convert([source], io.BytesIO(), names=["bad.xml"])


def test_repeated_objects_other_than_blocks_are_refused_by_name() -> None:
    data = (DATA / "two-blocks-in-one-entry.xml").read_bytes()
    doubled = data.replace(
        b"<content><espi:UsagePoint><espi:ServiceCategory><espi:kind>0</espi:kind>"
        b"</espi:ServiceCategory></espi:UsagePoint></content>",
        b"<content><espi:UsagePoint><espi:ServiceCategory><espi:kind>0</espi:kind>"
        b"</espi:ServiceCategory></espi:UsagePoint><espi:UsagePoint/></content>",
    )
    assert doubled != data
    for source in both_readers(doubled):
        with pytest.raises(EspiParseError, match=r"2 <UsagePoint>.*expected one ESPI object"):
            convert([source], io.BytesIO())


def test_two_contents_in_one_entry_are_refused() -> None:
    data = (DATA / "two-blocks-in-one-entry.xml").read_bytes()
    doubled = data.replace(
        b"<content><espi:MeterReading/></content>",
        b"<content><espi:MeterReading/></content><content><espi:MeterReading/></content>",
    )
    assert doubled != data
    for source in both_readers(doubled):
        with pytest.raises(EspiParseError, match=r"2 <content> elements"):
            convert([source], io.BytesIO())


def test_a_meter_reading_with_two_reading_types_is_refused() -> None:
    data = (DATA / "two-blocks-in-one-entry.xml").read_bytes()
    rt = b"<espi:ReadingType><espi:flowDirection>1</espi:flowDirection></espi:ReadingType>"
    doubled = data.replace(
        b"<content><espi:MeterReading/></content>",
        b"<content><espi:MeterReading>" + rt + rt + b"</espi:MeterReading></content>",
    )
    assert doubled != data
    for source in both_readers(doubled):
        with pytest.raises(EspiParseError, match=r"2 <ReadingType>s: expected one"):
            convert([source], io.BytesIO())


def test_a_conservation_mismatch_is_an_error() -> None:
    from scwadd_espi.convert import _check_conservation
    from scwadd_espi.report import ConversionReport, ReadingTypeReport

    line = ReadingTypeReport("/MR/1", 1, "delivered", 72, "kWh", -3, 900, 1, 4)
    line.readings_read, line.readings_written, line.repeats = 5, 3, 1
    report = ConversionReport(layout="default", readings_read=5)
    with pytest.raises(ConversionError, match=r"/MR/1: 5 readings read but 3 written \+ 1"):
        _check_conservation([line], report)
    line.repeats = 2
    _check_conservation([line], report)
    report.readings_read = 6  # a reading that reached no channel
    with pytest.raises(ConversionError, match=r"6 readings read from the inputs but 5"):
        _check_conservation([line], report)

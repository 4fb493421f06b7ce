"""A child ESPI allows once, repeated in any object the engine reads, is refused at the second
occurrence by both readers: keeping the first would silently drop the other value (the
IntervalReading's own children are covered in test_reading_scan.py)."""

from __future__ import annotations

import io

import pytest
from espi_support import both_readers
from lxml import etree
from scwadd_espi import EspiParseError, iter_bills, iter_entries
from scwadd_espi.model import ESPI_NS, UsageSummary
from scwadd_espi.sample import write_sample_feed


def _sample() -> bytes:
    out = io.BytesIO()
    write_sample_feed(out)
    return out.getvalue()


def _with_second(data: bytes, parent: str, name: str) -> tuple[bytes, int]:
    """``data`` with the first ``parent``'s ``name`` child repeated (a different value where it
    has one), and the line the copy lands on."""
    root = etree.fromstring(data)
    holder = next(root.iter(f"{{{ESPI_NS}}}{parent}"))
    original = holder.find(f"{{{ESPI_NS}}}{name}")
    assert original is not None, (parent, name)
    copy = etree.fromstring(etree.tostring(original))
    for element in copy.iter():
        if element.text and element.text.strip().lstrip("-").isdigit():
            element.text = str(int(element.text) + 1)
    original.addnext(copy)
    repeated = etree.tostring(root, xml_declaration=True, encoding="UTF-8", pretty_print=True)
    second = etree.fromstring(repeated).iter(f"{{{ESPI_NS}}}{parent}").__next__()
    line = second.findall(f"{{{ESPI_NS}}}{name}")[1].sourceline
    assert line is not None
    return repeated, line


@pytest.mark.parametrize(
    ("parent", "name"),
    [
        ("ReadingType", "uom"),
        ("ReadingType", "powerOfTenMultiplier"),
        ("ReadingType", "flowDirection"),
        ("IntervalBlock", "interval"),
        ("UsagePoint", "ServiceCategory"),
    ],
)
def test_a_repeated_single_child_is_refused_at_its_line(parent: str, name: str) -> None:
    clean = _sample()
    for source in both_readers(clean):
        assert list(iter_entries(source))  # the sample itself reads
    data, line = _with_second(clean, parent, name)
    for source in both_readers(data):
        with pytest.raises(EspiParseError, match=f"{parent} holds a second <{name}>") as refused:
            list(iter_entries(source))
        assert refused.value.line == line


def test_a_repeated_bill_amount_is_refused_and_repeating_cost_lines_are_read() -> None:
    def summary(body: str) -> bytes:
        return (
            f'<UsageSummary xmlns="{ESPI_NS}">\n{body}\n'
            "<statusTimeStamp>1722495600</statusTimeStamp>\n</UsageSummary>"
        ).encode()

    line_item = (
        "<costAdditionalDetailLastPeriod><note>{note}</note><amount>{amount}</amount>"
        "<itemKind>1</itemKind></costAdditionalDetailLastPeriod>"
    )
    lines = summary(
        line_item.format(note="energy", amount=100000)
        + "\n"
        + line_item.format(note="delivery", amount=250000)
    )
    [parsed] = [entry.obj for entry in iter_entries(io.BytesIO(lines))]
    assert isinstance(parsed, UsageSummary)
    assert [item.amount for item in parsed.cost_additional_detail_last_period] == [100000, 250000]

    twice = summary("<billLastPeriod>1000</billLastPeriod>\n<billLastPeriod>2000</billLastPeriod>")
    with pytest.raises(EspiParseError, match="UsageSummary holds a second <billLastPeriod>") as e:
        list(iter_bills(twice, names=["summary.xml"]))
    assert e.value.line == 3

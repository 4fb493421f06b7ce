"""Nothing dropped, nothing merged: documents of random structure, counted independently.

Each example builds one or two overlapping feeds, by hand (not with the engine's writer), with
several usage points, several MeterReadings per usage point (tiers from the ReadingType, parallel
channels of one flowDirection, a non-energy channel), several IntervalBlocks per entry's content,
repeated readings inside a channel, compact or pretty-printed, read by the split reader or by
iterparse. The expected per-channel counts and totals come from the generated structure alone
(issue 9, section 2)."""

from __future__ import annotations

import csv
import io
from collections import defaultdict
from dataclasses import dataclass
from decimal import Decimal

from espi_support import OneWayStream, pretty_printed
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from scwadd_espi import convert, iter_readings

BASE = 1_717_200_000  # 2024-06-01T00:00:00Z
STEP = 900
ENERGY, POWER = 72, 38  # Wh (energy, written) and W (demand: ignored)


@dataclass(frozen=True)
class ChannelSpec:
    point: int
    meter: int
    flow: int
    tou: int | None
    tier: int | None
    multiplier: int
    uom: int

    @property
    def href(self) -> str:
        return f"/RetailCustomer/1/UsagePoint/UP{self.point}/MeterReading/{self.meter}"

    def value(self, slot: int) -> int:
        # Repeats of a reading carry the same value, so totals do not depend on which one wins.
        return (self.point * 7919 + self.meter * 104_729 + slot * 31) % 1_000_000

    def scaled(self, slot: int) -> Decimal:
        return Decimal(self.value(slot)).scaleb(self.multiplier - 3)  # Wh -> kWh


@dataclass(frozen=True)
class Document:
    # Per entry: the channel's index and the blocks of its content, each a list of slots.
    entries: tuple[tuple[int, tuple[tuple[int, ...], ...]], ...]
    pretty: bool
    one_way: bool


def _rt(spec: ChannelSpec) -> str:
    parts = [
        "<espi:accumulationBehaviour>4</espi:accumulationBehaviour>",
        "<espi:commodity>1</espi:commodity>",
        f"<espi:consumptionTier>{spec.tier}</espi:consumptionTier>" if spec.tier else "",
        f"<espi:flowDirection>{spec.flow}</espi:flowDirection>",
        "<espi:intervalLength>900</espi:intervalLength>",
        "<espi:kind>12</espi:kind>",
        f"<espi:powerOfTenMultiplier>{spec.multiplier}</espi:powerOfTenMultiplier>",
        f"<espi:tou>{spec.tou}</espi:tou>" if spec.tou else "",
        f"<espi:uom>{spec.uom}</espi:uom>",
    ]
    return "<espi:ReadingType>" + "".join(parts) + "</espi:ReadingType>"


def _entry(
    self_href: str, content: str, up: str | None = None, related: tuple[str, ...] = ()
) -> str:
    links = f'<link rel="self" href="{self_href}"/>'
    if up:
        links += f'<link rel="up" href="{up}"/>'
    links += "".join(f'<link rel="related" href="{r}"/>' for r in related)
    return (
        f"<entry><id>tag:example.com,2024:{self_href}</id><title>t</title>"
        f"<updated>2024-07-01T00:00:00Z</updated>{links}<content>{content}</content></entry>"
    )


def _feed(channels: list[ChannelSpec], document: Document) -> bytes:
    points = sorted({c.point for c in channels})
    parts = [
        '<?xml version="1.0" encoding="UTF-8"?>'
        '<feed xmlns="http://www.w3.org/2005/Atom" xmlns:espi="http://naesb.org/espi">'
        "<id>urn:uuid:feed</id><title>feed</title><updated>2024-07-01T00:00:00Z</updated>",
        _entry(
            "/LocalTimeParameters/1",
            "<espi:LocalTimeParameters><espi:dstEndRule>B40E2000</espi:dstEndRule>"
            "<espi:dstOffset>3600</espi:dstOffset><espi:dstStartRule>360E2000</espi:dstStartRule>"
            "<espi:tzOffset>-28800</espi:tzOffset></espi:LocalTimeParameters>",
        ),
    ]
    for point in points:
        base = f"/RetailCustomer/1/UsagePoint/UP{point}"
        parts.append(
            _entry(
                base,
                "<espi:UsagePoint><espi:ServiceCategory><espi:kind>0</espi:kind>"
                "</espi:ServiceCategory></espi:UsagePoint>",
                related=(f"{base}/MeterReading", "/LocalTimeParameters/1"),
            )
        )
    for index, spec in enumerate(channels):
        parts.append(_entry(f"/ReadingType/{index}", _rt(spec)))
        parts.append(
            _entry(
                spec.href,
                "<espi:MeterReading/>",
                related=(f"{spec.href}/IntervalBlock", f"/ReadingType/{index}"),
            )
        )
    for number, (index, blocks) in enumerate(document.entries):
        spec = channels[index]
        content = ""
        for slots in blocks:
            readings = "".join(
                "<espi:IntervalReading><espi:timePeriod>"
                f"<espi:duration>{STEP}</espi:duration>"
                f"<espi:start>{BASE + slot * STEP}</espi:start>"
                f"</espi:timePeriod><espi:value>{spec.value(slot)}</espi:value>"
                "</espi:IntervalReading>"
                for slot in slots
            )
            first, last = BASE + min(slots) * STEP, BASE + (max(slots) + 1) * STEP
            content += (
                "<espi:IntervalBlock><espi:interval>"
                f"<espi:duration>{last - first}</espi:duration><espi:start>{first}</espi:start>"
                f"</espi:interval>{readings}</espi:IntervalBlock>"
            )
        parts.append(
            _entry(
                f"{spec.href}/IntervalBlock/{number}",
                content,
                up=f"{spec.href}/IntervalBlock",
            )
        )
    parts.append("</feed>")
    data = "".join(parts).encode()
    return pretty_printed(data) if document.pretty else data


@st.composite
def _cases(draw: st.DrawFn) -> tuple[list[ChannelSpec], list[Document]]:
    channels: list[ChannelSpec] = []
    for point in range(draw(st.integers(1, 3))):
        for meter in range(draw(st.integers(1, 3))):
            channels.append(
                ChannelSpec(
                    point=point,
                    meter=meter,
                    flow=draw(st.sampled_from([1, 1, 19, 4])),
                    tou=draw(st.sampled_from([None, None, 1, 2])),
                    tier=draw(st.sampled_from([None, None, 1])),
                    multiplier=draw(st.sampled_from([0, -3])),
                    uom=draw(st.sampled_from([ENERGY, ENERGY, ENERGY, POWER])),
                )
            )
    slot = st.integers(0, 11)
    block = st.lists(slot, min_size=1, max_size=4).map(tuple)
    documents = []
    for _ in range(draw(st.integers(1, 2))):  # a second document overlaps the first
        entries = draw(
            st.lists(
                st.tuples(
                    st.integers(0, len(channels) - 1),
                    st.lists(block, min_size=1, max_size=3).map(tuple),
                ),
                min_size=0,
                max_size=6,
            )
        )
        documents.append(Document(tuple(entries), draw(st.booleans()), draw(st.booleans())))
    return channels, documents


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(_cases())
def test_per_channel_totals_match_an_independent_count(
    case: tuple[list[ChannelSpec], list[Document]],
) -> None:
    channels, documents = case
    feeds = [_feed(channels, d) for d in documents]
    sources = [
        io.BufferedReader(OneWayStream(f)) if d.one_way else f
        for f, d in zip(feeds, documents, strict=True)
    ]
    # The independent count: every slot generated, per channel.
    read: dict[str, list[int]] = defaultdict(list)
    for document in documents:
        for index, blocks in document.entries:
            read[channels[index].href].extend(s for b in blocks for s in b)
    out = io.BytesIO()
    report = convert(sources, out)
    rows = list(csv.DictReader(io.StringIO(out.getvalue().decode())))
    lines = {
        line.meter_reading: (point.id, line)
        for point in report.usage_points
        for line in point.reading_types
    }
    assert set(lines) == set(read)
    assert report.readings_read == sum(len(s) for s in read.values())
    for spec in channels:
        if spec.href not in read:
            continue
        point_id, line = lines[spec.href]
        slots = read[spec.href]
        distinct = set(slots)
        assert line.readings_read == len(slots)
        if spec.uom == POWER:
            assert (line.readings_written, line.repeats, line.ignored) == (0, 0, len(slots))
            continue
        assert line.readings_written == len(distinct)
        assert line.repeats == len(slots) - len(distinct)
        assert line.ignored == 0
        assert (line.tou, line.consumption_tier) == (spec.tou, spec.tier)
        if line.column == "net":
            continue  # the net column falls back to delivered - received where it has no reading
        mine = [
            r for r in rows if r["usage_point_id"] == point_id and r["channel"] == str(line.channel)
        ]
        written = sum((Decimal(r[line.column]) for r in mine if r[line.column]), Decimal(0))
        assert written == sum((spec.scaled(s) for s in distinct), Decimal(0))
        assert all(r["tou"] == ("" if spec.tou is None else str(spec.tou)) for r in mine)
        assert all(
            r["consumption_tier"] == ("" if spec.tier is None else str(spec.tier)) for r in mine
        )
    # The typed readings of each document: every reading, exactly scaled, with its channel.
    for feed, document in zip(feeds, documents, strict=True):
        expected = sorted(
            (channels[index].href, slot)
            for index, blocks in document.entries
            for b in blocks
            for slot in b
        )
        got = list(iter_readings(feed))
        assert (
            sorted(
                (r.channel.meter_reading, (int(r.start.timestamp()) - BASE) // STEP) for r in got
            )
            == expected
        )
        specs = {c.href: c for c in channels}
        for r in got:
            spec = specs[r.channel.meter_reading]
            slot = (int(r.start.timestamp()) - BASE) // STEP
            if spec.uom == ENERGY:
                assert r.value == spec.scaled(slot)
                assert r.channel.unit == "kWh"
            assert r.tou == spec.tou

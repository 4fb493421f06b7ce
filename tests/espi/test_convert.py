"""ESPI → CSV: totals, time labels, units, merging and the report."""

import csv
import hashlib
import io
import json
import random
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from pathlib import Path

import pytest
from espi_support import (
    ELECTRIC,
    GAS,
    PACIFIC,
    SOLAR_EXPORT,
    entries_of,
    feed_bytes,
    feed_from_entries,
    local_day_blocks,
    pacific_time,
    read_csv,
    usage_point,
    write,
)
from lxml import etree
from scwadd_espi.convert import ConversionError, convert
from scwadd_espi.model import DateTimeInterval, IntervalBlock, IntervalReading, ReadingType
from scwadd_espi.parser import EspiParseError

GBA_SAMPLE = Path(__file__).resolve().parents[3] / "shared" / "reference" / "gba-sample-feed.xml"
ESPI = "{http://naesb.org/espi}"


def _electric_feed(first: date, days: int, *, style: str = "pge", **kwargs) -> bytes:
    blocks = local_day_blocks(first, days, PACIFIC, **kwargs)
    return feed_bytes(
        [usage_point("UP1", [("MR1", ELECTRIC, blocks)], local_time=pacific_time(first.year))],
        style=style,
    )


@pytest.mark.skipif(
    not GBA_SAMPLE.exists(), reason="the shared reference folder is not beside the repo"
)
def test_green_button_sample_converts_with_its_own_totals(tmp_path) -> None:
    # The expected figures come from a plain tree walk of the sample, not from the engine.
    tree = etree.parse(str(GBA_SAMPLE))
    multiplier = int(tree.findtext(f".//{ESPI}ReadingType/{ESPI}powerOfTenMultiplier"))
    assert tree.findtext(f".//{ESPI}ReadingType/{ESPI}uom") == "72"  # Wh
    readings = tree.findall(f".//{ESPI}IntervalReading")
    total_kwh = sum(Decimal(r.findtext(f"{ESPI}value")).scaleb(multiplier - 3) for r in readings)
    starts = [int(r.findtext(f"{ESPI}timePeriod/{ESPI}start")) for r in readings]

    report = convert([GBA_SAMPLE], tmp_path / "gba.csv")
    rows = read_csv(tmp_path / "gba.csv")

    assert report.rows == len(rows) == len(readings)
    assert sum(Decimal(row["delivered"]) for row in rows) == total_kwh
    assert rows[0]["interval_start_utc"] == datetime.fromtimestamp(min(starts), UTC).strftime(
        "%Y-%m-%dT%H:%M:%SZ"
    )
    assert report.usage_points[0].id == "5446AF3F"
    assert report.usage_points[0].unit == "kWh"
    assert report.conflicts == report.duplicates == report.gap_count == 0
    # The sample's LocalTimeParameters say UTC-5 with US DST.
    assert rows[0]["interval_start_local"].endswith("-05:00")
    assert {row["received"] for row in rows} == {""}


def test_exact_scaling_of_pge_values(tmp_path) -> None:
    blocks = local_day_blocks(date(2024, 6, 1), 1, PACIFIC, value=lambda t: 1449000)
    source = write(tmp_path, "in.xml", feed_bytes([usage_point("UP1", [("MR", ELECTRIC, blocks)])]))
    convert([source], tmp_path / "out.csv")
    rows = read_csv(tmp_path / "out.csv")
    assert {row["delivered"] for row in rows} == {"1.449"}  # 1449000 x 10^-3 Wh = 1.449 kWh
    assert {row["unit"] for row in rows} == {"kWh"}


def test_fall_back_day_has_25_hours_with_distinguishable_labels(tmp_path) -> None:
    source = write(tmp_path, "fall.xml", _electric_feed(date(2024, 11, 3), 1))
    convert([source], tmp_path / "out.csv")
    rows = read_csv(tmp_path / "out.csv")
    assert len(rows) == 100  # 25 hours of 15 minutes
    labels = [row["interval_start_local"] for row in rows]
    assert len(set(labels)) == 100
    assert "2024-11-03T01:15:00-07:00" in labels and "2024-11-03T01:15:00-08:00" in labels
    assert labels.index("2024-11-03T01:15:00-07:00") < labels.index("2024-11-03T01:15:00-08:00")


def test_spring_forward_day_has_23_hours_and_no_phantom_hour(tmp_path) -> None:
    source = write(tmp_path, "spring.xml", _electric_feed(date(2024, 3, 10), 1))
    convert([source], tmp_path / "out.csv")
    rows = read_csv(tmp_path / "out.csv")
    assert len(rows) == 92
    assert not [r for r in rows if r["interval_start_local"].startswith("2024-03-10T02:")]
    assert rows[7]["interval_start_local"] == "2024-03-10T01:45:00-08:00"
    assert rows[8]["interval_start_local"] == "2024-03-10T03:00:00-07:00"


def test_pge_layout_on_the_fall_back_day_notes_the_repeated_hour(tmp_path) -> None:
    source = write(tmp_path, "fall.xml", _electric_feed(date(2024, 11, 3), 1, cost=lambda t: 3012))
    convert([source], tmp_path / "out.csv", layout="pge")
    raw = (tmp_path / "out.csv").read_bytes()
    assert raw.startswith(b"\xef\xbb\xbf")
    lines = list(csv.reader(raw.decode("utf-8-sig").splitlines()))
    assert lines[0][0] == "Name" and lines[1][0] == "Address" and lines[2][0] == "Account Number"
    assert lines[3][0] == "Service" and lines[4] == []
    assert lines[5] == ["TYPE", "DATE", "START TIME", "END TIME", "USAGE (kWh)", "COST", "NOTES"]
    data = lines[6:]
    assert data[0][:4] == ["Electric usage", "2024-11-03", "00:00", "00:14"]
    assert data[0][5] == "$0.03012"  # 3012 hundred-thousandths of a dollar, exactly
    repeated = [row for row in data if row[2] == "01:00"]
    assert len(repeated) == 2
    assert repeated[0][6].endswith("-07:00") and repeated[1][6].endswith("-08:00")


def test_gas_is_in_therms(tmp_path) -> None:
    blocks = local_day_blocks(date(2024, 2, 1), 1, PACIFIC, interval=3600, value=lambda t: 1449)
    point = usage_point("GAS1", [("MRG", GAS, blocks)], kind=1, local_time=pacific_time())
    source = write(tmp_path, "gas.xml", feed_bytes([point]))
    report = convert([source], tmp_path / "out.csv")
    rows = read_csv(tmp_path / "out.csv")
    assert len(rows) == 24
    assert {(r["service"], r["unit"], r["delivered"]) for r in rows} == {("gas", "therms", "1.449")}
    assert report.usage_points[0].service == "gas"
    convert([source], tmp_path / "pge.csv", layout="pge")
    assert "USAGE (therms)" in (tmp_path / "pge.csv").read_text(encoding="utf-8-sig")
    assert "Natural gas usage" in (tmp_path / "pge.csv").read_text(encoding="utf-8-sig")


def test_pge_gas_multiplier_minus_eight(tmp_path) -> None:
    # PG&E's gas ReadingType: uom 169 (therm) with powerOfTenMultiplier -8, outside the schema's
    # enumeration, so this one document is not schema-checked.
    pge_gas = ReadingType(flow_direction=1, uom=169, power_of_ten_multiplier=-8, commodity=7)
    blocks = local_day_blocks(
        date(2024, 2, 1), 1, PACIFIC, interval=3600, value=lambda t: 123456789
    )
    point = usage_point("GAS1", [("MRG", pge_gas, blocks)], kind=1)
    source = write(tmp_path, "gas.xml", feed_bytes([point], validate=False))
    convert([source], tmp_path / "out.csv")
    assert {r["delivered"] for r in read_csv(tmp_path / "out.csv")} == {"1.23456789"}


def test_solar_export_fills_received_and_net(tmp_path) -> None:
    day = date(2024, 7, 1)
    delivered = local_day_blocks(day, 1, PACIFIC, value=lambda t: 500000)
    received = local_day_blocks(day, 1, PACIFIC, value=lambda t: 200000 if t % 3600 else 0)
    point = usage_point(
        "SOLAR",
        [("MR-D", ELECTRIC, delivered), ("MR-R", SOLAR_EXPORT, received)],
        local_time=pacific_time(),
    )
    source = write(tmp_path, "solar.xml", feed_bytes([point]))
    report = convert([source], tmp_path / "out.csv")
    rows = read_csv(tmp_path / "out.csv")
    assert len(rows) == 96 == report.rows
    on_the_hour = rows[0]
    assert (on_the_hour["delivered"], on_the_hour["received"], on_the_hour["net"]) == (
        "0.5",
        "0",
        "0.5",
    )
    assert (rows[1]["delivered"], rows[1]["received"], rows[1]["net"]) == ("0.5", "0.2", "0.3")
    columns = {r.column for r in report.usage_points[0].reading_types}
    assert columns == {"delivered", "received"}
    convert([source], tmp_path / "pge.csv", layout="pge")
    assert "0.3" in (tmp_path / "pge.csv").read_text(encoding="utf-8-sig")


def test_a_reading_without_a_value_is_unknown_not_zero_in_every_layout(tmp_path) -> None:
    """espi.xsd lets an IntervalReading omit its value: the row stays, its energy unknown, so
    no layout writes a net, a USAGE or a conventional 0 for it."""
    day = date(2024, 7, 1)
    midnight = 1719817200  # 2024-07-01T00:00 PDT
    delivered = local_day_blocks(day, 1, PACIFIC, value=lambda t: None if t == midnight else 500000)
    received = local_day_blocks(day, 1, PACIFIC, value=lambda t: 200000)
    solar = usage_point(
        "SOLAR",
        [("MR-D", ELECTRIC, delivered), ("MR-R", SOLAR_EXPORT, received)],
        local_time=pacific_time(),
    )
    alone = usage_point(  # one channel: the direct writing path
        "ALONE",
        [
            (
                "MR-A",
                ELECTRIC,
                local_day_blocks(
                    day, 1, PACIFIC, value=lambda t: None if t == midnight else 100000
                ),
            )
        ],
        local_time=pacific_time(),
    )
    source = write(tmp_path, "in.xml", feed_bytes([solar, alone]))
    for layout in ("default", "pge", "scwadd"):
        report = convert([source], tmp_path / f"{layout}.csv", layout=layout)
        # Counted and said, on the sorting path (SOLAR) and the direct one (ALONE).
        assert {p.id: p.rows_without_value for p in report.usage_points} == {"SOLAR": 1, "ALONE": 1}
        assert sum("reading without a value" in note for note in report.notes) == 2
    rows = read_csv(tmp_path / "default.csv")
    first = {
        r["usage_point_id"]: r for r in rows if r["interval_start_utc"] == "2024-07-01T07:00:00Z"
    }
    assert (first["SOLAR"]["delivered"], first["SOLAR"]["received"], first["SOLAR"]["net"]) == (
        "",
        "0.2",
        "",
    )
    assert (first["ALONE"]["delivered"], first["ALONE"]["net"]) == ("", "")
    second = [r for r in rows if r["usage_point_id"] == "SOLAR"][1]
    assert (second["delivered"], second["received"], second["net"]) == ("0.5", "0.2", "0.3")
    scwadd = read_csv(tmp_path / "scwadd.csv")
    assert [
        r["Delivered From Grid Value (kWh)"]
        for r in scwadd
        if r["Interval Timestamp"] == "2024-07-01T00:00:00-07:00"
    ] == ["", ""]
    pge = (tmp_path / "pge.csv").read_text(encoding="utf-8-sig").splitlines()
    midnight_rows = [line for line in pge if line.startswith("Electric usage,2024-07-01,00:00,")]
    assert [line.split(",")[4] for line in midnight_rows] == ["", ""]


def test_an_unknown_tier_or_a_known_net_channel_is_never_summed_or_zeroed(tmp_path) -> None:
    """Two time-of-use channels, one without a value at midnight: the one-row-per-interval
    layouts (pge, scwadd) leave that interval blank, not the other tier's part. A net channel
    (flowDirection 4) with a value keeps the net while the delivered cell stays blank."""
    from dataclasses import replace

    day = date(2024, 7, 1)
    midnight = 1719817200  # 2024-07-01T00:00 PDT

    def gap_at_midnight(value: int):  # type: ignore[no-untyped-def]
        return lambda t: None if t == midnight else value

    tiers = usage_point(
        "TOU",
        [
            (
                "MR-1",
                replace(ELECTRIC, tou=1),
                local_day_blocks(day, 1, PACIFIC, value=gap_at_midnight(300000)),
            ),
            (
                "MR-2",
                replace(ELECTRIC, tou=2),
                local_day_blocks(day, 1, PACIFIC, value=lambda t: 200000),
            ),
        ],
        local_time=pacific_time(),
    )
    netted = usage_point(
        "NET",
        [
            ("MR-D", ELECTRIC, local_day_blocks(day, 1, PACIFIC, value=gap_at_midnight(500000))),
            (
                "MR-N",
                replace(ELECTRIC, flow_direction=4),
                local_day_blocks(day, 1, PACIFIC, value=lambda t: 400000),
            ),
        ],
        local_time=pacific_time(),
    )
    source = write(tmp_path, "in.xml", feed_bytes([tiers, netted]))
    for layout in ("default", "pge", "scwadd"):
        convert([source], tmp_path / f"{layout}.csv", layout=layout)
    at_midnight = "2024-07-01T00:00:00-07:00"
    scwadd = {
        r["SA_UUID"]: r
        for r in read_csv(tmp_path / "scwadd.csv")
        if r["Interval Timestamp"] == at_midnight
    }
    assert scwadd["TOU"]["Delivered From Grid Value (kWh)"] == ""  # not tier 2's 0.2
    assert scwadd["NET"]["Delivered From Grid Value (kWh)"] == ""  # not a 0
    pge = (tmp_path / "pge.csv").read_text(encoding="utf-8-sig").splitlines()
    usage = [
        line.split(",")[4] for line in pge if line.startswith("Electric usage,2024-07-01,00:00,")
    ]
    assert usage == ["", "0.4"]  # TOU unknown; NET from its net channel
    default = [
        r for r in read_csv(tmp_path / "default.csv") if r["interval_start_local"] == at_midnight
    ]
    assert [(r["usage_point_id"], r["delivered"], r["net"]) for r in default] == [
        ("TOU", "", ""),
        ("TOU", "0.2", "0.2"),
        ("NET", "", "0.4"),
    ]


def test_no_solar_means_empty_or_zero_received_never_nan(tmp_path) -> None:
    source = write(tmp_path, "in.xml", _electric_feed(date(2024, 5, 5), 1))
    for layout in ("default", "pge", "scwadd"):
        convert([source], tmp_path / f"{layout}.csv", layout=layout)
        assert "nan" not in (tmp_path / f"{layout}.csv").read_text().lower()
    assert {r["received"] for r in read_csv(tmp_path / "default.csv")} == {""}
    scwadd = read_csv(tmp_path / "scwadd.csv")
    assert list(scwadd[0]) == [
        "SA_UUID",
        "Interval Timestamp",
        "Delivered From Grid Value (kWh)",
        "Back To Grid Value (kWh)",
    ]
    assert {r["Back To Grid Value (kWh)"] for r in scwadd} == {"0"}
    assert {r["SA_UUID"] for r in scwadd} == {"UP1"}  # the usage point, not the subscription


def test_several_usage_points_sorted_by_point_then_time(tmp_path) -> None:
    electric = usage_point(
        "UP-E", [("MR1", ELECTRIC, local_day_blocks(date(2024, 1, 2), 2, PACIFIC))]
    )
    gas = usage_point(
        "UP-G",
        [("MR2", GAS, local_day_blocks(date(2024, 1, 1), 2, PACIFIC, interval=3600))],
        kind=1,
    )
    source = write(tmp_path, "both.xml", feed_bytes([gas, electric], style="generic"))
    report = convert([source], tmp_path / "out.csv")
    rows = read_csv(tmp_path / "out.csv")
    assert [p.id for p in report.usage_points] == ["UP-G", "UP-E"]
    assert len(rows) == 48 + 192
    assert [r["usage_point_id"] for r in rows] == ["UP-G"] * 48 + ["UP-E"] * 192
    for point in ("UP-G", "UP-E"):
        starts = [r["interval_start_utc"] for r in rows if r["usage_point_id"] == point]
        assert starts == sorted(starts)


def test_overlapping_documents_are_merged_and_conflicts_counted(tmp_path) -> None:
    def value(t: int) -> int:
        return 1000 + t % 500

    older = datetime(2025, 1, 1, tzinfo=UTC)
    newer = older + timedelta(days=1)
    first = feed_bytes(
        [
            usage_point(
                "UP1",
                [("MR1", ELECTRIC, local_day_blocks(date(2024, 4, 1), 3, PACIFIC, value=value))],
            )
        ],
        updated=older,
    )
    third_day = int(datetime(2024, 4, 3, tzinfo=PACIFIC).timestamp())
    changed = {third_day + 900 * k for k in range(4)}

    def revised(t: int) -> int:
        return value(t) + 7 if t in changed else value(t)

    second = feed_bytes(
        [
            usage_point(
                "UP1",
                [("MR1", ELECTRIC, local_day_blocks(date(2024, 4, 3), 3, PACIFIC, value=revised))],
            )
        ],
        updated=newer,
    )
    a, b = write(tmp_path, "a.xml", first), write(tmp_path, "b.xml", second)
    for order in ([a, b], [b, a]):
        report = convert(order, tmp_path / "out.csv")
        rows = read_csv(tmp_path / "out.csv")
        assert len(rows) == report.rows == 5 * 96
        assert report.readings_read == 6 * 96
        assert report.duplicates == 96 and report.conflicts == 4
        by_start = {r["interval_start_utc"]: Decimal(r["delivered"]) for r in rows}
        for t in changed:  # the most recently updated document wins, whatever the input order
            key = datetime.fromtimestamp(t, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
            assert by_start[key] == Decimal(revised(t)).scaleb(-6)


def test_entries_in_any_order_still_resolve(tmp_path) -> None:
    point = usage_point(
        "UP1",
        [("MR1", ELECTRIC, local_day_blocks(date(2024, 8, 1), 3, PACIFIC))],
        local_time=pacific_time(),
    )
    for style in ("pge", "generic"):
        entries = entries_of([point], style=style)
        ordered = write(tmp_path, f"{style}-ordered.xml", feed_from_entries(entries, style=style))
        entries.reverse()  # IntervalBlocks first, UsagePoint last
        reverse = write(tmp_path, f"{style}-reverse.xml", feed_from_entries(entries, style=style))
        convert([ordered], tmp_path / "a.csv")
        convert([reverse], tmp_path / "b.csv")
        assert (tmp_path / "a.csv").read_bytes() == (tmp_path / "b.csv").read_bytes()
        assert len(read_csv(tmp_path / "a.csv")) == 288


def test_gaps_are_reported(tmp_path) -> None:
    blocks = list(local_day_blocks(date(2024, 9, 1), 4, PACIFIC))
    del blocks[2]
    source = write(
        tmp_path, "gap.xml", feed_bytes([usage_point("UP1", [("MR", ELECTRIC, blocks)])])
    )
    report = convert([source], tmp_path / "out.csv")
    point = report.usage_points[0]
    assert point.gap_count == 1 and point.gap_seconds == 86400
    assert point.gaps[0].start_utc == "2024-09-03T07:00:00Z"
    assert point.first_interval_start_utc == "2024-09-01T07:00:00Z"
    assert point.last_interval_end_utc == "2024-09-05T07:00:00Z"


def test_report_is_a_manifest_with_the_csv_hash(tmp_path) -> None:
    source = write(tmp_path, "in.xml", _electric_feed(date(2024, 1, 1), 2))
    report = convert([source], tmp_path / "out.csv")
    manifest = json.loads(json.dumps(report.to_dict()))
    assert (
        manifest["output_sha256"] == hashlib.sha256((tmp_path / "out.csv").read_bytes()).hexdigest()
    )
    assert manifest["inputs"][0]["sha256"] == hashlib.sha256(source.read_bytes()).hexdigest()
    assert manifest["rows"] == 192
    assert manifest["period_start_utc"] == "2024-01-01T08:00:00Z"
    assert manifest["period_end_utc"] == "2024-01-03T08:00:00Z"
    assert manifest["usage_points"][0]["reading_types"][0]["uom"] == 72


def test_timezone_override(tmp_path) -> None:
    source = write(tmp_path, "in.xml", _electric_feed(date(2024, 1, 1), 1))
    convert([source], tmp_path / "out.csv", tz="America/New_York")
    assert read_csv(tmp_path / "out.csv")[0]["interval_start_local"] == "2024-01-01T03:00:00-05:00"


def test_bad_second_input_leaves_no_output(tmp_path) -> None:
    good = write(tmp_path, "good.xml", _electric_feed(date(2024, 1, 1), 1))
    bad = write(tmp_path, "bad.xml", b"<feed xmlns='http://www.w3.org/2005/Atom'><entry>")
    with pytest.raises(EspiParseError, match=r"bad\.xml"):
        convert([good, bad], tmp_path / "out.csv")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["bad.xml", "good.xml"]


def test_block_without_its_meter_reading_is_an_error_not_a_silent_drop(tmp_path) -> None:
    point = usage_point("UP1", [("MR1", ELECTRIC, local_day_blocks(date(2024, 1, 1), 1, PACIFIC))])
    entries = [e for e in entries_of([point]) if type(e.content).__name__ != "MeterReading"]
    source = write(tmp_path, "orphan.xml", feed_from_entries(entries))
    with pytest.raises(ConversionError, match="no MeterReading lists the IntervalBlock collection"):
        convert([source], tmp_path / "out.csv")
    with pytest.raises(ConversionError) as caught:
        convert([source], tmp_path / "out.csv")
    assert str(caught.value).startswith(f"{source}:2: IntervalBlock entry:")  # after the decl.


def test_random_block_order_across_documents(tmp_path) -> None:
    blocks = list(local_day_blocks(date(2024, 10, 1), 6, PACIFIC))
    random.Random(3).shuffle(blocks)
    paths = []
    for index in range(3):
        part = blocks[index * 2 : index * 2 + 2]
        data = feed_bytes([usage_point("UP1", [("MR1", ELECTRIC, part)])])
        paths.append(write(tmp_path, f"part{index}.xml", data))
    report = convert(paths, tmp_path / "out.csv")
    rows = read_csv(tmp_path / "out.csv")
    assert report.rows == 6 * 96 and report.gap_count == 0
    assert [r["interval_start_utc"] for r in rows] == sorted(r["interval_start_utc"] for r in rows)


def test_unknown_layout_is_refused(tmp_path) -> None:
    with pytest.raises(ValueError, match="unknown layout"):
        convert([], tmp_path / "x.csv", layout="xlsx")


def test_reading_without_value_is_kept_as_an_empty_cell(tmp_path) -> None:
    block = IntervalBlock(
        DateTimeInterval(0, 1800),
        [IntervalReading(0, 900, None), IntervalReading(900, 900, 5000)],
    )
    source = write(
        tmp_path, "in.xml", feed_bytes([usage_point("UP1", [("MR", ELECTRIC, [block])])])
    )
    convert([source], tmp_path / "out.csv")
    rows = read_csv(tmp_path / "out.csv")
    assert [(r["delivered"], r["net"]) for r in rows] == [("", ""), ("0.005", "0.005")]


def test_bytes_inputs_and_a_stream_output(tmp_path) -> None:
    import io

    first = _electric_feed(date(2024, 1, 1), 1)
    second = _electric_feed(date(2024, 1, 2), 1)
    out = io.BytesIO()
    report = convert([first, second], out, layout="scwadd")
    assert report.rows == 192
    assert [i.name for i in report.inputs] == ["<input 1>", "<input 2>"]
    assert hashlib.sha256(out.getvalue()).hexdigest() == report.output_sha256
    with pytest.raises(EspiParseError, match=r"^raw/7\.xml:"):
        convert([b"<feed"], io.BytesIO(), names=["raw/7.xml"])


def test_usage_point_without_readings_is_reported(tmp_path) -> None:
    electric = usage_point(
        "UP-E", [("MR1", ELECTRIC, local_day_blocks(date(2024, 1, 2), 1, PACIFIC))]
    )
    empty_gas = usage_point("UP-G", [("MR2", GAS, [])], kind=1)
    source = write(tmp_path, "in.xml", feed_bytes([electric, empty_gas]))
    report = convert([source], tmp_path / "out.csv")
    assert [(p.id, p.rows, p.service) for p in report.usage_points] == [
        ("UP-E", 96, "electricity"),
        ("UP-G", 0, "gas"),
    ]
    assert "usage point UP-G has no interval readings" in report.notes


def test_links_meet_whatever_their_host_or_escaping(tmp_path) -> None:
    atom, espi = "http://www.w3.org/2005/Atom", "http://naesb.org/espi"
    base = "https://api.pge.com/GreenButtonConnect/espi/1_1/resource/Subscription/S"
    reading_type = (
        "<flowDirection>1</flowDirection><powerOfTenMultiplier>-3</powerOfTenMultiplier>"
        "<uom>72</uom>"
    )
    blocks_up = "/GreenButtonConnect/espi/1_1/resource/Subscription/S/UsagePoint/UP/MeterReading"
    data = f"""<feed xmlns="{atom}">
<entry><link rel="self" href="{base}/UsagePoint/UP"/><content>
  <UsagePoint xmlns="{espi}"><ServiceCategory><kind>0</kind></ServiceCategory></UsagePoint>
</content></entry>
<entry><link rel="self" href="{base}/UsagePoint/UP/MeterReading/TVI%3D"/>
  <link rel="related" href="/ReadingType/7"/>
  <content><MeterReading xmlns="{espi}"/></content></entry>
<entry><link rel="self" href="http://other.example/ReadingType/7"/><content>
  <ReadingType xmlns="{espi}">{reading_type}</ReadingType>
</content></entry>
<entry><link rel="up" href="{blocks_up}/TVI=/IntervalBlock/"/>
  <content><IntervalBlock xmlns="{espi}"><IntervalReading><timePeriod><duration>900</duration>
  <start>0</start></timePeriod><value>1449000</value></IntervalReading></IntervalBlock></content></entry>
</feed>"""
    source = write(tmp_path, "links.xml", data.encode())
    report = convert([source], tmp_path / "out.csv")
    assert report.rows == 1
    assert read_csv(tmp_path / "out.csv")[0]["delivered"] == "1.449"


def test_non_energy_reading_type_is_counted_as_ignored_not_written(tmp_path) -> None:
    demand = ReadingType(flow_direction=1, uom=38, power_of_ten_multiplier=0, kind=8)  # W
    energy = local_day_blocks(date(2024, 3, 1), 1, PACIFIC)
    peaks = local_day_blocks(date(2024, 3, 1), 1, PACIFIC, interval=3600)
    point = usage_point("UP1", [("MR-E", ELECTRIC, energy), ("MR-W", demand, peaks)])
    source = write(tmp_path, "in.xml", feed_bytes([point]))
    report = convert([source], tmp_path / "out.csv")
    assert report.rows == 96
    assert report.ignored_readings == 24
    assert report.readings_read == 96 + 24
    assert any("MR-W" in note and "not interval energy" in note for note in report.notes)
    columns = {
        r.meter_reading.rsplit("/", 1)[-1]: r.column for r in report.usage_points[0].reading_types
    }
    assert columns == {"MR-E": "delivered", "MR-W": "ignored"}


def test_progress_is_told_every_byte_read(tmp_path) -> None:
    source = write(tmp_path, "in.xml", _electric_feed(date(2024, 1, 1), 40))
    seen: list[int] = []
    convert([source], tmp_path / "out.csv", progress=seen.append)
    assert sum(seen) == source.stat().st_size
    assert len(seen) > 1  # reported as it goes, not once at the end


def test_impossible_dst_rule_is_a_clear_error(tmp_path) -> None:
    from scwadd_espi.model import LocalTimeParameters

    broken = LocalTimeParameters(-28800, 3600, dst_start_rule=0x0E0E2000, dst_end_rule=0xB40E2000)
    blocks = local_day_blocks(date(2024, 1, 1), 1, PACIFIC)
    source = write(
        tmp_path,
        "in.xml",
        feed_bytes([usage_point("UP1", [("MR", ELECTRIC, blocks)], local_time=broken)]),
    )
    with pytest.raises(ConversionError, match=r"LocalTimeParameters of usage point UP1.*month 0"):
        convert([source], tmp_path / "out.csv")


@pytest.mark.parametrize(
    ("reading", "problem"),
    [
        (IntervalReading(10**13, 900, 1), "outside the years 1900-9999"),
        (IntervalReading(0, 0, 1), "duration is not a positive"),
        (IntervalReading(0, 900, 2**70), "beyond 64-bit integers"),
    ],
)
def test_readings_a_row_cannot_hold_are_refused(tmp_path, reading, problem) -> None:
    block = IntervalBlock(DateTimeInterval(0, 900), [reading])
    data = feed_bytes([usage_point("UP1", [("MR", ELECTRIC, [block])])], validate=False)
    with pytest.raises(EspiParseError, match=problem):
        convert([data], io.BytesIO())


def _daily_gas_blocks(first: date, days: int, missing: frozenset[int] = frozenset()) -> list:
    """PG&E's daily gas: one reading per local day, starting one second after local midnight,
    23 or 25 hours long on the days daylight saving time starts or ends."""
    from scwadd_espi.sample import local_days

    blocks = []
    for index, (start, end) in enumerate(local_days(first, days, PACIFIC)):
        if index in missing:
            continue
        reading = IntervalReading(start + 1, end - start, 1000 + index, None, ())
        blocks.append(IntervalBlock(DateTimeInterval(start + 1, end - start), [reading]))
    return blocks


def test_daily_gas_over_both_dst_days_has_no_false_gap(tmp_path) -> None:
    blocks = _daily_gas_blocks(date(2024, 1, 1), 366)
    durations = {b.interval.duration for b in blocks}
    assert durations == {82800, 86400, 90000}, "the year crosses both DST days"
    source = write(
        tmp_path,
        "gas.xml",
        feed_bytes([usage_point("UP1", [("MR", GAS, blocks)], kind=1)]),
    )
    report = convert([source], tmp_path / "out.csv")
    assert report.rows == 366
    assert report.gap_count == 0, report.usage_points[0].gaps


def test_daily_gas_gap_next_to_a_dst_day_is_still_reported(tmp_path) -> None:
    # 2024-03-10 is the spring DST day (index 69 from Jan 1); the day after it is missing.
    blocks = _daily_gas_blocks(date(2024, 1, 1), 120, missing=frozenset({70}))
    source = write(
        tmp_path, "gas.xml", feed_bytes([usage_point("UP1", [("MR", GAS, blocks)], kind=1)])
    )
    point = convert([source], tmp_path / "out.csv").usage_points[0]
    assert point.gap_count == 1 and point.gap_seconds == 86400
    assert point.gaps[0].start_utc == "2024-03-11T07:00:01Z"

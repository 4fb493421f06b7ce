"""The ESPI engine: parse speed against lxml and greenbutton-objects, memory converting big feeds.

All inputs are generated here, PG&E-shaped (the project's own writer, style "pge"): one usage
point of 2 years of 15-minute readings is 70,080 readings. Big feeds are several such usage
points in one feed, written to a temporary directory and deleted afterwards.
"""

from __future__ import annotations

import json
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

from lxml import etree
from scwadd_core.espi.localtime import local_time_parameters_for
from scwadd_core.espi.model import (
    DateTimeInterval,
    IntervalBlock,
    IntervalReading,
    ReadingType,
    UsagePoint,
)
from scwadd_core.espi.parser import iter_entries
from scwadd_core.espi.writer import MeterReadingData, UsagePointData, opaque_id, write_usage_feed

TITLE = "ESPI engine (parse and convert)"
PACIFIC = ZoneInfo("America/Los_Angeles")
DAYS = 730
READINGS_PER_POINT = DAYS * 96
RSS_POINTS = (1, 5, 10)  # usage points per feed: ~19 MB, ~95 MB, ~190 MB
REPEATS = 5
GBO_REPEATS = 2  # ~5 s a run

ELECTRIC = ReadingType(
    accumulation_behaviour=4,
    commodity=1,
    currency=840,
    flow_direction=1,
    interval_length=900,
    kind=12,
    power_of_ten_multiplier=-3,
    uom=72,
)


def _blocks(seed: int) -> Iterator[IntervalBlock]:
    first = date(2023, 1, 1)
    for offset in range(DAYS):
        day = first + timedelta(days=offset)
        start = int(datetime(day.year, day.month, day.day, 0, 0, tzinfo=UTC).timestamp())
        readings = [
            IntervalReading(
                start + 900 * i, 900, 80000 + (i * 7919 + offset * 31 + seed) % 1500000, None, (0,)
            )
            for i in range(96)
        ]
        yield IntervalBlock(DateTimeInterval(start, 86400), readings)


def generate(path: Path, usage_points: int) -> int:
    points = [
        UsagePointData(
            id=opaque_id(f"usage-point-{n}"),
            usage_point=UsagePoint(kind=0),
            meter_readings=[MeterReadingData(opaque_id(f"mr-{n}"), ELECTRIC, _blocks(n))],
            local_time=local_time_parameters_for(PACIFIC, 2024),
        )
        for n in range(usage_points)
    ]
    write_usage_feed(path, opaque_id("subscription"), points, style="pge")
    return path.stat().st_size


def _best_interleaved(
    functions: dict[str, tuple[Callable[[], int], int]],
) -> dict[str, tuple[float, int]]:
    """Best CPU time of each function over its number of runs, interleaved. CPU time, not wall
    time: on a shared machine the wall clock mostly measures the other tenants."""
    best = {name: (float("inf"), 0) for name in functions}
    for round_number in range(max(runs for _, runs in functions.values())):
        for name, (function, runs) in functions.items():
            if round_number >= runs:
                continue
            started = time.process_time()
            result = function()
            took = time.process_time() - started
            if took < best[name][0]:
                best[name] = (took, result)
    return best


def _ours(path: Path) -> int:
    count = 0
    for entry in iter_entries(path):
        readings = getattr(entry.obj, "readings", None)
        if readings is not None:
            count += len(readings)
    return count


def _lxml(path: Path) -> int:
    etree.parse(str(path))
    return 0


def _lxml_streaming(path: Path) -> int:
    """lxml's usual streaming: iterparse, freeing each entry, reading nothing."""
    # From an open file in 256 KiB chunks, as the engine reads.
    with open(path, "rb") as handle:
        for _event, element in etree.iterparse(
            handle, events=("end",), tag="{http://www.w3.org/2005/Atom}entry", chunk_size=1 << 18
        ):
            element.clear()
    return 0


def _greenbutton_objects(path: Path) -> int:
    from greenbutton_objects import parse

    usage_points = parse.parse_feed(str(path))
    return sum(1 for p in usage_points for m in p.meterReadings for _ in m.intervalReadings)


# VmHWM, not getrusage(): Linux carries the forking parent's peak into ru_maxrss across exec,
# so a child of this (large) process would report the parent's size. VmHWM is the new image's.
_RSS_CHILD = """
import json, re, sys, time
from scwadd_core.espi.convert import convert
started = time.process_time()
report = convert([sys.argv[1]], sys.argv[2])
seconds = time.process_time() - started
status = open("/proc/self/status").read()
print(json.dumps({
    "seconds": seconds,
    "rows": report.rows,
    "peak_rss_kib": int(re.search(r"VmHWM:\\s+(\\d+) kB", status).group(1)),
}))
"""


def _convert_in_child(source: Path, output: Path) -> dict[str, Any]:
    done = subprocess.run(
        [sys.executable, "-c", _RSS_CHILD, str(source), str(output)],
        capture_output=True,
        text=True,
        check=True,
    )
    result: dict[str, Any] = json.loads(done.stdout)
    return result


def run() -> str:
    lines: list[str] = []
    with tempfile.TemporaryDirectory(prefix="scwadd-bench-") as scratch:
        feed = Path(scratch) / "two-years.xml"
        size = generate(feed, 1)
        timed = _best_interleaved(
            {
                "ours": (lambda: _ours(feed), REPEATS),
                "lxml": (lambda: _lxml(feed), REPEATS),
                "iterparse": (lambda: _lxml_streaming(feed), REPEATS),
                "greenbutton-objects": (lambda: _greenbutton_objects(feed), GBO_REPEATS),
            }
        )
        ours_s, readings = timed["ours"]
        lxml_s, _ = timed["lxml"]
        floor_s, _ = timed["iterparse"]
        gbo_s, gbo_readings = timed["greenbutton-objects"]
        if readings != READINGS_PER_POINT or gbo_readings != READINGS_PER_POINT:
            raise AssertionError(f"read {readings} / {gbo_readings}, not {READINGS_PER_POINT}")
        lines += [
            f"Feed: one usage point, 2 years of 15-minute readings ({readings:,} readings), "
            f"PG&E-shaped, {size / 1e6:.1f} MB. CPU seconds (not wall time: the machine is "
            f"shared), best of {REPEATS} interleaved runs (greenbutton-objects: {GBO_REPEATS}).",
            "",
            "| parser | CPU seconds | readings per CPU second | vs `lxml.etree.parse` |",
            "|---|---:|---:|---:|",
            f"| scwadd `iter_entries` (streaming, typed records) | {ours_s:.3f} | "
            f"{readings / ours_s:,.0f} | {ours_s / lxml_s:.2f}x the time |",
            f"| `lxml.etree.parse` (tree only, no values read) | {lxml_s:.3f} | "
            f"{readings / lxml_s:,.0f} | 1.00x |",
            "| `lxml.etree.iterparse`, entries cleared, no values read (the usual way to stream) "
            f"| {floor_s:.3f} | {readings / floor_s:,.0f} | {floor_s / lxml_s:.2f}x the time |",
            f"| greenbutton-objects `parse_feed` | {gbo_s:.3f} | {readings / gbo_s:,.0f} | "
            f"{gbo_s / lxml_s:.2f}x the time |",
            "",
            f"- Against lxml's own parse of the same file: **{ours_s / lxml_s:.2f}x** its time "
            "(target: within 2x).",
            "- The engine streams plain feeds entry by entry through lxml's whole-document "
            "parser (the split reader) rather than `iterparse`, which alone costs "
            f"{floor_s / lxml_s:.2f}x here before reading any value.",
            f"- Against greenbutton-objects: **{gbo_s / ours_s:.1f}x faster** "
            "(target: at least 10x).",
            "",
            "Peak memory (maximum resident set size of a fresh process) converting a feed to the "
            "default CSV layout, readings spooled to disk:",
            "",
            "| feed | readings | convert CPU seconds | readings per CPU second | peak RSS |",
            "|---|---:|---:|---:|---:|",
        ]
        for points in RSS_POINTS:
            big = Path(scratch) / f"feed-{points}.xml"
            big_size = generate(big, points)
            result = _convert_in_child(big, Path(scratch) / "out.csv")
            if result["rows"] != points * READINGS_PER_POINT:
                raise AssertionError(f"{result['rows']} rows from {points} usage points")
            lines.append(
                f"| {big_size / 1e6:.0f} MB, {points} usage point(s) | {result['rows']:,} | "
                f"{result['seconds']:.1f} | {result['rows'] / result['seconds']:,.0f} | "
                f"{result['peak_rss_kib'] / 1024:.0f} MB |"
            )
            big.unlink()
            (Path(scratch) / "out.csv").unlink()
        lines += [
            "",
            "Target: under 80 MB and flat as the file grows.",
        ]
    return "\n".join(lines)

"""The ESPI engine: parse speed against lxml and greenbutton-objects, memory converting big feeds.

All inputs are generated here, PG&E-shaped (the project's own writer, style "pge", and the
sample module's ReadingType and local-day blocks): one usage point of 2 years of 15-minute
readings is 70,080 readings. Big feeds are several such usage points in one feed, written to a
temporary directory and deleted afterwards.

Every parser compared does the same work: it reads every IntervalReading's start, duration,
value and quality codes, and the bench checks that they all read the same ones. Speed is CPU
time over several rounds (each round runs every parser once); the document gets the medians.
"""

from __future__ import annotations

import json
import math
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import date
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

from lxml import etree
from scwadd_espi.localtime import local_time_parameters_for
from scwadd_espi.model import ATOM_NS, ESPI_NS, IntervalBlock, UsagePoint
from scwadd_espi.parser import iter_entries
from scwadd_espi.sample import ELECTRIC, local_day_blocks
from scwadd_espi.writer import MeterReadingData, UsagePointData, opaque_id, write_usage_feed

TITLE = "ESPI engine (parse and convert)"
PACIFIC = ZoneInfo("America/Los_Angeles")
DAYS = 730
READINGS_PER_POINT = DAYS * 96
RSS_POINTS = (1, 6, 12)  # usage points per feed: ~17 MB, ~104 MB, ~209 MB (the issue: ~200 MB)
ROUNDS = 7  # greenbutton-objects takes ~3-4 s a run, the others well under 1 s


def _blocks(seed: int) -> Iterator[IntervalBlock]:
    """Local Pacific days from 2023-01-01, as PG&E sends them; the DST days (two of 23 hours,
    two of 25) leave 96 readings a day on average."""
    return local_day_blocks(
        date(2023, 1, 1),
        DAYS,
        PACIFIC,
        value=lambda start: 80000 + (start // 900 * 7919 + seed) % 1500000,
        quality=(0,),
    )


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


def _rounds(
    functions: dict[str, Callable[[], Tally]], rounds: int
) -> tuple[list[dict[str, float]], dict[str, Tally]]:
    """CPU seconds of each function in each round; one round runs every function once, back to
    back, so a ratio taken within a round compares runs made under the same load from the other
    tenants. CPU time, not wall time: on a shared machine the wall clock mostly measures them."""
    results: list[dict[str, float]] = []
    tallies: dict[str, Tally] = {}
    for _ in range(rounds):
        times: dict[str, float] = {}
        for name, function in functions.items():
            started = time.process_time()
            tallies[name] = function()
            times[name] = time.process_time() - started
        results.append(times)
    return results, tallies


def _median(results: list[dict[str, float]], name: str) -> float:
    return statistics.median(times[name] for times in results)


def _median_ratio(results: list[dict[str, float]], numerator: str, denominator: str) -> float:
    return statistics.median(times[numerator] / times[denominator] for times in results)


def _spread(results: list[dict[str, float]], name: str) -> str:
    runs = [times[name] for times in results]
    return f"{min(runs):.3f}-{max(runs):.3f}"


@dataclass
class Tally:
    """What every parser under test hands back: how many readings it read and the sums of their
    start, duration, value and number of quality codes. Each parser's function reads every
    reading's fields one reading at a time in the same kind of Python loop."""

    readings: int = 0
    starts: int = 0
    durations: int = 0
    values: float = 0  # greenbutton-objects hands back scaled floats
    qualities: int = 0


def _ours(path: Path) -> Tally:
    count = starts = durations = values = qualities = 0
    for entry in iter_entries(path):
        if isinstance(entry.obj, IntervalBlock):
            for reading in entry.obj.readings:
                count += 1
                starts += reading.start
                durations += reading.duration
                values += reading.value or 0
                qualities += len(reading.qualities)
    return Tally(count, starts, durations, values, qualities)


def _lxml_query(steps: str) -> etree.XPath:
    return etree.XPath(
        f"/a:feed/a:entry/a:content/e:IntervalBlock/e:IntervalReading/{steps}/text()",
        namespaces={"a": ATOM_NS, "e": ESPI_NS},
        smart_strings=False,
    )


_LXML_START = _lxml_query("e:timePeriod/e:start")
_LXML_DURATION = _lxml_query("e:timePeriod/e:duration")
_LXML_VALUE = _lxml_query("e:value")
_LXML_QUALITY = _lxml_query("e:ReadingQuality/e:quality")


def _lxml_values(path: Path) -> Tally:
    """lxml's parse, then every reading's values the fastest way lxml offers: compiled XPath
    queries evaluated in C over the whole tree, one list per field (which only lines up with
    the readings because this generated feed gives every reading each field once)."""
    tree = etree.parse(str(path))
    count = starts = durations = values = qualities = 0
    columns = zip(
        map(int, _LXML_START(tree)),
        map(int, _LXML_DURATION(tree)),
        map(int, _LXML_VALUE(tree)),
        _LXML_QUALITY(tree),
        strict=True,
    )
    for start, duration, value, quality in columns:
        count += 1
        starts += start
        durations += duration
        values += value
        qualities += 1 if quality else 0
    return Tally(count, starts, durations, values, qualities)


def _lxml_parse_only(path: Path) -> Tally:
    etree.parse(str(path))
    return Tally()


def _greenbutton_objects(path: Path) -> Tally:
    from greenbutton_objects import parse

    count = starts = durations = qualities = 0
    values = 0.0
    for point in parse.parse_feed(str(path)):
        for meter_reading in point.meterReadings:
            for reading in meter_reading.intervalReadings:
                count += 1
                starts += int(reading.timePeriod.start.timestamp())
                durations += int(reading.timePeriod.duration.total_seconds())
                values += reading.value
                qualities += len(reading.readingQualities)
    return Tally(count, starts, durations, values, qualities)


def _check_same_readings(ours: Tally, other: Tally, name: str, scale: int = 0) -> None:
    """Every parser must have read the same readings: counts and sums must agree."""
    same = (
        other.readings == ours.readings == READINGS_PER_POINT
        and other.starts == ours.starts
        and other.durations == ours.durations
        and other.qualities == ours.qualities
        and math.isclose(other.values, ours.values * 10**scale, rel_tol=1e-9)
    )
    if not same:
        raise AssertionError(f"{name} read {other}, scwadd read {ours}")


# VmHWM, not getrusage(): Linux carries the forking parent's peak into ru_maxrss across exec,
# so a child of this (large) process would report the parent's size. VmHWM is the new image's.
_RSS_CHILD = """
import json, re, sys, time
from scwadd_espi.convert import convert
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
        results, tallies = _rounds(
            {
                "ours": lambda: _ours(feed),
                "lxml": lambda: _lxml_values(feed),
                "parse": lambda: _lxml_parse_only(feed),
                "gbo": lambda: _greenbutton_objects(feed),
            },
            ROUNDS,
        )
        ours = tallies["ours"]
        _check_same_readings(ours, tallies["lxml"], "lxml")
        # greenbutton-objects applies powerOfTenMultiplier (-3) to the value itself.
        _check_same_readings(ours, tallies["gbo"], "greenbutton-objects", scale=-3)
        readings = ours.readings
        versus_lxml = _median_ratio(results, "ours", "lxml")
        versus_parse = _median_ratio(results, "ours", "parse")
        gbo_factor = _median_ratio(results, "gbo", "ours")

        def row(label: str, name: str, ratio: str) -> str:
            seconds = _median(results, name)
            return (
                f"| {label} | {seconds:.3f} | {_spread(results, name)} | "
                f"{readings / seconds:,.0f} | {ratio} |"
            )

        def verdict(met: bool) -> str:
            return "met" if met else "**missed**"

        lines += [
            f"Feed: one usage point, 2 years of 15-minute readings ({readings:,} readings), "
            f"PG&E-shaped, {size / 1e6:.1f} MB, generated by the bench and read from a file.",
            "",
            "How it is measured: each parser is a function that reads the file and hands every "
            "IntervalReading's start, duration, value and quality codes, one reading at a time, "
            "to the same kind of Python loop that counts and sums them; the bench fails unless "
            "all of them tallied the same readings, so none can do less work. The functions run "
            f"in {ROUNDS} rounds in one process, each round running every one of them once, back "
            "to back. Each run's CPU time (`time.process_time()`, not wall time: the machine is "
            "shared) is recorded. Times below are the median over the rounds (with the fastest "
            "and slowest run); ratios are the median of the ratios taken within each round, so "
            "both sides of a ratio ran under the same load.",
            "",
            "| parser | CPU seconds (median) | fastest-slowest | readings per CPU second "
            "| scwadd's time against it (median ratio) |",
            "|---|---:|---:|---:|---:|",
            row(
                "scwadd `iter_entries` (streaming, typed records, memory flat)",
                "ours",
                "1",
            ),
            row(
                "lxml: `etree.parse`, then compiled XPath text queries over the whole tree, "
                "`int()` of each",
                "lxml",
                f"{versus_lxml:.2f}x its time",
            ),
            row(
                "greenbutton-objects `parse_feed`",
                "gbo",
                f"{gbo_factor:.1f}x faster",
            ),
            row(
                "*for scale:* `etree.parse` alone, no value read (not the same work)",
                "parse",
                f"{versus_parse:.2f}x its time",
            ),
            "",
            f"- Against lxml's own `etree.parse` of the same file, which reads no value at all: "
            f"**{versus_parse:.2f}x** its time (target: within 2x: "
            f"{verdict(versus_parse <= 2)}). Against lxml doing the same work (parse, then read "
            f"every reading): {versus_lxml:.2f}x its time.",
            f"- Against greenbutton-objects: **{gbo_factor:.1f}x faster** "
            f"(target: at least 10x: {verdict(gbo_factor >= 10)}).",
            "- The lxml row holds the whole 17 MB tree in memory and relies on every reading "
            "having each field once. The engine streams one entry at a time: lxml parses each "
            "entry except its run of IntervalReadings, which one compiled pattern reads from "
            "the bytes when every byte of the run belongs to a reading in the plain shape "
            "(any other shape is read element by element from lxml's tree).",
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

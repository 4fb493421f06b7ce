"""`scwadd convert` as a user runs it: a real process, real files, real exit codes."""

import json
import subprocess
import sys
from datetime import date

from espi_support import ELECTRIC, PACIFIC, feed_bytes, local_day_blocks, pacific_time, usage_point

BILLION_LAUGHS = (
    b'<?xml version="1.0"?>\n<!DOCTYPE lolz [<!ENTITY lol "lol">'
    b'<!ENTITY lol2 "&lol;&lol;&lol;&lol;">]>\n<lolz>&lol2;</lolz>\n'
)


def scwadd(*args: str, stdin: bytes | None = None) -> subprocess.CompletedProcess[bytes]:
    return subprocess.run(
        [sys.executable, "-m", "scwadd_core.cli", "convert", *args],
        input=stdin,
        capture_output=True,
        timeout=120,
        check=False,
    )


def _feed(first: date, days: int) -> bytes:
    blocks = local_day_blocks(first, days, PACIFIC)
    return feed_bytes(
        [usage_point("UP1", [("MR1", ELECTRIC, blocks)], local_time=pacific_time(first.year))]
    )


def test_files_merge_into_one_csv_with_a_report(tmp_path) -> None:
    (tmp_path / "a.xml").write_bytes(_feed(date(2024, 1, 1), 2))
    (tmp_path / "b.xml").write_bytes(_feed(date(2024, 1, 2), 2))
    result = scwadd(
        str(tmp_path / "a.xml"),
        str(tmp_path / "b.xml"),
        "-o",
        str(tmp_path / "out.csv"),
        "--report",
        str(tmp_path / "report.json"),
    )
    assert result.returncode == 0, result.stderr
    lines = (tmp_path / "out.csv").read_text().splitlines()
    assert lines[0].startswith("usage_point_id,service,interval_start_local")
    assert len(lines) == 1 + 3 * 96
    report = json.loads((tmp_path / "report.json").read_text())
    assert report["duplicates"] == 96 and report["rows"] == 288
    assert b"288 rows for 1 usage point(s)" in result.stderr


def test_stdin_to_stdout_in_the_pge_layout() -> None:
    result = scwadd("-", "--layout", "pge", stdin=_feed(date(2024, 6, 1), 1))
    assert result.returncode == 0, result.stderr
    text = result.stdout.decode("utf-8-sig")
    assert "TYPE,DATE,START TIME,END TIME,USAGE (kWh),COST,NOTES" in text
    assert text.count("Electric usage,2024-06-01,") == 96


def test_bad_input_exits_1_naming_file_line_and_column(tmp_path) -> None:
    (tmp_path / "lol.xml").write_bytes(BILLION_LAUGHS)
    result = scwadd(str(tmp_path / "lol.xml"), "-o", str(tmp_path / "out.csv"))
    assert result.returncode == 1
    assert f"{tmp_path / 'lol.xml'}:2:1: a DOCTYPE declaration is not allowed".encode() in (
        result.stderr
    )
    assert not (tmp_path / "out.csv").exists()


def test_bad_stdin_is_named_stdin() -> None:
    result = scwadd("-", stdin=b"<feed xmlns='http://www.w3.org/2005/Atom'>\n<entry>\n")
    assert result.returncode == 1
    assert b"<stdin>:3:" in result.stderr and b"malformed XML" in result.stderr


def test_missing_file_is_bad_input(tmp_path) -> None:
    result = scwadd(str(tmp_path / "absent.xml"))
    assert result.returncode == 1
    assert b"absent.xml: cannot read" in result.stderr


def test_usage_errors_exit_2() -> None:
    assert scwadd().returncode == 2
    assert scwadd("x.xml", "--layout", "xlsx").returncode == 2
    bad_zone = scwadd("x.xml", "--tz", "Atlantis/Lost")
    assert bad_zone.returncode == 2
    assert b"unknown time zone" in bad_zone.stderr
    assert scwadd("-", "-").returncode == 2


def test_sample_is_generated_schema_valid_and_converted(tmp_path) -> None:
    from espi_support import assert_schema_valid

    result = scwadd("--sample", str(tmp_path / "sample.xml"), "-o", str(tmp_path / "s.csv"))
    assert result.returncode == 0, result.stderr
    assert_schema_valid((tmp_path / "sample.xml").read_bytes())
    lines = (tmp_path / "s.csv").read_text().splitlines()
    # A week from 2024-10-30 crosses the fall-back day: 7 x 96 + 4 electric, 7 x 24 + 1 gas rows.
    assert len(lines) == 1 + (7 * 96 + 4) + (7 * 24 + 1)
    assert any(",gas," in line and "therms" in line for line in lines)


def test_unwritable_output_is_reported_without_a_traceback(tmp_path) -> None:
    (tmp_path / "a.xml").write_bytes(_feed(date(2024, 1, 1), 1))
    result = scwadd(str(tmp_path / "a.xml"), "-o", str(tmp_path / "missing-dir" / "out.csv"))
    assert result.returncode == 1
    assert b"Traceback" not in result.stderr
    assert b"missing-dir" in result.stderr


def test_unusable_local_time_parameters_point_to_tz(tmp_path) -> None:
    from pathlib import Path

    case = Path(__file__).parent / "data" / "short-dst-rule.xml"
    out = tmp_path / "out.csv"
    refused = scwadd(str(case), "-o", str(out))
    assert refused.returncode != 0
    assert b"--tz" in refused.stderr and b"short-dst-rule.xml:12:" in refused.stderr
    assert not out.exists()
    report = tmp_path / "report.json"
    done = scwadd(str(case), "--tz", "America/Los_Angeles", "-o", str(out), "--report", str(report))
    assert done.returncode == 0, done.stderr
    assert out.read_text(encoding="utf-8").count("\n") == 5
    assert any("--tz" in note for note in json.loads(report.read_text())["notes"])
    assert b"note: the LocalTimeParameters of usage point UP0001 cannot be used" in done.stderr

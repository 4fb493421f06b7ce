"""`scwadd convert`: Green Button (ESPI) XML to CSV.

    scwadd convert INPUT... [-o OUT] [--layout default|pge|scwadd] [--tz ZONE] [--report FILE]
    scwadd convert --sample sample.xml -o sample.csv     # a generated sample, no account needed

Several inputs merge into one CSV; ``-`` reads standard input (as an input) or writes standard
output (as ``-o``, the default). A file output appears only once complete. Exit status: 0 done,
2 usage error, 1 bad input (the message on stderr names the file, line, column and what was
expected).
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
import tempfile
from contextlib import ExitStack, suppress
from pathlib import Path
from typing import IO, Any

from scwadd_espi.convert import LAYOUTS, ConversionError, ConversionReport, convert
from scwadd_espi.localtime import iana_zone
from scwadd_espi.parser import EspiParseError

EXIT_OK, EXIT_BAD_INPUT, EXIT_USAGE = 0, 1, 2


def register(subparsers: Any) -> None:
    parser: argparse.ArgumentParser = subparsers.add_parser(
        "convert",
        help="convert Green Button (ESPI) XML files to one CSV",
        description="Convert Green Button (ESPI) XML documents to one CSV. Several inputs merge; "
        "readings repeated across them are written once (the most recently updated wins).",
    )
    parser.add_argument("inputs", nargs="*", metavar="INPUT", help="ESPI XML file, or - for stdin")
    parser.add_argument(
        "--sample",
        metavar="FILE",
        help="write a generated PG&E-shaped sample feed (a week of electricity with solar "
        "export and gas, across a DST change) to FILE and convert it",
    )
    parser.add_argument(
        "-o", "--output", default="-", metavar="OUT", help="CSV file to write (default: stdout)"
    )
    parser.add_argument(
        "--layout",
        choices=LAYOUTS,
        default="default",
        help="default: one row per interval per usage point; pge: PG&E's Download My Data "
        "layout; scwadd: the original tool's four columns (see docs/csv.md)",
    )
    parser.add_argument(
        "--tz",
        metavar="ZONE",
        help="IANA zone for local times (default: the document's LocalTimeParameters)",
    )
    parser.add_argument(
        "--report", metavar="FILE", help="also write the conversion report as JSON to FILE"
    )
    parser.add_argument(
        "--no-progress", action="store_true", help="no progress bar even on a terminal"
    )
    parser.set_defaults(handler=run)


def _usage_error(message: str) -> int:
    print(f"scwadd convert: error: {message}", file=sys.stderr)
    return EXIT_USAGE


def run(args: argparse.Namespace) -> int:
    if args.sample:
        from scwadd_espi.sample import write_sample_feed

        write_sample_feed(args.sample)
        args.inputs = [*args.inputs, args.sample]
    if not args.inputs:
        return _usage_error("give at least one INPUT (or --sample FILE)")
    if args.tz:
        try:
            iana_zone(args.tz)
        except ValueError as error:
            return _usage_error(str(error))
    if args.inputs.count("-") > 1:
        return _usage_error("standard input (-) can be read only once")
    with ExitStack() as stack:
        inputs: list[str] = []
        names: list[str] = []
        for given in args.inputs:
            if given == "-":
                # Spooled to disk so an error can point at a column and the bar has a total.
                spooled = stack.enter_context(tempfile.NamedTemporaryFile(suffix=".xml"))
                shutil.copyfileobj(sys.stdin.buffer, spooled)
                spooled.flush()
                inputs.append(spooled.name)
                names.append("<stdin>")
            else:
                inputs.append(given)
                names.append(given)
        progress = _progress_bar(stack, inputs, disabled=args.no_progress)
        out: str | IO[bytes] = sys.stdout.buffer if args.output == "-" else args.output
        try:
            report = convert(
                inputs, out, layout=args.layout, tz=args.tz, names=names, progress=progress
            )
        except (EspiParseError, ConversionError) as error:
            print(f"scwadd convert: error: {error}", file=sys.stderr)
            return EXIT_BAD_INPUT
        except OSError as error:  # the output cannot be written: say where, no traceback
            print(
                f"scwadd convert: error: {error.filename or args.output}: {error.strerror}",
                file=sys.stderr,
            )
            return EXIT_BAD_INPUT
        if out is sys.stdout.buffer:
            sys.stdout.flush()
    if args.report:
        Path(args.report).write_text(json.dumps(report.to_dict(), indent=2) + "\n")
    print(_summary(report, args.output), file=sys.stderr)
    for note in report.notes:  # what was read leniently or left out, and why
        print(f"scwadd convert: note: {note}", file=sys.stderr)
    return EXIT_OK


def _progress_bar(stack: ExitStack, inputs: list[str], *, disabled: bool) -> Any:
    if disabled or not sys.stderr.isatty():
        return None
    from tqdm import tqdm

    total = 0
    for name in inputs:
        with suppress(OSError):  # convert() reports an unreadable file by name
            total += Path(name).stat().st_size
    bar = stack.enter_context(
        tqdm(total=total, unit="B", unit_scale=True, desc="reading", file=sys.stderr, leave=False)
    )
    return bar.update


def _summary(report: ConversionReport, output: str) -> str:
    target = "stdout" if output == "-" else output
    parts = [
        f"{report.rows} rows for {len(report.usage_points)} usage point(s) written to {target}",
        f"{report.readings_read} readings read from {len(report.inputs)} input(s)",
    ]
    if report.duplicates:
        parts.append(f"{report.duplicates} repeated readings written once")
    if report.conflicts:
        parts.append(f"{report.conflicts} conflicting repeats (most recently updated kept)")
    if report.gap_count:
        parts.append(f"{report.gap_count} gap(s) in the data")
    if report.ignored_readings:
        parts.append(f"{report.ignored_readings} non-energy readings not written (see report)")
    return "scwadd convert: " + "; ".join(parts)

"""Run every benchmark module and write docs/benchmarks.md from their sections.

Each module in BENCHMARKS has ``TITLE`` and ``run() -> str`` (a Markdown section body). A module
that fails leaves its failure in the document instead of stopping the others.
"""

from __future__ import annotations

import importlib
import platform
import sys
import time
import traceback
from datetime import UTC, datetime

from bench.sections import OUTPUT

BENCHMARKS = ["bench.espi", "bench.pipeline", "bench.recovery", "bench.console"]


def main() -> int:
    sections = []
    failed = False
    for name in BENCHMARKS:
        module = importlib.import_module(name)
        print(f"bench: {name} ...", file=sys.stderr, flush=True)
        started = time.perf_counter()
        try:
            body = module.run()
        except Exception:
            failed = True
            body = "The benchmark failed:\n\n```\n" + traceback.format_exc() + "```\n"
        took = time.perf_counter() - started
        print(f"bench: {name} done in {took:.0f} s", file=sys.stderr, flush=True)
        sections.append(f"## {module.TITLE}\n\n{body.strip()}\n")
    header = (
        "# Benchmarks\n\n"
        "Written by `make bench` (`python -m bench`); figures from the machine it last ran on:\n"
        f"{platform.machine()}, {_cpus()} CPUs, Python {platform.python_version()}, "
        f"{datetime.now(UTC):%Y-%m-%d %H:%M} UTC.\n"
        "Absolute times on a shared 2-core machine vary between runs (up to 2x when other work\n"
        "competes for the CPUs); ratios measured in one run, interleaved, are steadier.\n"
    )
    OUTPUT.write_text(header + "\n" + "\n".join(sections))
    print(f"bench: wrote {OUTPUT}", file=sys.stderr)
    return 1 if failed else 0


def _cpus() -> str:
    import os

    return str(os.cpu_count() or "?")


if __name__ == "__main__":
    sys.exit(main())

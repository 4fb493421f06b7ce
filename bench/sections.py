"""docs/benchmarks.md, one ``## TITLE`` section per benchmark: what every benchmark module shares
to describe the machine and to rewrite its own section when it runs alone."""

from __future__ import annotations

import os
import platform
import sys
from collections.abc import Callable
from pathlib import Path

OUTPUT = Path(__file__).resolve().parent.parent / "docs" / "benchmarks.md"


def machine() -> str:
    """``x86_64, 2 CPUs (nproc), 23.5 GiB memory, Python 3.11.7``: the CPUs this process may
    use, the memory installed (``/proc/meminfo``; ``?`` where unreadable)."""
    cpus = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    memory = "?"
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal:"):
                memory = f"{int(line.split()[1]) / 1024 / 1024:.1f} GiB"
    except OSError:
        pass
    return (
        f"{platform.machine()}, {cpus} CPUs (nproc), {memory} memory, "
        f"Python {platform.python_version()}"
    )


def replace_section(document: str, title: str, body: str) -> str:
    """``document`` with the section headed ``## {title}`` (from its heading to the next
    ``## ``) set to ``body``; appended when absent, every other section left as it is."""
    heading = f"## {title}\n"
    section = f"{heading}\n{body.strip()}\n"
    start = document.find(heading)
    if start < 0:
        return document.rstrip("\n") + "\n\n" + section
    end = document.find("\n## ", start + len(heading))
    rest = "" if end < 0 else document[end:]
    return document[:start] + section + rest


def run_alone(name: str, title: str, run: Callable[[], str]) -> int:
    """``python -m bench.<name>``: run one benchmark and replace only its section of
    :data:`OUTPUT` (``make bench`` runs them all and rewrites the whole document)."""
    print(f"bench: {name} alone ...", file=sys.stderr, flush=True)
    body = run()
    existing = OUTPUT.read_text() if OUTPUT.exists() else "# Benchmarks\n"
    OUTPUT.write_text(replace_section(existing, title, body))
    print(f"bench: wrote its section of {OUTPUT}", file=sys.stderr)
    return 0

"""The one `scwadd` command.

Subcommands are contributed by installed packages through the ``scwadd.commands`` entry-point
group: each entry point names a ``register(subparsers)`` function. That keeps the core free of
service imports, and an image that installs only one service gets only that service's commands.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable, Sequence
from importlib.metadata import entry_points
from typing import Any

Handler = Callable[[argparse.Namespace], int]


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="scwadd",
        description="SCWADD: Green Button Connect (ESPI) data, with the customer's consent.",
    )
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for entry in sorted(entry_points(group="scwadd.commands"), key=lambda e: e.name):
        register: Callable[[Any], None] = entry.load()
        register(subparsers)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    handler: Handler = args.handler
    return handler(args)


if __name__ == "__main__":
    sys.exit(main())

"""The one `scwadd` command.

Subcommands are contributed by installed packages through the ``scwadd.commands`` entry-point
group: each entry point names a ``register(subparsers)`` function and is named after the
subcommand it registers. That keeps the core free of service imports, and an image that installs
only one service gets only that service's commands.

Loading an entry point imports its package, and some are heavy (the dev stack pulls in every
service, the bus pulls in nats, pydantic, httpx, cryptography). So when the command line names a
subcommand, only that entry point is loaded; ``scwadd --help``, a bare ``scwadd`` or an unknown
subcommand load them all, so the help and the error list every command.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable, Sequence
from importlib.metadata import EntryPoint, entry_points
from typing import Any

Handler = Callable[[argparse.Namespace], int]


def _requested(argv: Sequence[str], names: set[str]) -> str | None:
    """The subcommand named on the command line, if it is one of ``names``. The top-level parser
    takes no option but ``-h``/``--help``, so the first argument is the subcommand or help."""
    if argv and argv[0] in names:
        return argv[0]
    return None


def build_parser(argv: Sequence[str] | None = None) -> argparse.ArgumentParser:
    """The ``scwadd`` parser. With ``argv``, only the entry point of the subcommand it names is
    loaded (all of them when it names none of them); without, all are."""
    parser = argparse.ArgumentParser(
        prog="scwadd",
        description="SCWADD: Green Button Connect (ESPI) data, with the customer's consent.",
    )
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    entries: list[EntryPoint] = sorted(entry_points(group="scwadd.commands"), key=lambda e: e.name)
    wanted = None if argv is None else _requested(argv, {e.name for e in entries})
    for entry in entries:
        if wanted is None or entry.name == wanted:
            register: Callable[[Any], None] = entry.load()
            register(subparsers)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    arguments = sys.argv[1:] if argv is None else list(argv)
    parser = build_parser(arguments)
    args = parser.parse_args(arguments)
    handler: Handler = args.handler
    return handler(args)


if __name__ == "__main__":
    sys.exit(main())

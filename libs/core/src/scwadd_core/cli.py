"""The one `scwadd` command.

Subcommands are contributed by installed packages through the ``scwadd.commands`` entry-point
group: each entry point names a ``register(subparsers)`` function and is named after the
subcommand it registers. That keeps the core free of service imports, and an image that installs
only one service gets only that service's commands.

Loading an entry point imports its package, and some are heavy (the dev stack pulls in every
service, the bus pulls in nats, pydantic, httpx, cryptography). So when the command line names a
subcommand, only that entry point is loaded; ``scwadd --help``, a bare ``scwadd`` or an unknown
subcommand load them all, so the help and the error list every command.

Finding the named entry point reads the installed distributions' ``entry_points.txt`` directly
(the PyPA entry points file format); importing ``importlib.metadata`` alone (email, zipfile, ...)
costs more than a short ``scwadd convert``. Anything unusual falls back to ``importlib.metadata``.
"""

from __future__ import annotations

import argparse
import importlib
import os
import sys
from collections.abc import Callable, Iterator, Sequence
from typing import Any

Handler = Callable[[argparse.Namespace], int]
GROUP = "scwadd.commands"


def _entry_point_lines(directory: str) -> Iterator[tuple[str, str]]:
    """(name, value) of every ``scwadd.commands`` entry in the ``*.dist-info/entry_points.txt``
    files of one ``sys.path`` directory."""
    try:
        names = sorted(os.listdir(directory))
    except OSError:
        return
    for name in names:
        if not name.endswith(".dist-info"):
            continue
        try:
            with open(os.path.join(directory, name, "entry_points.txt"), encoding="utf-8") as f:
                text = f.read()
        except OSError:
            continue
        section = None
        for line in text.splitlines():
            line = line.strip()
            if not line or line[0] in "#;":
                continue
            if line.startswith("[") and line.endswith("]"):
                section = line[1:-1].strip()
            elif section == GROUP and "=" in line:
                key, _, value = line.partition("=")
                yield key.strip(), value.strip()


def _quick_register(command: str) -> Callable[[Any], None] | None:
    """The ``register`` function of the entry point named ``command``, found without
    ``importlib.metadata``; None unless exactly one plain ``module:function`` entry has that
    name."""
    found = [
        value
        for directory in sys.path
        if directory and os.path.isdir(directory)
        for name, value in _entry_point_lines(directory)
        if name == command
    ]
    if len(set(found)) != 1 or "[" in found[0] or found[0].count(":") != 1:
        return None
    module_name, _, attribute = found[0].partition(":")
    target: Any = importlib.import_module(module_name.strip())
    for part in attribute.strip().split("."):
        target = getattr(target, part)
    register: Callable[[Any], None] = target
    return register


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
    if argv and not argv[0].startswith("-"):
        quick = _quick_register(argv[0])
        if quick is not None:
            quick(subparsers)
            return parser
    from importlib.metadata import entry_points

    entries = sorted(entry_points(group=GROUP), key=lambda e: e.name)
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

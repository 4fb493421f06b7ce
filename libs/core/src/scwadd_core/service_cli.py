"""The ``scwadd <service> [serve|migrate]`` command every service with a database registers.

A service's ``cli.register`` names its command and says where its settings class, ``main`` and
``migrate`` are; they are imported only when the command runs, so ``scwadd --help`` and the other
subcommands do not load every service.
"""

from __future__ import annotations

import argparse
from collections.abc import Callable, Coroutine
from dataclasses import dataclass
from functools import partial
from typing import TYPE_CHECKING, Any, Generic, TypeVar

if TYPE_CHECKING:
    from scwadd_core.settings import ServiceSettings

SettingsT = TypeVar("SettingsT", bound="ServiceSettings")


@dataclass(frozen=True)
class ServiceParts(Generic[SettingsT]):
    """What ``serve`` and ``migrate`` run: ``serve``'s result is the process exit code."""

    settings: type[SettingsT]
    serve: Callable[[SettingsT], Coroutine[Any, Any, int]]
    migrate: Callable[[SettingsT], None]


def register_service_command(
    subparsers: Any,
    name: str,
    *,
    help: str,
    description: str,
    parts: Callable[[], ServiceParts[Any]],
) -> argparse.ArgumentParser:
    """Add ``scwadd NAME [serve|migrate]``; ``parts`` imports the service when it runs."""
    parser: argparse.ArgumentParser = subparsers.add_parser(
        name, help=help, description=description
    )
    parser.add_argument(
        "action",
        nargs="?",
        choices=["serve", "migrate"],
        default="serve",
        help="serve (default), or migrate: apply the database migrations and exit",
    )
    parser.set_defaults(handler=partial(run_service_command, parts))
    return parser


def run_service_command(parts: Callable[[], ServiceParts[Any]], args: argparse.Namespace) -> int:
    from scwadd_core.web import run_async

    service = parts()
    settings = start_settings(service.settings)
    if args.action == "migrate":
        service.migrate(settings)
        return 0
    return run_async(service.serve(settings))


def start_settings(cls: type[SettingsT]) -> SettingsT:
    """The service's settings from the environment (a bad one exits 2 naming the variable),
    then logging at its ``LOG_LEVEL``: how every service process begins."""
    from scwadd_core.logs import configure_logging
    from scwadd_core.settings import load_settings

    settings = load_settings(cls)
    configure_logging(settings.LOG_LEVEL)
    return settings

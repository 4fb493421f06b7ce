"""The `scwadd exporter` subcommand: run the service, or only its database migrations."""

from __future__ import annotations

import argparse
from typing import Any


def register(subparsers: Any) -> None:
    parser = subparsers.add_parser(
        "exporter",
        help="run the exporter service (CSV + manifest, then revocation)",
        description=(
            "Consumes grant.received, fetch.completed and fetch.failed; writes the CSV and its "
            "manifest to the scwadd-exports bucket and revokes every grant. Configured only by "
            "environment variables (see docs/architecture.md)."
        ),
    )
    parser.add_argument(
        "action",
        nargs="?",
        choices=["serve", "migrate"],
        default="serve",
        help="serve (default), or migrate: apply the database migrations and exit",
    )
    parser.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    from scwadd_core.logs import configure_logging
    from scwadd_core.settings import load_settings
    from scwadd_core.web import run_async

    from scwadd_exporter.runtime import main, migrate
    from scwadd_exporter.settings import ExporterSettings

    settings = load_settings(ExporterSettings)
    configure_logging(settings.LOG_LEVEL)
    if args.action == "migrate":
        migrate(settings)
        return 0
    return run_async(main(settings))

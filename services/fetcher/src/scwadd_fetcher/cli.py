"""The `scwadd fetcher` subcommand: run the service, or only its database migrations."""

from __future__ import annotations

import argparse
from typing import Any


def register(subparsers: Any) -> None:
    parser = subparsers.add_parser(
        "fetcher",
        help="run the fetcher service (custodian ESPI fetch, /espi/notify)",
        description=(
            "Consumes grant.received, fetches every UsagePoint's history from the custodian "
            "over mutual TLS within the shared rate limit, stores the raw ESPI documents in "
            "bucket scwadd-raw and publishes fetch.completed or fetch.failed. Receives the "
            "custodian's BatchList notifications on POST /espi/notify. Configured only by "
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

    from scwadd_fetcher.runtime import main, migrate
    from scwadd_fetcher.settings import FetcherSettings

    settings = load_settings(FetcherSettings)
    configure_logging(settings.LOG_LEVEL)
    if args.action == "migrate":
        migrate(settings)
        return 0
    return run_async(main(settings))

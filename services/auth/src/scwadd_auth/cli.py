"""The `scwadd auth` subcommand: run the service, or only its database migrations."""

from __future__ import annotations

import argparse
from typing import Any


def register(subparsers: Any) -> None:
    parser = subparsers.add_parser(
        "auth",
        help="run the auth service (landing page, OAuth callback, status page)",
        description=(
            "Serves the customer's landing page, redirects to the custodian's consent page, "
            "exchanges the code over mutual TLS, records the grant, publishes grant.received "
            "and shows the job's status. Configured only by environment variables (see "
            "docs/architecture.md)."
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

    from scwadd_auth.runtime import main, migrate
    from scwadd_auth.settings import AuthSettings

    settings = load_settings(AuthSettings)
    configure_logging(settings.LOG_LEVEL)
    if args.action == "migrate":
        migrate(settings)
        return 0
    return run_async(main(settings))

"""The `scwadd fetcher` subcommand: run the service, or only its database migrations."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from scwadd_core.service_cli import ServiceParts, register_service_command

if TYPE_CHECKING:
    from scwadd_fetcher.settings import FetcherSettings


def register(subparsers: Any) -> None:
    register_service_command(
        subparsers,
        "fetcher",
        help="run the fetcher service (custodian ESPI fetch, /espi/notify)",
        description=(
            "Consumes grant.received, fetches every UsagePoint's history from the custodian "
            "over mutual TLS within the shared rate limit, stores the raw ESPI documents in "
            "bucket scwadd-raw and publishes fetch.completed or fetch.failed. Receives the "
            "custodian's BatchList notifications on POST /espi/notify. Configured only by "
            "environment variables (see docs/architecture.md)."
        ),
        parts=_parts,
    )


def _parts() -> ServiceParts[FetcherSettings]:
    from scwadd_fetcher.runtime import main, migrate
    from scwadd_fetcher.settings import FetcherSettings

    return ServiceParts(FetcherSettings, serve=main, migrate=migrate)

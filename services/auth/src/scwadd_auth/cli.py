"""The `scwadd auth` subcommand: run the service, or only its database migrations."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from scwadd_core.service_cli import ServiceParts, register_service_command

if TYPE_CHECKING:
    from scwadd_auth.settings import AuthSettings


def register(subparsers: Any) -> None:
    register_service_command(
        subparsers,
        "auth",
        help="run the auth service (landing page, OAuth callback, status page)",
        description=(
            "Serves the customer's landing page, redirects to the custodian's consent page, "
            "exchanges the code over mutual TLS, records the grant, publishes grant.received "
            "and shows the job's status. Configured only by environment variables (see "
            "docs/architecture.md)."
        ),
        parts=_parts,
    )


def _parts() -> ServiceParts[AuthSettings]:
    from scwadd_auth.runtime import main, migrate
    from scwadd_auth.settings import AuthSettings

    return ServiceParts(AuthSettings, serve=main, migrate=migrate)

"""The `scwadd webhooks` subcommand: run the service, or only its database migrations."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from scwadd_core.service_cli import ServiceParts, register_service_command

if TYPE_CHECKING:
    from scwadd_webhooks.settings import WebhookSettings


def register(subparsers: Any) -> None:
    register_service_command(
        subparsers,
        "webhooks",
        help="run the webhooks service (export.ready, grant.revoked, grant.flagged)",
        description=(
            "Sends the operator's endpoints a signed Standard Webhooks message for each "
            "export.ready, grant.revoked and grant.flagged, retried with backoff for 24 h. "
            "Configured only by environment variables (see docs/architecture.md)."
        ),
        parts=_parts,
    )


def _parts() -> ServiceParts[WebhookSettings]:
    from scwadd_webhooks.runtime import main, migrate
    from scwadd_webhooks.settings import WebhookSettings

    return ServiceParts(WebhookSettings, serve=main, migrate=migrate)

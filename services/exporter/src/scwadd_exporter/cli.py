"""The `scwadd exporter` subcommand: run the service, or only its database migrations."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from scwadd_core.service_cli import ServiceParts, register_service_command

if TYPE_CHECKING:
    from scwadd_exporter.settings import ExporterSettings


def register(subparsers: Any) -> None:
    register_service_command(
        subparsers,
        "exporter",
        help="run the exporter service (CSV + manifest, then revocation)",
        description=(
            "Consumes grant.received, fetch.completed and fetch.failed; writes the CSV and its "
            "manifest to the scwadd-exports bucket and revokes every grant. Configured only by "
            "environment variables (see docs/architecture.md)."
        ),
        parts=_parts,
    )


def _parts() -> ServiceParts[ExporterSettings]:
    from scwadd_exporter.runtime import main, migrate
    from scwadd_exporter.settings import ExporterSettings

    return ServiceParts(ExporterSettings, serve=main, migrate=migrate)

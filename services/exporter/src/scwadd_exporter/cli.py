"""The `scwadd exporter` subcommand."""

from __future__ import annotations

from typing import Any


def register(subparsers: Any) -> None:
    """Not yet wired: the exporter service adds its subcommand here."""

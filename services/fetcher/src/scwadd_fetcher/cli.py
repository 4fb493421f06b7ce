"""The `scwadd fetcher` subcommand."""

from __future__ import annotations

from typing import Any


def register(subparsers: Any) -> None:
    """Not yet wired: the fetcher service adds its subcommand here."""

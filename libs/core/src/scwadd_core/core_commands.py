"""Subcommands that ship with the core package (``convert``, ``run``)."""

from __future__ import annotations

from typing import Any


def register(subparsers: Any) -> None:
    """Each core command module adds its own parser; see the modules for the options."""
    from scwadd_core.espi import convert_cli

    convert_cli.register(subparsers)

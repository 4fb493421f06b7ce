"""The `scwadd` command loads only the entry point of the subcommand it runs."""

from __future__ import annotations

import json
import subprocess
import sys

HEAVY = ["scwadd_devstack", "scwadd_sandbox", "scwadd_auth", "nats", "pydantic", "httpx"]


def _modules_after(argv: list[str]) -> dict[str, object]:
    """Build the parser for ``argv`` in a fresh interpreter; which heavy modules got imported and
    which subcommands the parser knows."""
    script = (
        "import json, sys\n"
        "from scwadd_core.cli import build_parser\n"
        f"parser = build_parser({argv!r})\n"
        "action = next(a for a in parser._actions if a.dest == 'command')\n"
        f"heavy = [m for m in {HEAVY!r} if m in sys.modules]\n"
        "print(json.dumps({'heavy': heavy, 'commands': sorted(action.choices)}))\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, check=True
    )
    result: dict[str, object] = json.loads(done.stdout)
    return result


def test_convert_loads_only_its_own_entry_point() -> None:
    result = _modules_after(["convert", "feed.xml"])
    assert result == {"heavy": [], "commands": ["convert"]}


def everything_listed() -> tuple[str, ...]:
    return ("auth", "convert", "dlq", "exporter", "fetcher", "files", "run", "sandbox", "webhooks")


def test_help_and_unknown_commands_list_every_command() -> None:
    everything = list(everything_listed())
    for argv in (["--help"], [], ["bogus"], ["-h", "convert"]):
        assert _modules_after(argv)["commands"] == everything, argv


def test_help_lists_every_command_and_exits_0() -> None:
    done = subprocess.run(
        [sys.executable, "-m", "scwadd_core.cli", "--help"], capture_output=True, text=True
    )
    assert done.returncode == 0
    for name in everything_listed():
        assert f"\n    {name} " in done.stdout, name


def test_unknown_command_is_a_usage_error_listing_the_commands() -> None:
    done = subprocess.run(
        [sys.executable, "-m", "scwadd_core.cli", "bogus"], capture_output=True, text=True
    )
    assert done.returncode == 2
    assert "'convert'" in done.stderr and "'run'" in done.stderr


def test_the_quick_lookup_finds_what_importlib_metadata_finds() -> None:
    """The named subcommand's entry point is read from entry_points.txt directly (importing
    importlib.metadata costs more than a short conversion); it must be the same function."""
    from importlib.metadata import entry_points

    from scwadd_core.cli import GROUP, _quick_register

    entries = list(entry_points(group=GROUP))
    assert {e.name for e in entries} >= {"convert", "run", "dlq"}
    for entry in entries:
        assert _quick_register(entry.name) is entry.load(), entry.name
    assert _quick_register("no-such-command") is None

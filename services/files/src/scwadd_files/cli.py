"""The `scwadd files` subcommand: serve the exports (default), or make a bcrypt htpasswd line."""

from __future__ import annotations

import argparse
import getpass
import sys
from typing import Any

from scwadd_files.htpasswd import hash_password


def register(subparsers: Any) -> None:
    parser = subparsers.add_parser(
        "files",
        help="serve /output/ to the operator behind HTTP Basic (bcrypt htpasswd)",
        description=(
            "Without an action: run the files service (configured by environment variables: "
            "NATS_URL, HTPASSWD_FILE or HTPASSWD, EXPORT_RETENTION_DAYS, HTTP_HOST, HTTP_PORT, "
            "TLS_CERT_FILE, TLS_KEY_FILE, LOG_LEVEL)."
        ),
    )
    parser.set_defaults(handler=run)
    actions = parser.add_subparsers(dest="files_action", metavar="ACTION")
    serve_parser = actions.add_parser("serve", help="run the files service (the default)")
    serve_parser.set_defaults(handler=run)
    migrator = actions.add_parser(
        "migrate", help="apply the console's database migrations to DATABASE_URL and exit"
    )
    migrator.set_defaults(handler=migrate_command)
    hasher = actions.add_parser(
        "hash-password",
        help="print a bcrypt htpasswd line for USER (the password is read without echo)",
    )
    hasher.add_argument("user")
    hasher.add_argument(
        "--password-stdin", action="store_true", help="read the password from standard input"
    )
    hasher.add_argument("--rounds", type=int, default=12, help="bcrypt cost (default 12)")
    hasher.set_defaults(handler=hash_password_command)


def hash_password_command(args: argparse.Namespace) -> int:
    user: str = args.user
    if not user or ":" in user:
        print("the user name must be non-empty and contain no ':'", file=sys.stderr)
        return 2
    if args.password_stdin:
        password = sys.stdin.readline().rstrip("\r\n")
    else:
        password = getpass.getpass(f"password for {user}: ")
        if getpass.getpass("again: ") != password:
            print("the passwords differ", file=sys.stderr)
            return 2
    if not password:
        print("the password must not be empty", file=sys.stderr)
        return 2
    if len(password.encode()) > 72:
        print("bcrypt uses at most 72 bytes of a password; choose a shorter one", file=sys.stderr)
        return 2
    print(f"{user}:{hash_password(password, args.rounds)}")
    return 0


def migrate_command(args: argparse.Namespace) -> int:
    from scwadd_core.service_cli import start_settings

    from scwadd_files.runtime import migrate
    from scwadd_files.settings import Settings

    migrate(start_settings(Settings))
    return 0


def run(args: argparse.Namespace) -> int:
    from scwadd_core.service_cli import start_settings
    from scwadd_core.web import run_async

    from scwadd_files.htpasswd import HtpasswdError, load_htpasswd
    from scwadd_files.runtime import main
    from scwadd_files.settings import Settings

    settings = start_settings(Settings)
    try:
        users = load_htpasswd(
            settings.HTPASSWD_FILE,
            settings.HTPASSWD.get_secret_value() if settings.HTPASSWD else None,
        )
    except HtpasswdError as error:
        print(f"configuration error: {error}", file=sys.stderr)
        return 2
    return run_async(main(settings, users))

"""The `scwadd sandbox` subcommand: a PG&E-shaped custodian on two local HTTPS ports."""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import secrets
import sys
from pathlib import Path
from typing import Any

from scwadd_core import devpki
from scwadd_core.logs import configure_logging

from scwadd_sandbox.config import (
    DEFAULT_CLIENT_ID,
    DEFAULT_NOTIFICATION_URI,
    DEFAULT_REDIRECT_URI,
    ConfigError,
    OverLimit,
    RateLimits,
    Registration,
    SandboxConfig,
    load_registrations,
    registration_from_mapping,
)
from scwadd_sandbox.faults import FaultConfig

ADMIN_TOKEN_ENV = "SANDBOX_ADMIN_TOKEN"  # noqa: S105 - a variable name
CLIENT_SECRET_ENV = "SANDBOX_CLIENT_SECRET"  # noqa: S105 - a variable name


def register(subparsers: Any) -> None:
    parser = subparsers.add_parser(
        "sandbox",
        help="run the ShareMyData sandbox custodian (browser face + mutual-TLS API face)",
        description=(
            "A faithful, fault-injectable PG&E Share My Data custodian for development and tests. "
            "Generates development TLS material on first run. See docs/sandbox.md."
        ),
    )
    add_arguments(parser)
    parser.set_defaults(handler=run)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    where = parser.add_argument_group("where")
    where.add_argument("--host", default="127.0.0.1", help="bind address (default 127.0.0.1)")
    where.add_argument(
        "--public-host",
        default=None,
        help="the host name clients reach the sandbox by, used in every URL it hands out "
        "(resource URIs, BatchList entries); default the bind address, 127.0.0.1 for a wildcard",
    )
    where.add_argument("--web-port", type=int, default=9443, help="browser face (default 9443)")
    where.add_argument("--api-port", type=int, default=9444, help="API face (default 9444)")
    where.add_argument(
        "--pki-dir", type=Path, default=Path(".run/pki"), help="dev TLS material (default .run/pki)"
    )
    who = parser.add_argument_group("registration")
    who.add_argument(
        "--registration",
        type=Path,
        help='JSON or TOML file: {"registrations": [{client_id, client_secret, redirect_uris, '
        "notification_uri, client_cert}]}; replaces the default registration",
    )
    who.add_argument("--client-id", default=DEFAULT_CLIENT_ID, help="default registration's id")
    who.add_argument(
        "--client-secret",
        default=os.environ.get(CLIENT_SECRET_ENV),
        help=f"default registration's secret (env {CLIENT_SECRET_ENV}; generated if absent)",
    )
    who.add_argument(
        "--redirect-uri", action="append", help=f"repeatable (default {DEFAULT_REDIRECT_URI})"
    )
    who.add_argument("--notification-uri", default=DEFAULT_NOTIFICATION_URI)
    who.add_argument("--client-cert", type=Path, help="PEM (default: the dev PKI's client.pem)")
    who.add_argument(
        "--admin-token",
        default=os.environ.get(ADMIN_TOKEN_ENV),
        help=f"admin API bearer credential (env {ADMIN_TOKEN_ENV}; generated if absent)",
    )
    behaviour = parser.add_argument_group("behaviour")
    behaviour.add_argument("--seed", type=int, default=20240601, help="synthetic data seed")
    behaviour.add_argument(
        "--customers",
        type=_positive,
        default=5,
        help="synthetic customers (default 5: one per profile; more cycle through the profiles)",
    )
    behaviour.add_argument("--rate-per-second", type=int, default=1)
    behaviour.add_argument("--rate-per-hour", type=int, default=2000)
    behaviour.add_argument("--rate-per-day", type=int, default=20000)
    behaviour.add_argument(
        "--no-rate-limit", action="store_true", help="lift the per-client limits"
    )
    behaviour.add_argument(
        "--over-limit",
        choices=[str(profile) for profile in OverLimit],
        default=str(OverLimit.STRICT),
        help="answer beyond the rate limits: strict (429 + Retry-After, default), lenient "
        "(serve and count the excess), unavailable (503, no Retry-After)",
    )
    behaviour.add_argument(
        "--notification-delay",
        type=_delay,
        default=(10.0, 40.0),
        metavar="MIN[-MAX]",
        help="seconds before a batch's BatchList notification leaves (default 10-40, as PG&E)",
    )
    behaviour.add_argument("--code-lifetime", type=int, default=600, help="seconds")
    behaviour.add_argument("--access-token-lifetime", type=int, default=3600, help="seconds")
    behaviour.add_argument("--max-range-days", type=int, default=366, help="per request")
    behaviour.add_argument("--data-days", type=int, default=732, help="history that exists")
    behaviour.add_argument(
        "--optional-client-cert",
        action="store_true",
        help="complete handshakes without a client certificate and answer PG&E's "
        '400 "Invalid Certificate" instead of failing the handshake',
    )
    behaviour.add_argument(
        "--authorization-times-in-ms",
        action="store_true",
        help="write Authorization times in epoch milliseconds, as older PG&E documents do",
    )
    behaviour.add_argument(
        "--state-file",
        type=Path,
        help="SQLite file keeping authorizations, tokens and batches across restarts "
        "(default: memory only; use the same --seed and --customers)",
    )
    behaviour.add_argument(
        "--faults",
        help="fault settings as JSON or @file.json (docs/sandbox.md; admin: PUT /admin/faults)",
    )


def config_from_args(
    args: argparse.Namespace, pki: devpki.DevPki
) -> tuple[SandboxConfig, list[str]]:
    """The configuration, and lines worth printing about generated credentials."""
    notes: list[str] = []
    registrations: list[Registration]
    if args.registration is not None:
        registrations = load_registrations(args.registration)
    else:
        secret = args.client_secret
        if not secret:
            secret = secrets.token_urlsafe(24)
            notes.append(f"generated client_secret for {args.client_id}: {secret}")
        registrations = [
            registration_from_mapping(
                {
                    "client_id": args.client_id,
                    "client_secret": secret,
                    "redirect_uris": args.redirect_uri or [DEFAULT_REDIRECT_URI],
                    "notification_uri": args.notification_uri,
                    "client_cert": str(args.client_cert or pki.client_cert),
                }
            )
        ]
    admin_token = args.admin_token
    if not admin_token:
        admin_token = secrets.token_urlsafe(24)
        notes.append(f"generated admin token ({ADMIN_TOKEN_ENV}): {admin_token}")
    faults = FaultConfig()
    if args.faults:
        raw = args.faults
        text = Path(raw[1:]).read_text() if raw.startswith("@") else raw
        try:
            faults = FaultConfig.model_validate(json.loads(text))
        except ValueError as exc:
            raise ConfigError(f"--faults is not a valid fault setting: {exc}") from None
    limits = (
        RateLimits.unlimited()
        if args.no_rate_limit
        else RateLimits(args.rate_per_second, args.rate_per_hour, args.rate_per_day)
    )
    # The URLs the sandbox hands out (resourceURIs, BatchLists) name the host its clients reach
    # it by: behind a Kubernetes Service that is the Service's name, not the bind address.
    host = args.public_host or (
        "127.0.0.1" if args.host in ("0.0.0.0", "::") else args.host  # noqa: S104
    )
    config = SandboxConfig(
        registrations=tuple(registrations),
        admin_token=admin_token,
        ca_file=pki.ca_cert,
        web_base_url=f"https://{_url_host(host)}:{args.web_port}",
        api_base_url=f"https://{_url_host(host)}:{args.api_port}",
        seed=args.seed,
        customers=args.customers,
        rate_limits=limits,
        over_limit=OverLimit(args.over_limit),
        notification_delay=args.notification_delay,
        code_lifetime=args.code_lifetime,
        access_token_lifetime=args.access_token_lifetime,
        max_range_seconds=args.max_range_days * 86400,
        data_days=args.data_days,
        require_cert_in_handshake=not args.optional_client_cert,
        authorization_times_in_ms=args.authorization_times_in_ms,
        faults=faults,
        state_file=args.state_file,
    )
    return config, notes


def _positive(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a whole number") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, not {value}")
    return value


def _delay(text: str) -> tuple[float, float]:
    """``15`` or ``10-40``: a fixed delay or a uniform range, in seconds (0 to 3600)."""
    low_text, _, high_text = text.partition("-")
    try:
        low = float(low_text)
        high = float(high_text) if high_text else low
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not SECONDS or MIN-MAX") from None
    if not 0 <= low <= high <= 3600:
        raise argparse.ArgumentTypeError(f"{text!r}: need 0 <= MIN <= MAX <= 3600")
    return low, high


def _url_host(host: str) -> str:
    return f"[{host}]" if ":" in host else host


def run(args: argparse.Namespace) -> int:
    from scwadd_sandbox.server import SandboxServer, bind

    configure_logging(os.environ.get("LOG_LEVEL", "INFO"))
    pki = devpki.ensure_dev_pki(args.pki_dir)
    try:
        config, notes = config_from_args(args, pki)
    except (ConfigError, OSError) as exc:
        print(f"scwadd sandbox: {exc}", file=sys.stderr)
        return 2
    try:
        web_socket = bind(args.host, args.web_port)
        api_socket = bind(args.host, args.api_port)
    except OSError as exc:
        print(f"scwadd sandbox: cannot listen: {exc}", file=sys.stderr)
        return 2
    server = SandboxServer(
        config,
        web_socket=web_socket,
        api_socket=api_socket,
        server_cert=pki.server_cert,
        server_key=pki.server_key,
    )
    print(banner(config, pki, notes), flush=True)
    asyncio.run(server.serve(install_signal_handlers=True))
    return 0


def banner(config: SandboxConfig, pki: devpki.DevPki, notes: list[str]) -> str:
    clients = ", ".join(r.client_id for r in config.registrations)
    first = config.registrations[0]
    lines = [
        "ShareMyData sandbox is running.",
        f"  browser face : {config.authorize_url}",
        f"  token URL    : {config.token_url}   (mutual TLS)",
        f"  ESPI API base: {config.espi_base}   (mutual TLS)",
        f"  admin API    : {config.web_base_url}/admin/...   (Authorization: Bearer <admin token>)",
        f"  registered   : {clients}",
        f"  redirect URIs: {', '.join(first.redirect_uris)}",
        f"  notifications: {first.notification_uri}",
        f"  dev TLS      : CA {pki.ca_cert}",
        f"                 client cert {pki.client_cert} / key {pki.client_key}",
        "Try:",
        f"  curl --cacert {pki.ca_cert} --cert {pki.client_cert} --key {pki.client_key} \\",
        f"       -u {first.client_id}:<secret> -d grant_type=client_credentials {config.token_url}",
    ]
    lines += [f"  {note}" for note in notes]
    return "\n".join(lines)

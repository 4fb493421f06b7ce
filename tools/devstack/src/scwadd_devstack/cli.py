"""`scwadd run`: the whole system on this machine against the sandbox (`make run`, `make demo`)."""

from __future__ import annotations

import argparse
import signal
import sys
import threading
from pathlib import Path
from typing import Any

from scwadd_devstack.stack import OPERATOR_USER, SERVICES, Stack, StackConfig


def register(subparsers: Any) -> None:
    parser = subparsers.add_parser(
        "run",
        help="run nats-server, the sandbox custodian and the four services locally",
        description=(
            "Starts nats-server, the PG&E-shaped sandbox and the auth, fetcher, exporter and "
            "files services as separate processes, wired as the Helm chart wires them, with "
            "SQLite and generated dev certificates under --run-dir. A process that dies is "
            "started again (1 s, then up to 30 s apart if it keeps dying); Ctrl-C or SIGTERM "
            "stops everything, during start-up too."
        ),
    )
    parser.add_argument("--run-dir", type=Path, default=Path(".run"), help="state and logs")
    parser.add_argument(
        "--demo",
        action="store_true",
        help="drive one sandbox customer through consent, wait for the CSV, print it, exit",
    )
    parser.set_defaults(handler=run)


class StopRequested(BaseException):
    """SIGTERM or SIGINT arrived while the stack was starting."""


def run(args: argparse.Namespace) -> int:
    return run_stack(Stack(StackConfig(run_dir=args.run_dir)), demo=args.demo)


def run_stack(stack: Stack, *, demo: bool = False) -> int:
    """Start ``stack``, keep it running (restarting any child that dies) until SIGTERM/SIGINT,
    then stop every child. A signal during start-up stops every child started so far."""

    def stop_starting(signum: int, _frame: Any) -> None:
        raise StopRequested(signal.Signals(signum).name)

    for signum in (signal.SIGINT, signal.SIGTERM):
        signal.signal(signum, stop_starting)
    print("starting nats-server, sandbox, " + ", ".join(SERVICES) + " ...", flush=True)
    try:
        stack.start()  # stops what it started, then re-raises, if the signal comes now
    except StopRequested:
        print("stopped during start-up", flush=True)
        return 0
    stop = threading.Event()
    for signum in (signal.SIGINT, signal.SIGTERM):
        signal.signal(signum, lambda *_: stop.set())
    try:
        if demo:
            from scwadd_devstack.demo import run_demo

            return run_demo(stack)
        _print_banner(stack)
        while not stop.wait(1.0):
            for name in stack.restart_dead():
                print(f"{name} stopped unexpectedly and was restarted; see {stack.run_dir}/logs/")
        print("\nstopping ...", flush=True)
        return 0
    finally:
        stack.stop()


def _print_banner(stack: Stack) -> None:
    lines = [
        "",
        "SCWADD is running against the sandbox custodian.",
        f"  customer URL : {stack.customer_url}",
        f"  operator URL : {stack.console_url} (console; files at {stack.operator_url})",
        f"  operator     : {OPERATOR_USER} / {stack.secrets.operator_password}",
        f"  sandbox      : {stack.sandbox_web_url} (browser face, dev CA {stack.pki.ca_cert})",
        f"  logs         : {stack.run_dir}/logs/",
        "Press Ctrl-C to stop.",
    ]
    print("\n".join(lines), flush=True)
    sys.stdout.flush()

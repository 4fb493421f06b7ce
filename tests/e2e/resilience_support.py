"""What the resilience tests need beyond the pipeline's own fixture: a stack tuned so retries,
leases and the watchdog act within seconds, a witness at the custodian that counts revocations
and token issues, and waits that poll a fact instead of sleeping a guess."""

from __future__ import annotations

import asyncio
import os
import re
import signal
import sqlite3
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from decimal import Decimal
from pathlib import Path
from typing import Any, TypeVar

import httpx
import nats
from scwadd_devstack.demo import Consent, wait_for_job
from scwadd_devstack.processes import ChildProcess, wait_for_port
from scwadd_sandbox.config import RateLimits
from scwadd_sandbox.faults import FaultConfig, FaultInjector, FaultKind
from scwadd_sandbox.state import AuthorizationRecord, SandboxState

from .conftest import System
from .test_pipeline import epoch, truth_by_interval

T = TypeVar("T")

# The production defaults wait minutes (lease 90 s, revoking lease 5 min, watchdog 30 s, flagged
# retry 15 min, unrevoked alert 60 min); the behaviour under test is the same at seconds.
# Fetcher and exporter draw on one custodian call budget: both must agree on its size.
RATE_LIMIT_ENV = {"RATE_LIMIT_PER_SECOND": "20"}
FETCHER_ENV = {
    **RATE_LIMIT_ENV,
    # The faults below are set on the per-UsagePoint endpoints (customer token).
    "BATCH_SCOPE": "usagepoint",
    "FETCH_RETRY_ATTEMPTS": "5",
    "FETCH_RETRY_INITIAL_SECONDS": "0.1",
    "FETCH_RETRY_MAX_SECONDS": "0.5",
    # No test here waits for a timeout to fire; on a loaded machine the in-process sandbox may
    # take minutes to make a year of data, and a timeout would be a failed attempt.
    "CUSTODIAN_TIMEOUT_SECONDS": "300",
    "JOB_LEASE_SECONDS": "6",
}
EXPORTER_ENV = {
    **RATE_LIMIT_ENV,
    "REVOKE_MAX_ATTEMPTS": "6",
    "REVOKE_BACKOFF_SECONDS": "0.1",
    "REVOKE_BACKOFF_MAX_SECONDS": "0.5",
    "REVOKING_LEASE_SECONDS": "8",
    "WATCHDOG_INTERVAL_SECONDS": "1",
    "REVOKE_RETRY_FLAGGED_MINUTES": "0.05",
    "UNREVOKED_ALERT_MINUTES": "0.01",
}
ASYNC_FETCHER_ENV = {
    "BATCH_SCOPE": "subscription",
    "BATCH_NOTIFICATION_TIMEOUT_SECONDS": "3",
    "BATCH_REREQUESTS": "2",
}

# The endpoints that carry customer data (the token endpoint and the DELETE stay healthy).
DATA_ENDPOINTS = ("UsagePoint", "BatchSubscriptionUsagePoint")


@dataclass(frozen=True)
class RevokeCall:
    """One revocation that reached the custodian's books (a DELETE past its faults, or the
    customer on the custodian's site); ``changed`` is False when it was already revoked (410)."""

    authorization_id: str
    by: str
    changed: bool


@dataclass
class CustodianWitness:
    """Counts, inside the in-process sandbox, what happened to each authorization.

    It wraps the sandbox's own bookkeeping methods and calls them unchanged, so the custodian
    behaves exactly as it would; the wrapper only writes down each call."""

    state: SandboxState
    revoke_calls: list[RevokeCall] = field(default_factory=list)
    token_issues: list[str] = field(default_factory=list)
    # Every access and refresh token handed out, customer's or client's: the sandbox forgets
    # revoked and expired ones, the log check must not.
    issued_tokens: list[str] = field(default_factory=list)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def install(self) -> None:
        revoke = self.state.revoke
        issue = self.state.issue_customer_tokens
        issue_client = self.state.issue_client_token

        def counted_revoke(record: AuthorizationRecord, by: str) -> bool:
            changed = revoke(record, by)
            with self._lock:
                self.revoke_calls.append(RevokeCall(record.authorization_id, by, changed))
            return changed

        def counted_issue(record: AuthorizationRecord, grant: str) -> tuple[str, str]:
            pair = issue(record, grant)
            with self._lock:
                self.token_issues.append(record.authorization_id)
                self.issued_tokens.extend(pair)
            return pair

        def counted_client_token(client_id: str) -> str:
            token = issue_client(client_id)
            with self._lock:
                self.issued_tokens.append(token)
            return token

        # setattr: the instance's attribute shadows the method (mypy refuses a plain assignment).
        setattr(self.state, "revoke", counted_revoke)
        setattr(self.state, "issue_customer_tokens", counted_issue)
        setattr(self.state, "issue_client_token", counted_client_token)

    def revocations(self, authorization_id: str) -> list[RevokeCall]:
        with self._lock:
            return [c for c in self.revoke_calls if c.authorization_id == authorization_id]

    def tokens_issued(self, authorization_id: str) -> int:
        with self._lock:
            return self.token_issues.count(authorization_id)


def wait_for(what: str, probe: Callable[[], T | None], timeout: float = 120.0) -> T:
    """Polls ``probe`` until it returns something other than None/False."""
    deadline = time.monotonic() + timeout
    while True:
        value = probe()
        if value is not None and value is not False:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout:.0f} s waiting for {what}")
        time.sleep(0.1)


def first_faults(config: FaultConfig, endpoint: str, calls: int) -> list[FaultKind]:
    """The faults the sandbox will draw for the first ``calls`` calls to ``endpoint``: the
    sandbox's own injector, fed the same seed (its decisions are a function of it)."""
    injector = FaultInjector(config)
    return [injector.decide(endpoint).kind for _ in range(calls)]


def seed_where(
    config: Callable[[int], FaultConfig], endpoint: str, wanted: list[FaultKind]
) -> FaultConfig:
    """The first seed whose first draws on ``endpoint`` are exactly ``wanted``."""
    for seed in range(10_000):
        candidate = config(seed)
        if first_faults(candidate, endpoint, len(wanted)) == wanted:
            return candidate
    raise AssertionError(f"no seed below 10000 draws {wanted} on {endpoint}")


@dataclass
class Resilient:
    """The system under test plus the witness; ``system`` has the pipeline tests' helpers."""

    system: System
    witness: CustodianWitness

    @property
    def admin(self) -> httpx.Client:
        return self.system.sandbox.admin

    def set_faults(self, faults: FaultConfig | dict[str, Any]) -> None:
        body = faults.model_dump() if isinstance(faults, FaultConfig) else faults
        self.admin.put("/admin/faults", json=body).raise_for_status()

    @contextmanager
    def faults(self, faults: FaultConfig | dict[str, Any]) -> Iterator[None]:
        self.set_faults(faults)
        try:
            yield
        finally:
            self.set_faults({})

    @contextmanager
    def custodian_rate_limits(self, limits: RateLimits) -> Iterator[None]:
        """The custodian enforces ``limits`` (429 + Retry-After) for a while; unlimited after."""
        limiter = self.system.sandbox.state.limiter
        before = limiter.limits
        limiter.limits = limits
        try:
            yield
        finally:
            limiter.limits = before

    def authorization_ids(self) -> set[str]:
        return set(self.system.sandbox.state.authorizations)

    def new_authorization(self, profile: str, known: set[str]) -> AuthorizationRecord | None:
        """The authorization of ``profile`` created since ``known`` was taken, if any yet."""
        for record in list(self.system.sandbox.state.authorizations.values()):
            if record.authorization_id not in known and record.customer.profile == profile:
                return record
        return None

    def calls(self, authorization_id: str, endpoint: str) -> int:
        report = self.system.sandbox.state.call_report()["by_authorization"]
        return int(report.get(authorization_id, {}).get(endpoint, 0))

    def client_calls(self, endpoint: str) -> int:
        report = self.system.sandbox.state.call_report()["by_client"]
        return int(report.get(self.system.sandbox.client_id, {}).get(endpoint, 0))

    def responses(self, status: int) -> int:
        report = self.system.sandbox.state.call_report()["responses_by_status"]
        return int(report.get(str(status), 0))

    def wait_job(self, client: httpx.Client, consent: Consent) -> dict[str, Any]:
        return dict(wait_for_job(client, consent, timeout=600))

    # -- the exporter's operator face ----------------------------------------------------
    def exporter_url(self, path: str) -> str:
        return f"http://127.0.0.1:{self.system.stack.ports.exporter}{path}"

    def grants(self, status: str | None = None) -> list[dict[str, Any]]:
        params = {"status": status} if status else {}
        answer = httpx.get(self.exporter_url("/grants"), params=params, timeout=10)
        answer.raise_for_status()
        return list(answer.json()["grants"])

    def grant_row(self, subscription_id: str) -> dict[str, Any]:
        rows = [g for g in self.grants() if g["subscription_id"] == subscription_id]
        assert rows, f"the exporter knows no grant for subscription {subscription_id}"
        return max(rows, key=lambda g: str(g["received_at"]))

    def unrevoked_gauge(self, reason: str) -> float:
        text = httpx.get(self.exporter_url("/metrics"), timeout=10).text
        pattern = rf'^scwadd_grants_unrevoked\{{reason="{re.escape(reason)}"\}} (\S+)$'
        match = re.search(pattern, text, re.MULTILINE)
        return float(match.group(1)) if match else 0.0

    def consumer_idle(self, durable: str) -> bool:
        """Whether a service's durable consumer has handled (acked) everything in the stream."""

        async def read() -> bool:
            connection = await nats.connect(self.system.stack.nats_url)
            try:
                info = await connection.jetstream().consumer_info("SCWADD_EVENTS", durable)
                return info.num_pending == 0 and info.num_ack_pending == 0
            finally:
                await connection.close()

        return asyncio.run(read())

    # -- processes -----------------------------------------------------------------------
    def kill(self, service: str) -> None:
        self.system.stack.child(service).kill()

    def restart_nats_after_kill(self) -> None:
        """SIGKILL nats-server and start it again on the same port and JetStream store."""
        stack = self.system.stack
        old = stack.child("nats")
        old.kill()
        stack.children.remove(old)
        new = ChildProcess("nats", old.argv, old.env, old.log_path)
        new.start()
        # First in the list: the stack stops children in reverse, the bus last.
        stack.children.insert(0, new)
        wait_for_port(new, stack.ports.nats)

    @contextmanager
    def frozen(self, service: str) -> Iterator[None]:
        """SIGSTOP a child (it neither answers nor closes its sockets), SIGCONT on exit."""
        popen = self.system.stack.child(service).popen
        assert popen is not None
        os.kill(popen.pid, signal.SIGSTOP)
        try:
            yield
        finally:
            os.kill(popen.pid, signal.SIGCONT)

    def auth_db(self) -> Path:
        return self.system.stack.run_dir / "auth.db"

    def unpublished_grants(self) -> int:
        """Rows auth committed to its ledger without having published them (its outbox)."""
        with sqlite3.connect(f"file:{self.auth_db()}?mode=ro", uri=True, timeout=5) as db:
            row = db.execute("SELECT count(*) FROM auth_grants WHERE published_at IS NULL")
            return int(row.fetchone()[0])

    def grant_count(self) -> int:
        with sqlite3.connect(f"file:{self.auth_db()}?mode=ro", uri=True, timeout=5) as db:
            return int(db.execute("SELECT count(*) FROM auth_grants").fetchone()[0])

    # -- the result ----------------------------------------------------------------------
    def exports_of(self, subscription_id: str) -> int:
        """How many CSV exports the operator sees for one subscription."""
        count = 0
        with self.system.operator() as client:
            for entry in self.system.exports():
                name = str(entry["name"])
                if name.endswith(".manifest.json"):
                    manifest = client.get(name).json()
                    count += manifest.get("subscription_id") == subscription_id
        return count

    def assert_export_equals_truth(self, record: AuthorizationRecord) -> int:
        """The operator's CSV for this authorization holds the custodian's readings, value for
        value, for every usage point, over the whole year; returns the row count."""
        rows, _manifest = self.system.export_for(record.subscription_id)
        assert rows, "the export has rows"
        starts = [epoch(r["interval_start_utc"]) for r in rows]
        expected = truth_by_interval(
            self.system, record.subscription_id, min(starts), max(starts) + 86400
        )
        got = {(r["usage_point_id"], epoch(r["interval_start_utc"])): r for r in rows}
        assert len(got) == len(rows), "no interval appears twice"
        assert set(got) == set(expected)
        for key, row in got.items():
            truth = expected[key]
            assert Decimal(row["delivered"] or "0") == truth.get("delivered", Decimal(0)), key
            assert Decimal(row["received"] or "0") == truth.get("received", Decimal(0)), key
        assert {point for point, _ in got} == set(record.usage_point_ids)
        assert max(starts) - min(starts) >= 364 * 86400
        return len(rows)


HUMAN_SENTENCE = re.compile(r"^[A-Z][^{}<>\n]{10,400}[.!]$")
MACHINE_WORDS = ("Traceback", "Exception", "Error:", "httpx", "None", "status_code", "b'", "XML")
# A parser's "document:line:column" position: a diagnostic for the operator, not the customer.
SOURCE_POSITION = re.compile(r"\w:\d+:\d+")


def is_human_sentence(text: str) -> bool:
    """A sentence a customer can read: capitalised, punctuated, no code, exception or parser
    diagnostics."""
    return (
        bool(HUMAN_SENTENCE.match(text))
        and not any(w in text for w in MACHINE_WORDS)
        and not SOURCE_POSITION.search(text)
    )

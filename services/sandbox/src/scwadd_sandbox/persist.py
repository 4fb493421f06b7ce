"""The sandbox's memory on disk: authorizations, codes, tokens, refresh tokens and batches survive
a restart of the sandbox, so a restart does not turn a third party's in-flight work into a
misleading 401 (issue 11).

One SQLite file (``SandboxConfig.state_file``, ``--state-file``) holds a snapshot written in one
transaction after every request that may have changed something, and after each notification
settles. Customers are not stored: they are a pure function of the seed, so the same ``--seed``
and ``--customers`` must be used across restarts; an authorization whose customer no longer
exists is dropped on load with a warning.

Tokens and codes are stored as they are, like the other development secrets in ``.run/`` (the
file is created 0600): this is a test custodian's memory, never a production store.
"""

from __future__ import annotations

import json
import logging
import os
import sqlite3
import threading
from pathlib import Path
from typing import Any

from scwadd_sandbox.state import (
    AuthorizationRecord,
    BatchJob,
    BatchKind,
    CodeRecord,
    RefreshRecord,
    SandboxState,
    TokenClass,
    TokenRecord,
)

log = logging.getLogger(__name__)

SCHEMA = """
CREATE TABLE IF NOT EXISTS records (
    kind TEXT NOT NULL,
    key TEXT NOT NULL,
    body TEXT NOT NULL,
    PRIMARY KEY (kind, key)
);
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
"""


class StateStore:
    """Snapshots of a :class:`SandboxState` in SQLite."""

    def __init__(self, path: Path) -> None:
        self.path = path
        path.parent.mkdir(parents=True, exist_ok=True)
        if not path.exists():
            path.touch(mode=0o600)
        os.chmod(path, 0o600)
        self._db = sqlite3.connect(str(path), check_same_thread=False)
        self._db.executescript(SCHEMA)
        self._lock = threading.Lock()
        self._last: list[tuple[str, str, str]] | None = None

    def close(self) -> None:
        with self._lock:
            self._db.close()

    def save(self, state: SandboxState) -> None:
        """Write the state's durable part, unless it is what was written last."""
        rows = _rows(state)  # in the state's own order, which a load restores
        sequence = str(state.sequence)
        with self._lock:
            if rows == self._last:
                return
            with self._db:
                self._db.execute("DELETE FROM records")
                self._db.executemany("INSERT INTO records VALUES (?, ?, ?)", rows)
                self._db.execute("INSERT OR REPLACE INTO meta VALUES ('sequence', ?)", (sequence,))
            self._last = rows

    def load(self, state: SandboxState) -> int:
        """Fill ``state`` from the file; returns how many records were restored."""
        with self._lock:
            rows = self._db.execute("SELECT kind, key, body FROM records ORDER BY rowid").fetchall()
            meta = dict(self._db.execute("SELECT key, value FROM meta").fetchall())
        restored = 0
        # Authorizations first (the rest refers to them); otherwise in the order they were kept.
        for kind, key, body in sorted(rows, key=lambda row: row[0] != "authorization"):
            item = json.loads(body)
            if kind == "authorization":
                customer = state.customer(item.pop("retail_customer_id"))
                if customer is None:
                    log.warning("a stored authorization's customer no longer exists; dropped")
                    continue
                item["function_blocks"] = frozenset(item["function_blocks"])
                state.authorizations[key] = AuthorizationRecord(customer=customer, **item)
            elif kind == "code":
                state.codes[key] = CodeRecord(**item)
            elif kind == "token":
                item["token_class"] = TokenClass(item["token_class"])
                state.tokens[key] = TokenRecord(**item)
            elif kind == "refresh":
                state.refresh_tokens[key] = RefreshRecord(**item)
            elif kind == "batch":
                item["kind"] = BatchKind(item["kind"])
                item["key"] = tuple(item["key"])
                job = BatchJob(**item)
                if not job.pending:
                    job.settled.set()
                state.batches[key] = job
            else:
                continue
            restored += 1
        state.sequence = max(state.sequence, int(meta.get("sequence", "0")))
        self._last = _rows(state)
        return restored


def _rows(state: SandboxState) -> list[tuple[str, str, str]]:
    rows: list[tuple[str, str, str]] = []

    def add(kind: str, key: str, body: dict[str, Any]) -> None:
        rows.append((kind, key, json.dumps(body, sort_keys=True)))

    for key, record in state.authorizations.items():
        add(
            "authorization",
            key,
            {
                "authorization_id": record.authorization_id,
                "subscription_id": record.subscription_id,
                "client_id": record.client_id,
                "retail_customer_id": record.customer.retail_customer_id,
                "scope": record.scope,
                "history_seconds": record.history_seconds,
                "created_at": record.created_at,
                "expires_at": record.expires_at,
                "function_blocks": sorted(record.function_blocks),
                "status": record.status,
                "revoked_at": record.revoked_at,
                "revoked_by": record.revoked_by,
            },
        )
    for key, code in state.codes.items():
        add(
            "code",
            key,
            {
                "client_id": code.client_id,
                "redirect_uri": code.redirect_uri,
                "authorization_id": code.authorization_id,
                "expires_at": code.expires_at,
                "used": code.used,
            },
        )
    for key, token in state.tokens.items():
        add(
            "token",
            key,
            {
                "token_class": str(token.token_class),
                "client_id": token.client_id,
                "expires_at": token.expires_at,
                "authorization_id": token.authorization_id,
                "grant": token.grant,
            },
        )
    for key, refresh in state.refresh_tokens.items():
        add(
            "refresh",
            key,
            {
                "client_id": refresh.client_id,
                "authorization_id": refresh.authorization_id,
                "expires_at": refresh.expires_at,
                "grant": refresh.grant,
            },
        )
    for key, job in state.batches.items():
        add(
            "batch",
            key,
            {
                "correlation_id": job.correlation_id,
                "bulk_id": job.bulk_id,
                "kind": str(job.kind),
                "client_id": job.client_id,
                "authorization_id": job.authorization_id,
                "published_min": job.published_min,
                "published_max": job.published_max,
                "key": list(job.key),
                "delay_seconds": job.delay_seconds,
                "pending": job.pending,
                "notification": job.notification,
                "deliveries": job.deliveries,
            },
        )
    return rows

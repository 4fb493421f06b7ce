"""What the files service decides, apart from HTTP: who is signed in (bcrypt htpasswd, throttled
per address), whether the exports bucket is reachable, and which exports retention deletes.

:mod:`scwadd_files.http` translates requests into these calls and their refusals into 401/429;
the console's read model and its commands are :class:`scwadd_files.ledger.Console`.
"""

from __future__ import annotations

import asyncio
import logging
from datetime import UTC, datetime, timedelta

import nats.js.errors
from prometheus_client import Counter
from scwadd_core.bus import Bus
from scwadd_core.events import EXPORTS_BUCKET
from scwadd_core.objects import list_entries
from scwadd_core.throttle import LoginThrottle

from scwadd_files.htpasswd import Verifier
from scwadd_files.ledger import Console

log = logging.getLogger(__name__)

LOGINS = Counter(
    "scwadd_files_logins_total",
    "HTTP Basic checks by outcome (ok, failed, missing, throttled).",
    ["outcome"],
)
EXPORTS_DELETED = Counter(
    "scwadd_files_exports_deleted_total", "Exports deleted because they passed the retention."
)


class NotSignedIn(Exception):
    """No credentials, or wrong ones: the browser is asked for them again (401)."""


class SignInThrottled(Exception):
    """Too many failed sign-ins from this address: not even checked for ``wait`` seconds."""

    def __init__(self, wait: float) -> None:
        super().__init__(f"throttled for {wait:.1f} s")
        self.wait = wait


class FilesService:
    def __init__(
        self,
        bus: Bus,
        verifier: Verifier,
        throttle: LoginThrottle,
        *,
        retention_days: float,
        console: Console | None = None,
    ) -> None:
        self.console = console
        self.bus = bus
        self.verifier = verifier
        self.throttle = throttle
        self.retention_days = retention_days

    async def exports_ready(self) -> bool:
        if not self.bus.is_connected:
            return False
        try:
            await asyncio.wait_for(self.bus.js.stream_info(f"OBJ_{EXPORTS_BUCKET}"), 2.0)
        except Exception:
            return False
        return True

    async def sign_in(self, client: str, credentials: tuple[str, str] | None) -> str:
        """The operator's name for HTTP Basic ``credentials`` (user, password) sent from
        ``client`` (its address).

        Raises :class:`SignInThrottled` while the address is held back by earlier failures (the
        password is then not checked at all), :class:`NotSignedIn` without credentials or with
        wrong ones.
        """
        wait = self.throttle.retry_after(client)
        if wait > 0:
            LOGINS.labels("throttled").inc()
            raise SignInThrottled(wait)
        if credentials is None:
            LOGINS.labels("missing").inc()
            raise NotSignedIn
        user, password = credentials
        # bcrypt takes a good fraction of a second: off the event loop.
        if not await asyncio.to_thread(self.verifier.verify, user, password):
            delay = self.throttle.failed(client)
            LOGINS.labels("failed").inc()
            # The attempted user name is not logged: people type passwords into that field.
            log.warning("failed sign-in", extra={"client": client, "imposed_delay_seconds": delay})
            raise NotSignedIn
        self.throttle.succeeded(client)
        LOGINS.labels("ok").inc()
        return user


async def purge_expired(
    bus: Bus, retention_days: float, *, now: datetime | None = None
) -> list[str]:
    """Delete every export written more than ``retention_days`` ago; returns the names."""
    cutoff = (now or datetime.now(UTC)) - timedelta(days=retention_days)
    store = await bus.object_store(EXPORTS_BUCKET)
    deleted = []
    for entry in await list_entries(bus.js, EXPORTS_BUCKET):
        if entry.modified >= cutoff:
            continue
        try:
            await store.delete(entry.name)
        except nats.js.errors.ObjectNotFoundError:
            continue  # another replica was first
        EXPORTS_DELETED.inc()
        deleted.append(entry.name)
        log.info(
            "export deleted by retention",
            extra={
                "object": entry.name,
                "written": entry.modified.isoformat(),
                "retention_days": retention_days,
            },
        )
    return deleted

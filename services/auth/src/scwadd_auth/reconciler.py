"""The reconciler: every authorization the custodian says we hold ends revoked or flagged.

Why auth runs it: auth owns the consent boundary. Its ledger (``auth_grants``) is the list of
authorizations that became grants, and its exchange outbox (``auth_exchanges``) is the list of
codes still being exchanged. An active authorization at the custodian that is in neither was
never handed to the pipeline (a failed or abandoned exchange, an expired state, a crash between
the custodian's answer and our record), so nobody else would ever revoke it. The exporter keeps
revoking the grants it knows (its state machine and watchdog); the reconciler never DELETEs an
authorization the ledger knows, so a grant is never revoked by both.

"Knows" is decided at the DELETE, not at the list: a customer's callback may arrive after the
reconciler took an authorization for an orphan and before its DELETE reached the custodian
(the DELETE waits for the shared call budget; a burst of consents keeps it busy), and its grant
would then be revoked by the reconciler and again by the exporter (the second DELETE answered
410). So the reconciler first claims the authorization (``seen`` → ``revoking``, a
compare-and-set on its ``auth_custodian_authorizations`` row, then the ledger and the exchange
outbox read again in that transaction), and the code exchange, before it records a grant, locks
the same row (:func:`orphan_revocation_claimed`): whichever commits first wins. A grant recorded
first makes the claim back off; a claim made first makes the exchange give up (the customer is
told to start again), so the grant never reaches the exporter.

One pass, by one replica at a time (a database lease, :func:`take_lease`):

1. ``GET {PGE_API_BASE}/Authorization`` with the client token (PG&E's Share My Data API lists
   the third party's authorizations there; ESPI ``Authorization``: ``status`` 1 active, 0
   revoked, 2 denied), following ``next`` links, bounded in size and pages.
2. For each active one:

   * in the ledger: the pipeline owns it. Flagged (``pipeline_overdue``) only if it is still
     active ``GRANT_DEADLINE_MINUTES + RECONCILE_OVERDUE_MINUTES`` after consent, i.e. the
     exporter's watchdog should long have revoked it, or (``revoked_but_active``) if the
     exporter reported it revoked and the custodian still lists it active.
   * not in the ledger, but possibly about to be: first seen less than
     ``RECONCILE_GRACE_SECONDS`` ago (its callback may be on its way), or an exchange still
     pending that started after the authorization was created: left for the next pass.
   * otherwise an orphan: claimed (see above), then revoked (DELETE with the client token;
     404/410 count as revoked). One the reconciler revoked that is still listed active is
     flagged (``revoked_but_active``), never sent a second DELETE. A refusal flags it
     (``revocation_refused``); a custodian that keeps failing flags it
     (``revocation_unavailable``) after ``RECONCILE_FLAG_AFTER_SECONDS`` and it is tried again
     at every pass (a DELETE that got no answer may have landed: the next one's 404/410 is
     recorded ``already_revoked``, not an error).

Every action is one log line (no token, code or customer data: the authorization URI names
only the custodian's id) and a count in ``scwadd_reconcile_actions_total{action,reason}``;
flagged ones are listed in ``auth_custodian_authorizations`` and counted by
``scwadd_orphan_authorizations_flagged{reason}``.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import xml.etree.ElementTree as ET
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from urllib.parse import urljoin, urlsplit

import httpx
from scwadd_core.bus import Bus
from scwadd_core.custodian import Custodian, CustodianError, RevokeOutcome, bearer
from scwadd_core.db import as_utc, in_transaction
from sqlalchemy import func, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session, sessionmaker

from scwadd_auth import exchanges, metrics
from scwadd_auth.models import CustodianAuthorization, Grant, JobStatus, Lease
from scwadd_auth.settings import AuthSettings
from scwadd_auth.status import REVOKED_OUTCOMES

log = logging.getLogger("scwadd_auth.reconciler")

LEASE_NAME = "reconciler"
ATOM = "{http://www.w3.org/2005/Atom}"
ESPI = "{http://naesb.org/espi}"
# Bounds on what the custodian's list may cost us.
MAX_PAGE_BYTES = 8 * 1024 * 1024
MAX_PAGES = 200
MAX_ENTRIES = 100_000
# An exchange that started this long before an authorization's recorded creation still counts
# as possibly its own (the custodian's clock and ours differ).
CLOCK_SKEW = timedelta(minutes=2)
# Epoch values this large are milliseconds (older PG&E Authorization documents carry them;
# 10**11 seconds would be the year 5138, so the reading is unambiguous).
MILLISECONDS_FROM = 10**11

# ``auth_custodian_authorizations.state``: what the reconciler did about an authorization.
SEEN, REVOKING, REVOKED, ALREADY_REVOKED, FLAGGED = (
    "seen",
    "revoking",
    "revoked",
    "already_revoked",
    "flagged",
)
# States in which the reconciler has sent (or is sending) its DELETE: a code exchange that
# finds one gives up rather than hand the grant to the exporter (a second DELETE).
ORPHAN_REVOCATION = (REVOKING, REVOKED, ALREADY_REVOKED)


FLAG_REASONS = (
    "revocation_refused",
    "revocation_unavailable",
    "pipeline_overdue",
    "revoked_but_active",
    "foreign_uri",
)


class FeedError(ValueError):
    """The custodian's Authorization list could not be read; the pass is given up."""


@dataclass(frozen=True)
class ListedAuthorization:
    """One ESPI Authorization of the custodian's list: its URI, status and creation time."""

    authorization_uri: str
    status: int | None
    created_at: datetime | None
    # The third party's own Authorization (client_credentials, resourceURI its Batch/Bulk) is
    # listed beside its customers' (PG&E's Share My Data API, "Authorization"): it is the
    # registration itself, never a customer's consent, and must never be revoked.
    registration: bool = False

    @property
    def active(self) -> bool:
        return self.status == 1 and not self.registration


def _epoch(text: str | None) -> datetime | None:
    if text is None or not text.strip().lstrip("-").isdigit():
        return None
    value = int(text.strip())
    if abs(value) >= MILLISECONDS_FROM:
        value //= 1000
    try:
        return datetime.fromtimestamp(value, UTC)
    except (OverflowError, OSError, ValueError):
        return None


def parse_authorization_feed(body: bytes) -> tuple[list[ListedAuthorization], str | None]:
    """The Authorizations of one Atom page and its ``next`` link (None on the last page).

    Raises :class:`FeedError` for a body that is too big, declares a DTD (entity expansion)
    or is not an Atom feed. An entry without an ``authorizationURI`` falls back to its
    ``self`` link (the Authorization's own URL, which is what ESPI puts there).
    """
    if len(body) > MAX_PAGE_BYTES:
        raise FeedError(f"the Authorization list page is larger than {MAX_PAGE_BYTES} bytes")
    if b"<!DOCTYPE" in body or b"<!ENTITY" in body:
        raise FeedError("the Authorization list declares a DTD; refused")
    try:
        root = ET.fromstring(body)  # noqa: S314 - size-bounded, no DTD (checked above)
    except ET.ParseError as exc:
        raise FeedError(f"the Authorization list is not well-formed XML ({exc})") from None
    if root.tag == f"{ATOM}entry":
        entries = [root]
    elif root.tag == f"{ATOM}feed":
        entries = root.findall(f"{ATOM}entry")
    else:
        raise FeedError(f"the Authorization list is not an Atom feed (root {root.tag[:80]!r})")
    found: list[ListedAuthorization] = []
    for entry in entries:
        item = entry.find(f"{ATOM}content/{ESPI}Authorization")
        if item is None:
            continue
        uri = (item.findtext(f"{ESPI}authorizationURI") or "").strip()
        if not uri:
            uri = _link(entry, "self") or ""
        if not uri:
            continue
        status_text = (item.findtext(f"{ESPI}status") or "").strip()
        resource_uri = (item.findtext(f"{ESPI}resourceURI") or "").strip()
        grant_type = (item.findtext(f"{ESPI}grant_type") or "").strip()
        found.append(
            ListedAuthorization(
                authorization_uri=uri,
                status=int(status_text) if status_text.isdigit() else None,
                created_at=_epoch(item.findtext(f"{ESPI}authorizedPeriod/{ESPI}start")),
                registration=grant_type == "client_credentials" or "/Batch/Bulk/" in resource_uri,
            )
        )
    return found, (_link(root, "next") if root.tag == f"{ATOM}feed" else None)


def _link(element: ET.Element, rel: str) -> str | None:
    for link in element.findall(f"{ATOM}link"):
        if link.get("rel") == rel and link.get("href"):
            return link.get("href")
    return None


def normalise_uri(uri: str) -> str:
    """Scheme and host compared case-insensitively, no trailing slash: the same resource."""
    parts = urlsplit(uri.strip())
    path = parts.path.rstrip("/")
    return f"{parts.scheme.lower()}://{parts.netloc.lower()}{path}"


# -- the lease ------------------------------------------------------------------------------
def take_lease(
    sessions: sessionmaker[Session], holder: str, seconds: float, now: datetime | None = None
) -> bool:
    """Hold (or renew) the reconciler's lease for ``seconds``; False while another holds it.

    A compare-and-set UPDATE on one row (who holds it, until when), with a first INSERT that
    only one replica can win (primary key): the same on SQLite and PostgreSQL.
    """
    now = now or datetime.now(UTC)
    until = now + timedelta(seconds=seconds)
    with sessions.begin() as session:
        result = session.execute(
            update(Lease)
            .where(Lease.name == LEASE_NAME)
            .where((Lease.holder == holder) | (Lease.expires_at < now))
            .values(holder=holder, expires_at=until)
            .execution_options(synchronize_session=False)
        )
        if int(result.rowcount) == 1:  # type: ignore[attr-defined]
            return True
        if session.get(Lease, LEASE_NAME) is not None:
            return False
    try:
        with sessions.begin() as session:
            session.add(Lease(name=LEASE_NAME, holder=holder, expires_at=until))
    except IntegrityError:
        return False  # another replica created it first
    return True


def release_lease(sessions: sessionmaker[Session], holder: str) -> None:
    with sessions.begin() as session:
        session.execute(
            update(Lease)
            .where(Lease.name == LEASE_NAME, Lease.holder == holder)
            .values(expires_at=datetime(1970, 1, 1, tzinfo=UTC))
            .execution_options(synchronize_session=False)
        )


# -- one pass ---------------------------------------------------------------------------------
@dataclass(frozen=True)
class _Known:
    """What auth's own tables say, read after the custodian's list (see ``reconcile_once``)."""

    grants: dict[str, tuple[datetime, str | None]]  # uri -> (consent time, revocation)
    pending_exchanges: list[datetime]
    records: dict[str, CustodianAuthorization]


def _read_known(session: Session) -> _Known:
    rows = session.execute(
        select(Grant.authorization_uri, Grant.created_at, JobStatus.revocation).join(
            JobStatus, JobStatus.job_id == Grant.job_id, isouter=True
        )
    ).all()
    grants = {
        normalise_uri(uri): (as_utc(created), revocation) for uri, created, revocation in rows
    }
    records = {
        r.authorization_uri: r for r in session.scalars(select(CustodianAuthorization)).all()
    }
    for record in records.values():
        session.expunge(record)
    pending = [as_utc(t) for t in exchanges.pending_since(session)]
    return _Known(grants=grants, pending_exchanges=pending, records=records)


class Reconciler:
    """One replica's reconciler; :meth:`run` loops, :meth:`reconcile_once` is one pass."""

    def __init__(
        self,
        *,
        settings: AuthSettings,
        sessions: sessionmaker[Session],
        custodian: Custodian,
        holder: str,
    ) -> None:
        self.settings = settings
        self.sessions = sessions
        self.custodian = custodian
        self.holder = holder
        self.list_url = f"{settings.PGE_API_BASE}/Authorization"
        api = urlsplit(settings.PGE_API_BASE)
        self._api_origin = f"{api.scheme.lower()}://{api.netloc.lower()}"
        for reason in FLAG_REASONS:
            metrics.ORPHANS_FLAGGED.labels(reason)

    @property
    def lease_seconds(self) -> float:
        # Renewed at every pass; a holder that died is replaced after about two periods.
        return max(2.5 * self.settings.RECONCILE_INTERVAL_SECONDS, 5.0)

    async def run(self, bus: Bus) -> None:
        """Every ``RECONCILE_INTERVAL_SECONDS``, a pass if this replica holds the lease, until
        ``bus`` is stopping."""
        interval = self.settings.RECONCILE_INTERVAL_SECONDS
        try:
            while not bus.stopping:
                try:
                    held = await asyncio.to_thread(
                        take_lease, self.sessions, self.holder, self.lease_seconds
                    )
                    if held:
                        await self.reconcile_once()
                except Exception:
                    metrics.RECONCILE_PASSES.labels("failed").inc()
                    log.exception("reconciler pass failed; trying again next period")
                await bus.sleep_unless_stopping(interval)
        finally:
            try:
                await asyncio.to_thread(release_lease, self.sessions, self.holder)
            except Exception:
                log.warning("could not release the reconciler lease; it will expire")

    async def list_authorizations(self) -> list[ListedAuthorization]:
        """Every Authorization the custodian lists for our client ID (all pages)."""
        found: list[ListedAuthorization] = []
        url: str | None = self.list_url
        pages = 0
        while url is not None:
            pages += 1
            if pages > MAX_PAGES:
                raise FeedError(f"the Authorization list has more than {MAX_PAGES} pages")
            if not self._ours(url):
                raise FeedError("the Authorization list links outside the custodian's API")
            body = await self._get(url)
            items, following = parse_authorization_feed(body)
            found.extend(items)
            if len(found) > MAX_ENTRIES:
                raise FeedError(f"the Authorization list has more than {MAX_ENTRIES} entries")
            url = urljoin(url, following) if following else None
        return found

    async def _get(self, url: str) -> bytes:
        for attempt in range(2):
            token = await self.custodian.client_token()
            try:
                async with self.custodian.http.stream(
                    "GET", url, headers=bearer(token) | {"Accept": "application/atom+xml"}
                ) as response:
                    if response.status_code in (401, 403) and attempt == 0:
                        self.custodian.forget_client_token()
                        continue
                    if response.status_code != 200:
                        raise CustodianError(
                            f"Authorization list failed with HTTP {response.status_code}",
                            status_code=response.status_code,
                        )
                    chunks: list[bytes] = []
                    size = 0
                    async for chunk in response.aiter_bytes():
                        size += len(chunk)
                        if size > MAX_PAGE_BYTES:
                            raise FeedError(
                                f"the Authorization list page is larger than {MAX_PAGE_BYTES} bytes"
                            )
                        chunks.append(chunk)
                    return b"".join(chunks)
            except httpx.HTTPError as exc:
                raise CustodianError(f"Authorization list failed: {type(exc).__name__}") from exc
        raise CustodianError("Authorization list refused the client token", status_code=401)

    def _ours(self, uri: str) -> bool:
        parts = urlsplit(uri)
        return f"{parts.scheme.lower()}://{parts.netloc.lower()}" == self._api_origin

    async def reconcile_once(self, now: datetime | None = None) -> dict[str, int]:
        """One pass; returns how many authorizations took each action (for tests and logs)."""
        try:
            listed = await self.list_authorizations()
        except (CustodianError, FeedError) as exc:
            metrics.RECONCILE_PASSES.labels("failed").inc()
            log.warning("reconciler could not list our authorizations", extra={"why": str(exc)})
            return {"failed": 1}
        # Our own tables are read after the list, so an exchange that finished meanwhile is
        # seen as a grant (its ledger row and its "granted" are one transaction).
        known = await in_transaction(self.sessions, _read_known)
        now = now or datetime.now(UTC)
        counts: dict[str, int] = {}
        for item in listed:
            if not item.active:
                continue
            action = await self._consider(item, known, now)
            if action:
                counts[action] = counts.get(action, 0) + 1
        await in_transaction(self.sessions, _refresh_flag_gauge)
        metrics.RECONCILE_PASSES.labels("ok").inc()
        log.info(
            "reconciler pass",
            extra={"listed": len(listed), "active": sum(i.active for i in listed), **counts},
        )
        return counts

    async def _consider(
        self, item: ListedAuthorization, known: _Known, now: datetime
    ) -> str | None:
        uri = normalise_uri(item.authorization_uri)
        record = known.records.get(uri)
        grant = known.grants.get(uri)
        if grant is not None:
            return await self._check_owned(uri, record, grant, now)
        if (
            record is not None
            and record.state == "flagged"
            and record.reason
            in (
                "revocation_refused",
                "foreign_uri",
                "revoked_but_active",
            )
        ):
            return None  # the operator's now; refusing again would only repeat the log line
        if record is not None and record.state in (REVOKED, ALREADY_REVOKED):
            # Our DELETE was answered, yet it is listed active: a second DELETE is not the
            # answer (it would be answered 410, or revoke twice); the operator's matter.
            await self._flag(
                uri, "revoked_but_active", "revoked as an orphan, still listed active", now
            )
            return "flagged"
        first_seen = as_utc(record.first_seen_at) if record is not None else now
        if record is None:
            # Another pass may note it meanwhile (a replica taking over the lease): then seen.
            with contextlib.suppress(IntegrityError):
                await in_transaction(self.sessions, lambda s: _note_seen(s, uri, now))
        born = min(item.created_at or first_seen, first_seen)
        if (now - first_seen).total_seconds() < self.settings.RECONCILE_GRACE_SECONDS:
            return "waiting"
        if any(started >= born - CLOCK_SKEW for started in known.pending_exchanges):
            return "waiting"
        if not self._ours(item.authorization_uri):
            await self._flag(uri, "foreign_uri", "its URI is not on PGE_API_BASE's host", now)
            return "flagged"
        return await self._revoke(uri, item.authorization_uri, first_seen, born, now)

    async def _check_owned(
        self,
        uri: str,
        record: CustodianAuthorization | None,
        grant: tuple[datetime, str | None],
        now: datetime,
    ) -> str | None:
        consent_at, revocation = grant
        if record is not None and record.state == "flagged":
            return None
        if revocation in REVOKED_OUTCOMES:
            # The exporter said revoked, the custodian lists it active: an operator's matter
            # (revoking it again is not ours to decide: the exporter owns that grant).
            await self._flag(
                uri, "revoked_but_active", "reported revoked, still listed active", now
            )
            return "flagged"
        overdue = timedelta(
            minutes=self.settings.GRANT_DEADLINE_MINUTES + self.settings.RECONCILE_OVERDUE_MINUTES
        )
        if now - consent_at > overdue and revocation is None:
            await self._flag(
                uri,
                "pipeline_overdue",
                "still active long after the pipeline's deadline; check the exporter's grants",
                now,
            )
            return "flagged"
        return None

    async def _revoke(
        self, uri: str, target: str, first_seen: datetime, born: datetime, now: datetime
    ) -> str | None:
        # Claimed at the DELETE, not at the list: the pass's snapshot of our tables may be a
        # while old by now (see the module's docstring).
        stale_before = datetime.now(UTC) - timedelta(seconds=self.lease_seconds)
        try:
            await in_transaction(
                self.sessions, lambda s: _claim(s, uri, born, datetime.now(UTC), stale_before)
            )
        except _ClaimLost as lost:
            log.info(
                "authorization not revoked: it has an owner now",
                extra={"authorization": uri, "outcome": lost.outcome},
            )
            return "waiting" if lost.outcome == "waiting" else None
        try:
            outcome = await self.custodian.revoke(target)
        except CustodianError as exc:
            detail = str(exc)[:300]
            if not exc.retryable:
                await self._flag(uri, "revocation_refused", detail, now)
                return "flagged"
            waited = (now - first_seen).total_seconds()
            if waited >= self.settings.RECONCILE_FLAG_AFTER_SECONDS:
                await self._flag(uri, "revocation_unavailable", str(exc)[:300], now)
                return "flagged"
            await in_transaction(self.sessions, lambda s: _set(s, uri, "seen", None, detail, now))
            metrics.RECONCILE_ACTIONS.labels("retry", "revocation_unavailable").inc()
            log.warning(
                "orphaned authorization not revoked yet; retrying next pass",
                extra={"authorization": uri, "why": str(exc)},
            )
            return "retry"
        action = "revoked" if outcome is RevokeOutcome.REVOKED else "already_revoked"
        await in_transaction(self.sessions, lambda s: _set(s, uri, action, "orphan", None, now))
        metrics.RECONCILE_ACTIONS.labels(action, "orphan").inc()
        log.warning(
            "orphaned authorization revoked (no grant owned it)",
            extra={"authorization": uri, "outcome": action},
        )
        return action

    async def _flag(self, uri: str, reason: str, detail: str, now: datetime) -> None:
        changed = await in_transaction(
            self.sessions, lambda s: _set(s, uri, "flagged", reason, detail, now)
        )
        if changed:
            metrics.RECONCILE_ACTIONS.labels("flagged", reason).inc()
            log.error(
                "authorization at the custodian flagged for the operator: NOT revoked",
                extra={"authorization": uri, "reason": reason, "detail": detail},
            )


class _ClaimLost(Exception):
    """The claim's transaction is rolled back: a grant or a pending exchange owns it now."""

    def __init__(self, outcome: str) -> None:
        super().__init__(outcome)
        self.outcome = outcome


def _grant_owns(session: Session, uri: str) -> bool:
    """Does a ledger row name the (normalised) authorization ``uri``?"""
    tail = uri.rsplit("/", 1)[-1]
    candidates = session.scalars(
        select(Grant.authorization_uri).where(
            Grant.authorization_uri.contains(tail, autoescape=True)
        )
    )
    return any(normalise_uri(found) == uri for found in candidates)


def _claim(
    session: Session, uri: str, born: datetime, now: datetime, stale_before: datetime
) -> None:
    """Take the right to DELETE the orphan ``uri`` (its row ``seen`` → ``revoking``).

    The UPDATE comes first, so it holds the row (PostgreSQL's row lock, SQLite's write lock)
    against :func:`orphan_revocation_claimed` before the ledger is read again. Claimable: a row
    still ``seen``, one flagged ``revocation_unavailable`` (tried again at every pass), and a
    ``revoking`` claim not renewed since ``stale_before`` (its reconciler died mid-DELETE).
    Raises :class:`_ClaimLost` (``owned``, ``waiting``) so the caller's transaction rolls back.
    """
    claimable = (
        (CustodianAuthorization.state == SEEN)
        | (
            (CustodianAuthorization.state == FLAGGED)
            & (CustodianAuthorization.reason == "revocation_unavailable")
        )
        | (
            (CustodianAuthorization.state == REVOKING)
            & (CustodianAuthorization.updated_at < stale_before)
        )
    )
    result = session.execute(
        update(CustodianAuthorization)
        .where(CustodianAuthorization.authorization_uri == uri, claimable)
        .values(state=REVOKING, updated_at=now)
        .execution_options(synchronize_session=False)
    )
    if int(result.rowcount) != 1:  # type: ignore[attr-defined]
        raise _ClaimLost("waiting")
    if _grant_owns(session, uri):
        raise _ClaimLost("owned")
    if any(started >= born - CLOCK_SKEW for started in exchanges.pending_since(session)):
        raise _ClaimLost("waiting")


def orphan_revocation_claimed(session: Session, authorization_uri: str, now: datetime) -> bool:
    """For the code exchange, in the transaction that would record the grant: True if the
    reconciler has claimed (or revoked) ``authorization_uri`` as an orphan, so recording it
    would make a second DELETE (the exporter's). The row is written first (locked until the
    caller commits), so a claim cannot slip in between this answer and the ledger row."""
    uri = normalise_uri(authorization_uri)
    session.execute(
        update(CustodianAuthorization)
        .where(CustodianAuthorization.authorization_uri == uri)
        .values(updated_at=CustodianAuthorization.updated_at)
        .execution_options(synchronize_session=False)
    )
    state = session.scalar(
        select(CustodianAuthorization.state).where(CustodianAuthorization.authorization_uri == uri)
    )
    return state in ORPHAN_REVOCATION


def _note_seen(session: Session, uri: str, now: datetime) -> None:
    if session.get(CustodianAuthorization, uri) is None:
        session.add(
            CustodianAuthorization(
                authorization_uri=uri, first_seen_at=now, state="seen", attempts=0, updated_at=now
            )
        )


def _set(
    session: Session, uri: str, state: str, reason: str | None, detail: str | None, now: datetime
) -> bool:
    """Record what was done; True if the state or reason changed."""
    row = session.get(CustodianAuthorization, uri)
    if row is None:
        row = CustodianAuthorization(
            authorization_uri=uri, first_seen_at=now, state="seen", attempts=0, updated_at=now
        )
        session.add(row)
    changed = (row.state, row.reason) != (state, reason)
    row.state, row.reason, row.detail, row.updated_at = state, reason, detail, now
    row.attempts = (row.attempts or 0) + 1
    return changed


def _refresh_flag_gauge(session: Session) -> None:
    counts = dict(
        session.execute(
            select(CustodianAuthorization.reason, func.count())
            .where(CustodianAuthorization.state == "flagged")
            .group_by(CustodianAuthorization.reason)
        ).all()
    )
    for reason in set(counts) | set(FLAG_REASONS):
        metrics.ORPHANS_FLAGGED.labels(reason or "unknown").set(counts.get(reason, 0))

"""The auth service's behaviour, independent of HTTP and of how events arrive.

``AuthService`` decides; :mod:`scwadd_auth.app` only translates requests and responses. Database
work is synchronous SQLAlchemy run in a worker thread, one transaction per step.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, Protocol, TypeVar
from urllib.parse import urlencode

from scwadd_core.custodian import CustodianError, TokenResponse
from scwadd_core.events import Event, ExportCompleted, GrantRevoked, JobProgress
from scwadd_core.logs import job_context
from scwadd_core.sealing import Keyring
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session, sessionmaker

from scwadd_auth import ledger, metrics, oauth_state, status
from scwadd_auth.models import Grant, JobStatus
from scwadd_auth.oauth_state import Verdict
from scwadd_auth.settings import AuthSettings

log = logging.getLogger("scwadd_auth")

T = TypeVar("T")
Publish = Callable[[Event], Awaitable[Any]]

INLINE_PUBLISH_SECONDS = 3.0


class CodeExchanger(Protocol):
    async def exchange_code(self, code: str, redirect_uri: str) -> TokenResponse: ...


@dataclass(frozen=True)
class Outcome:
    """What the browser gets: a redirect, or a page with a status code."""

    status_code: int
    location: str | None = None
    heading: str = ""
    sentence: str = ""
    start_over: bool = False


_STATE_SENTENCES = {
    Verdict.MISSING: "This link is missing its security check (the state parameter).",
    Verdict.UNKNOWN: "This link's security check is not one we issued.",
    Verdict.EXPIRED: "This link has expired: it was meant to be used within a few minutes.",
    Verdict.FOREIGN: "This link was started in a different browser, so we cannot accept it here.",
    Verdict.REUSED: "This link has already been used.",
}
_STATE_REJECTED_HEADING = "We could not accept this link"
_DENIED = Outcome(
    200,
    heading="Nothing was shared",
    sentence="You did not give us permission at PG&E, so nothing was shared. You do not need "
    "to do anything else.",
    start_over=True,
)
_INVALID_REQUEST = Outcome(
    400,
    heading="PG&E could not process the request",
    sentence="PG&E said our request was not valid, so nothing was shared. Please try again; if "
    "it happens again, contact us.",
    start_over=True,
)
_CUSTODIAN_ERROR = Outcome(
    502,
    heading="PG&E could not complete the request",
    sentence="PG&E reported a problem, so nothing was shared. Please try again later.",
    start_over=True,
)
_EXCHANGE_FAILED = Outcome(
    502,
    heading="PG&E did not confirm your permission",
    sentence="We could not confirm your permission with PG&E, so nothing will be read. Please "
    "try again in a few minutes.",
    start_over=True,
)


class AuthService:
    def __init__(
        self,
        *,
        settings: AuthSettings,
        sessions: sessionmaker[Session],
        keyring: Keyring,
        custodian: CodeExchanger,
        publish: Publish,
    ) -> None:
        self.settings = settings
        self.sessions = sessions
        self.keyring = keyring
        self.custodian = custodian
        self.publish = publish

    async def _db(self, work: Callable[[Session], T]) -> T:
        def run() -> T:
            with self.sessions.begin() as session:
                return work(session)

        return await asyncio.to_thread(run)

    # -- the redirect to the custodian -----------------------------------------------------
    async def start_authorization(self, browser_token: str | None) -> tuple[str, str]:
        """A fresh state bound to this browser; returns (custodian URL, browser token)."""
        token = browser_token or oauth_state.new_browser_token()
        ttl = timedelta(seconds=self.settings.OAUTH_STATE_TTL_SECONDS)
        issued = await self._db(lambda s: oauth_state.issue_state(s, token, ttl))
        query = urlencode(
            {
                "client_id": self.settings.PGE_CLIENT_ID,
                "redirect_uri": self.settings.redirect_uri,
                "response_type": "code",
                "state": issued.state,
            }
        )
        separator = "&" if "?" in self.settings.PGE_AUTHORIZE_URL else "?"
        return f"{self.settings.PGE_AUTHORIZE_URL}{separator}{query}", token

    # -- the callback ----------------------------------------------------------------------
    async def callback(self, params: dict[str, str], browser_token: str | None) -> Outcome:
        code, state, error = params.get("code"), params.get("state"), params.get("error")
        claim = await self._db(
            lambda s: oauth_state.claim_state(s, state, browser_token, None if error else code)
        )
        if error is not None:
            # Whatever the state's verdict, nothing is published on an error redirect; a valid
            # state is consumed above so the link cannot be replayed.
            return self._error_outcome(error)
        if claim.verdict == Verdict.REPLAY and not await self._status_exists(claim.status_id):
            # The first use of this code did not produce a grant (or has not yet): nothing to show.
            claim = oauth_state.Claim(Verdict.REUSED)
        if claim.verdict == Verdict.REPLAY:
            metrics.GRANTS.labels("duplicate").inc()
            log.info("duplicate callback: showing the existing status page")
            return Outcome(303, location=f"/status/{claim.status_id}")
        if claim.verdict != Verdict.CLAIMED:
            metrics.GRANTS.labels("state_rejected").inc()
            log.warning("callback refused", extra={"verdict": claim.verdict.value})
            return Outcome(
                400,
                heading=_STATE_REJECTED_HEADING,
                sentence=_STATE_SENTENCES[claim.verdict] + " Nothing was shared.",
                start_over=True,
            )
        assert claim.job_id is not None and claim.status_id is not None
        if not code:
            metrics.GRANTS.labels("invalid_request").inc()
            return _INVALID_REQUEST
        with job_context(claim.job_id):
            return await self._exchange(claim.job_id, claim.status_id, code)

    def _error_outcome(self, error: str) -> Outcome:
        if error == "access_denied":
            metrics.GRANTS.labels("denied").inc()
            log.info("customer declined consent")
            return _DENIED
        if error == "invalid_request":
            metrics.GRANTS.labels("invalid_request").inc()
            log.warning("custodian answered invalid_request")
            return _INVALID_REQUEST
        metrics.GRANTS.labels("custodian_error").inc()
        log.warning("custodian answered an error", extra={"error": error[:64]})
        return _CUSTODIAN_ERROR

    async def _exchange(self, job_id: str, status_id: str, code: str) -> Outcome:
        try:
            tokens = await self.custodian.exchange_code(code, self.settings.redirect_uri)
        except CustodianError as exc:
            metrics.GRANTS.labels("exchange_failed").inc()
            log.warning("code exchange failed", extra={"status": exc.status_code, "why": str(exc)})
            return _EXCHANGE_FAILED
        now = datetime.now(UTC)
        try:
            event = ledger.build_grant_event(
                job_id=job_id, tokens=tokens, keyring=self.keyring, now=now
            )
        except ledger.IncompleteGrant as exc:
            metrics.GRANTS.labels("incomplete").inc()
            log.error("token answer unusable", extra={"why": str(exc)})
            return _EXCHANGE_FAILED
        try:
            await self._db(lambda s: ledger.record_grant(s, status_id=status_id, event=event))
        except IntegrityError:
            # Only a concurrent duplicate of this very callback can collide on job_id.
            metrics.GRANTS.labels("duplicate").inc()
            return Outcome(303, location=f"/status/{status_id}")
        metrics.GRANTS.labels("received").inc()
        log.info("grant recorded", extra={"subscription": event.subscription_id})
        await self._publish_one(event, path="inline")
        return Outcome(303, location=f"/status/{status_id}")

    # -- the outbox ------------------------------------------------------------------------
    async def _publish_one(self, event: Any, *, path: str) -> bool:
        try:
            # Bounded, so a NATS outage does not hold the customer's browser: the row is
            # committed already, and a publish cut short here is repeated by the sweep with the
            # same Nats-Msg-Id (stored once even if this attempt did arrive).
            await asyncio.wait_for(self.publish(event), timeout=INLINE_PUBLISH_SECONDS)
        except Exception as exc:
            # The row stays unpublished; the outbox sweep sends it when the bus is back.
            log.warning("grant.received not published yet", extra={"why": type(exc).__name__})
            await self._db(lambda s: ledger.note_publish_failure(s, event.job_id))
            return False
        await self._db(lambda s: ledger.mark_published(s, event.job_id))
        metrics.OUTBOX_PUBLISHED.labels(path).inc()
        return True

    async def sweep_outbox(self) -> int:
        """Publish every ledger row not yet marked published (at start and periodically)."""
        pending = await self._db(ledger.unpublished)
        sent = 0
        for event in pending:
            with job_context(event.job_id):
                if await self._publish_one(event, path="sweep"):
                    sent += 1
        return sent

    # -- events from the other services -----------------------------------------------------
    async def on_event(self, event: Event) -> None:
        if isinstance(event, JobProgress):
            await self._db(
                lambda s: status.apply_progress(s, event.job_id, event.phase, event.message)
            )
        elif isinstance(event, ExportCompleted):
            await self._db(lambda s: status.apply_export_completed(s, event.job_id, event.rows))
        elif isinstance(event, GrantRevoked):
            await self._db(
                lambda s: status.apply_revoked(s, event.job_id, event.outcome, event.reason)
            )

    # -- the status page -------------------------------------------------------------------
    async def status_view(self, status_id: str) -> status.StatusView | None:
        def read(session: Session) -> status.StatusView | None:
            row = session.query(JobStatus).filter(JobStatus.status_id == status_id).one_or_none()
            return status.view(row) if row is not None else None

        return await self._db(read)

    async def _status_exists(self, status_id: str | None) -> bool:
        if status_id is None:
            return False
        return await self.status_view(status_id) is not None

    async def grant_count(self) -> int:
        return await self._db(lambda s: s.query(Grant).count())

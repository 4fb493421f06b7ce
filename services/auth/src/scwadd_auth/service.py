"""The auth service's behaviour, independent of HTTP and of how events arrive.

``AuthService`` decides; :mod:`scwadd_auth.http` only translates requests and responses. Database
work is synchronous SQLAlchemy run in a worker thread, one transaction per step.
"""

from __future__ import annotations

import asyncio
import logging
import random
import secrets
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from functools import partial
from typing import Any, Protocol, TypeVar
from urllib.parse import urlencode

from scwadd_core.custodian import CustodianError, TokenResponse
from scwadd_core.db import as_utc, in_transaction
from scwadd_core.events import Event, ExportCompleted, GrantRevoked, JobProgress, SealedSecret
from scwadd_core.logs import job_context
from scwadd_core.sealing import Keyring
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session, sessionmaker

from scwadd_auth import exchanges, ledger, metrics, oauth_state, reconciler, status
from scwadd_auth.models import Grant, JobStatus
from scwadd_auth.oauth_state import Verdict
from scwadd_auth.settings import AuthSettings

log = logging.getLogger("scwadd_auth")

T = TypeVar("T")
Publish = Callable[[Event], Awaitable[Any]]

INLINE_PUBLISH_SECONDS = 3.0
# The exchange's failure reason when the reconciler had already taken its authorization for an
# orphan (the callback came too late): the reconciler revokes it, the pipeline never sees it.
ORPHAN_REVOKED = "revoked_as_orphan"


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
_EXCHANGE_FAILED_HEADING = "PG&E did not confirm your permission"


class ExchangeFailed(Exception):
    """The exchange was given up: a refusal (4xx), an unusable answer, or its deadline."""


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
        # This process's name as an exchange holder (exchanges.owner).
        self.owner = f"auth-{secrets.token_hex(6)}"
        self._tasks: dict[str, asyncio.Task[str]] = {}

    # -- the redirect to the custodian -----------------------------------------------------
    async def start_authorization(self, browser_token: str | None) -> tuple[str, str]:
        """A fresh state bound to this browser; returns (custodian URL, browser token)."""
        token = browser_token or oauth_state.new_browser_token()
        ttl = timedelta(seconds=self.settings.OAUTH_STATE_TTL_SECONDS)
        issued = await in_transaction(
            self.sessions, lambda s: oauth_state.issue_state(s, token, ttl)
        )
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
        now = datetime.now(UTC)

        def claim_and_record(session: Session) -> oauth_state.Claim:
            claim = oauth_state.claim_state(session, state, browser_token, None if error else code)
            if claim.verdict == Verdict.CLAIMED and code and error is None:
                # In the claim's transaction: whoever sees the state used also sees the pending
                # exchange and the status page it will end on.
                assert claim.job_id is not None and claim.status_id is not None
                self._open_exchange(session, claim.job_id, claim.status_id, code, now)
            return claim

        claim = await in_transaction(self.sessions, claim_and_record)
        if error is not None:
            if claim.verdict not in (Verdict.CLAIMED, Verdict.REPLAY):
                # Without a valid state the error is anybody's word: say only that the link is
                # not accepted, nothing about what did or did not happen at PG&E.
                metrics.GRANTS.labels("state_rejected").inc()
                log.warning("error callback refused", extra={"verdict": claim.verdict.value})
                return self._state_rejected(claim.verdict, claims_result=False)
            # A valid state is consumed above so the link cannot be replayed; nothing is
            # published on an error redirect.
            return self._error_outcome(error)
        if claim.verdict == Verdict.REPLAY and claim.status_id is not None:
            metrics.GRANTS.labels("duplicate").inc()
            log.info("duplicate callback: waiting for the first, then its status page")
            await self._wait_for_exchange(claim.job_id)
            return Outcome(303, location=f"/status/{claim.status_id}")
        if claim.verdict not in (Verdict.CLAIMED, Verdict.REPLAY):
            metrics.GRANTS.labels("state_rejected").inc()
            log.warning("callback refused", extra={"verdict": claim.verdict.value})
            return self._state_rejected(claim.verdict, claims_result=True, had_code=bool(code))
        if claim.verdict != Verdict.CLAIMED or claim.job_id is None or claim.status_id is None:
            return self._state_rejected(Verdict.REUSED, claims_result=True)
        if not code:
            metrics.GRANTS.labels("invalid_request").inc()
            return _INVALID_REQUEST
        job_id, status_id = claim.job_id, claim.status_id
        with job_context(job_id):
            task = self._start_exchange(job_id, code)
            done, _ = await asyncio.wait({task}, timeout=self.settings.CALLBACK_WAIT_SECONDS)
            if not done:
                # The retries go on behind the status page, which says "not confirmed yet".
                log.info("code exchange still being retried; showing the status page")
                return Outcome(303, location=f"/status/{status_id}")
            result = task.result()
        if result == exchanges.FAILED:
            return self._exchange_failed_outcome()
        return Outcome(303, location=f"/status/{status_id}")

    def _state_rejected(
        self, verdict: Verdict, *, claims_result: bool, had_code: bool = False
    ) -> Outcome:
        sentence = _STATE_SENTENCES[verdict]
        if claims_result:
            sentence += " We did not use it, so we read nothing."
            if had_code:
                # The customer may well have said yes at PG&E (a late return, a second tab):
                # that authorization is ours to end.
                sentence += (
                    " If PG&E shows us as authorized, we will revoke it within "
                    f"{self.settings.orphan_revoke_minutes} minutes."
                )
        else:
            sentence += " If you meant to share your data, please start again."
        return Outcome(400, heading=_STATE_REJECTED_HEADING, sentence=sentence, start_over=True)

    def _exchange_failed_outcome(self) -> Outcome:
        return Outcome(
            502,
            heading=_EXCHANGE_FAILED_HEADING,
            sentence=status.exchange_failed_sentence(self.settings.orphan_revoke_minutes),
            start_over=True,
        )

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

    # -- the code exchange, retried within the code's lifetime ------------------------------
    def _open_exchange(
        self, session: Session, job_id: str, status_id: str, code: str, now: datetime
    ) -> None:
        deadline = now + timedelta(seconds=self.settings.EXCHANGE_DEADLINE_SECONDS)
        sealed = self.keyring.seal(code, job_id=job_id).model_dump_json()
        exchanges.open_exchange(
            session,
            job_id=job_id,
            status_id=status_id,
            sealed_code=sealed,
            owner=self.owner,
            now=now,
            deadline=deadline,
        )

    def _start_exchange(self, job_id: str, code: str | None) -> asyncio.Task[str]:
        task = asyncio.create_task(self._run_exchange(job_id, code), name=f"exchange-{job_id}")
        self._tasks[job_id] = task
        task.add_done_callback(lambda _t: self._tasks.pop(job_id, None))
        return task

    async def _wait_for_exchange(self, job_id: str | None) -> None:
        """A second identical callback waits (bounded) for the first one's exchange."""
        if job_id is None:
            return
        task = self._tasks.get(job_id)
        if task is not None:
            await asyncio.wait({task}, timeout=self.settings.CALLBACK_WAIT_SECONDS)
            return
        # The first is on another replica: watch its row.
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self.settings.CALLBACK_WAIT_SECONDS
        while loop.time() < deadline:
            row = await in_transaction(self.sessions, lambda s: _exchange_state(s, job_id))
            if row is not None and row != exchanges.PENDING:
                return
            await asyncio.sleep(0.2)

    def _backoff(self, tries: int, retry_after: float | None) -> float:
        ceiling = min(
            self.settings.EXCHANGE_RETRY_MAX_SECONDS,
            self.settings.EXCHANGE_RETRY_INITIAL_SECONDS * 2 ** max(0, tries - 1),
        )
        # Full jitter (so replicas retrying after one outage spread out), never below what the
        # custodian asked for with Retry-After.
        return max(random.uniform(ceiling / 2, ceiling), retry_after or 0.0)  # noqa: S311

    async def _run_exchange(self, job_id: str, code: str | None) -> str:
        """Exchange the code until it is granted, refused, or its deadline; returns the final
        state (``granted``/``failed``), or ``pending`` if another holder took the row over."""
        with job_context(job_id):
            try:
                return await self._exchange_loop(job_id, code)
            except asyncio.CancelledError:
                raise
            except Exception:
                # The row stays pending; its claim runs out and a sweep takes it over.
                log.exception("code exchange interrupted; it will be taken over")
                return exchanges.PENDING

    async def _exchange_loop(self, job_id: str, code: str | None) -> str:
        row = await in_transaction(self.sessions, lambda s: _exchange_facts(s, job_id))
        if row is None:
            return exchanges.FAILED
        status_id, sealed_code, deadline = row
        if code is None:
            if sealed_code is None:
                return await self._give_up(job_id, "code_missing")
            code = self.keyring.open(SealedSecret.model_validate_json(sealed_code), job_id=job_id)
        tries = 0
        while True:
            now = datetime.now(UTC)
            if now >= deadline:
                return await self._give_up(job_id, "deadline")
            held = await in_transaction(
                self.sessions,
                partial(exchanges.renew, job_id=job_id, owner=self.owner, now=now, tried=True),
            )
            if not held:
                return exchanges.PENDING
            tries += 1
            try:
                tokens = await self.custodian.exchange_code(code, self.settings.redirect_uri)
            except CustodianError as exc:
                why = f"HTTP {exc.status_code}" if exc.status_code else "transport"
                if exc.error:
                    why += f" {exc.error[:40]}"
                pause = self._backoff(tries, exc.retry_after)
                remaining = (deadline - datetime.now(UTC)).total_seconds()
                if exc.retryable and pause < remaining:
                    metrics.EXCHANGE_RETRIES.inc()
                    log.warning(
                        "code exchange failed; retrying",
                        extra={"status": exc.status_code, "why": str(exc), "try": tries},
                    )
                    await asyncio.sleep(pause)
                    continue
                log.warning(
                    "code exchange failed", extra={"status": exc.status_code, "why": str(exc)}
                )
                return await self._give_up(job_id, why)
            return await self._record(job_id, status_id, tokens)

    async def _give_up(self, job_id: str, reason: str) -> str:
        now = datetime.now(UTC)
        sentence = status.exchange_failed_sentence(self.settings.orphan_revoke_minutes)
        decided = await in_transaction(
            self.sessions,
            lambda s: exchanges.finish(
                s,
                job_id,
                self.owner,
                now,
                state=exchanges.FAILED,
                reason=reason[:120],
                failure_sentence=sentence,
            ),
        )
        if not decided:
            return exchanges.PENDING
        metrics.GRANTS.labels("exchange_failed").inc()
        log.warning("code exchange given up", extra={"reason": reason[:120]})
        return exchanges.FAILED

    async def _record(self, job_id: str, status_id: str, tokens: TokenResponse) -> str:
        now = datetime.now(UTC)
        try:
            event = ledger.build_grant_event(
                job_id=job_id, tokens=tokens, keyring=self.keyring, now=now
            )
        except ledger.IncompleteGrant as exc:
            metrics.GRANTS.labels("incomplete").inc()
            log.error("token answer unusable", extra={"why": str(exc)})
            return await self._give_up(job_id, "incomplete")

        def record(session: Session) -> str | None:
            # First, so a reconciler's claim on this authorization and our ledger row are
            # decided one after the other: the grant goes to the exporter only if the
            # reconciler has not taken it for an orphan (one DELETE, never both).
            if reconciler.orphan_revocation_claimed(session, event.authorization_uri, now):
                sentence = status.exchange_failed_sentence(self.settings.orphan_revoke_minutes)
                decided = exchanges.finish(
                    session,
                    job_id,
                    self.owner,
                    now,
                    state=exchanges.FAILED,
                    reason=ORPHAN_REVOKED,
                    failure_sentence=sentence,
                )
                return exchanges.FAILED if decided else None
            if not exchanges.finish(session, job_id, self.owner, now, state=exchanges.GRANTED):
                return None
            ledger.record_grant(session, status_id=status_id, event=event)
            return exchanges.GRANTED

        try:
            recorded = await in_transaction(self.sessions, record)
        except IntegrityError:
            recorded = None
        if recorded == exchanges.FAILED:
            metrics.GRANTS.labels("exchange_failed").inc()
            log.warning(
                "code exchange given up: the reconciler is revoking its authorization",
                extra={"reason": ORPHAN_REVOKED},
            )
            return exchanges.FAILED
        if recorded is None:
            # Lost the row to another holder meanwhile: whatever it decides stands.
            metrics.GRANTS.labels("duplicate").inc()
            return exchanges.PENDING
        metrics.GRANTS.labels("received").inc()
        log.info("grant recorded", extra={"subscription": event.subscription_id})
        await self._publish_one(event, path="inline")
        return exchanges.GRANTED

    async def resume_exchanges(self) -> int:
        """Take over pending exchanges whose holder died, and go on retrying them."""
        now = datetime.now(UTC)
        taken = await in_transaction(
            self.sessions, lambda s: exchanges.take_over(s, self.owner, now)
        )
        for job_id in taken:
            if job_id not in self._tasks:
                log.info("taking over a pending code exchange", extra={"job": job_id})
                self._start_exchange(job_id, None)
        return len(taken)

    async def stop_exchanges(self) -> None:
        """Stop retrying (shutdown) and hand the pending exchanges over to the next sweep."""
        held = list(self._tasks)
        tasks = list(self._tasks.values())
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        now = datetime.now(UTC)
        await in_transaction(self.sessions, lambda s: exchanges.release(s, held, self.owner, now))

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
            await in_transaction(
                self.sessions, lambda s: ledger.note_publish_failure(s, event.job_id)
            )
            return False
        await in_transaction(self.sessions, lambda s: ledger.mark_published(s, event.job_id))
        metrics.OUTBOX_PUBLISHED.labels(path).inc()
        return True

    async def sweep_outbox(self) -> int:
        """Publish every ledger row not yet marked published (at start and periodically)."""
        pending = await in_transaction(self.sessions, ledger.unpublished)
        sent = 0
        for event in pending:
            with job_context(event.job_id):
                if await self._publish_one(event, path="sweep"):
                    sent += 1
        return sent

    async def outbox_pass(self) -> int:
        """One pass of the outbox, at start and then every few seconds: exchanges whose holder
        died are taken over (before the grant outbox runs), grants left unpublished are
        published with their stored event, expired OAuth states are purged. Returns how many
        grants it published."""
        await self.resume_exchanges()
        sent = await self.sweep_outbox()
        if sent:
            log.info("outbox: published grants left unpublished", extra={"count": sent})
        await in_transaction(self.sessions, oauth_state.purge_expired)
        return sent

    # -- events from the other services -----------------------------------------------------
    async def on_event(self, event: Event) -> None:
        if isinstance(event, JobProgress):
            await in_transaction(
                self.sessions,
                lambda s: status.apply_progress(s, event.job_id, event.phase, event.message),
            )
        elif isinstance(event, ExportCompleted):
            await in_transaction(
                self.sessions,
                lambda s: status.apply_export_completed(s, event.job_id, event.rows, event),
            )
        elif isinstance(event, GrantRevoked):
            await in_transaction(
                self.sessions,
                lambda s: status.apply_revoked(s, event.job_id, event.outcome, event.reason),
            )

    # -- the status page -------------------------------------------------------------------
    async def status_view(self, status_id: str) -> status.StatusView | None:
        def read(session: Session) -> status.StatusView | None:
            row = session.query(JobStatus).filter(JobStatus.status_id == status_id).one_or_none()
            if row is None:
                return None
            grant = session.get(Grant, row.job_id)
            return status.view(row, grant.scope if grant is not None else None)

        return await in_transaction(self.sessions, read)

    async def grant_count(self) -> int:
        return await in_transaction(self.sessions, lambda s: s.query(Grant).count())


def _exchange_facts(session: Session, job_id: str) -> tuple[str, str | None, datetime] | None:
    row = exchanges.get(session, job_id)
    if row is None:
        return None
    return row.status_id, row.sealed_code, as_utc(row.deadline)


def _exchange_state(session: Session, job_id: str) -> str | None:
    row = exchanges.get(session, job_id)
    return row.state if row is not None else None

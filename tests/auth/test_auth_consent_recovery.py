"""Issue 11, section 1: every consent that reached the custodian ends a grant, revoked, or
flagged; and the auth-facing points of section 3.

The real auth service (HTTP, bus, database, migrations) against the real sandbox over mutual
TLS, with the sandbox's fault injection; nothing is mocked. Waits poll a fact with a generous
deadline.
"""

from __future__ import annotations

import asyncio
import base64
import inspect
import logging
import re
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import parse_qs, urlsplit

import httpx
import pytest
from auth_support import auth_settings, grant_events, running_auth
from custodian_support import custodian_config
from scwadd_auth import exchanges, reconciler
from scwadd_auth.models import CustodianAuthorization, Exchange
from scwadd_core.custodian import Custodian
from scwadd_core.db import make_engine, run_migrations, session_factory
from scwadd_core.logs import make_formatter
from scwadd_core.sealing import Keyring
from scwadd_sandbox.faults import EndpointFaults, FaultConfig
from test_auth_service import begin, consent

pytestmark = pytest.mark.anyio

FAST_RECONCILER = {
    "RECONCILE_INTERVAL_SECONDS": 0.5,
    "RECONCILE_GRACE_SECONDS": 0.5,
    "EXCHANGE_RETRY_INITIAL_SECONDS": 0.05,
    "EXCHANGE_RETRY_MAX_SECONDS": 0.2,
    "RATE_LIMIT_PER_SECOND": 50,
}


def set_faults(sandbox: Any, config: FaultConfig) -> None:
    answer = sandbox.admin.put("/admin/faults", json=config.model_dump())
    assert answer.status_code == 200, answer.text


async def faults(sandbox: Any, **endpoints: EndpointFaults) -> None:
    await asyncio.to_thread(set_faults, sandbox, FaultConfig(seed=7, endpoints=endpoints))


async def eventually(check: Callable[[], Any], what: str, seconds: float = 60.0) -> Any:
    """``check()``'s first truthy value (awaited when it is awaitable), polled every 0.1 s."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + seconds
    while True:
        value = check()
        if inspect.isawaitable(value):
            value = await value
        if value:
            return value
        if loop.time() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        await asyncio.sleep(0.1)


def authorizations(sandbox: Any) -> list[Any]:
    return list(sandbox.state.authorizations.values())


def metric(text: str, name: str, labels: str = "") -> float:
    pattern = rf"^{re.escape(name)}{re.escape(labels)} (\S+)$"
    match = re.search(pattern, text, re.M)
    return float(match.group(1)) if match else 0.0


async def test_code_exchange_is_retried_through_custodian_500s(
    sandbox, nats_server, sqlite_url, auth_port
):
    """Before: the first 500 ended the consent ("PG&E did not confirm"), the authorization
    stayed active at the custodian. Now the exchange is retried with backoff."""
    settings = auth_settings(sandbox, nats_server, sqlite_url, auth_port, **FAST_RECONCILER)
    async with running_auth(settings) as auth, httpx.AsyncClient(base_url=auth.url) as browser:
        callback = await consent(sandbox, await begin(browser))
        await faults(sandbox, token=EndpointFaults(error_500_rate=0.7))
        answer = await browser.get(callback)
        await faults(sandbox)
        assert answer.status_code == 303, answer.text
        assert answer.headers["location"].startswith("/status/")
        metrics = (await browser.get("/metrics")).text
    assert metric(metrics, "scwadd_auth_exchange_retries_total") >= 1
    (event,) = await grant_events(nats_server)
    (record,) = authorizations(sandbox)
    assert event.authorization_uri.endswith(record.authorization_id) and record.active


async def test_double_click_during_a_slow_exchange_waits_and_shows_the_same_status_page(
    sandbox, nats_server, sqlite_url, auth_port
):
    """Before: the second click got "already used. Nothing was shared." while a job ran."""
    settings = auth_settings(sandbox, nats_server, sqlite_url, auth_port, **FAST_RECONCILER)
    async with running_auth(settings) as auth, httpx.AsyncClient(base_url=auth.url) as browser:
        callback = await consent(sandbox, await begin(browser))
        await faults(sandbox, token=EndpointFaults(latency_ms=1500))
        first = asyncio.create_task(browser.get(callback))
        await asyncio.sleep(0.5)  # the first is now waiting on the custodian
        second = await browser.get(callback)
        first_answer = await first
        await faults(sandbox)
        assert first_answer.status_code == 303
        assert second.status_code == 303, second.text
        assert second.headers["location"] == first_answer.headers["location"]
        view = (await browser.get("/api/status/" + second.headers["location"][8:])).json()
        assert view["phase"] == "waiting" and not view["finished"]
    assert len(await grant_events(nats_server)) == 1


async def test_an_exchange_given_up_says_what_is_true_and_its_authorization_is_revoked(
    sandbox, nats_server, sqlite_url, auth_port
):
    """Before: "nothing will be read", the authorization left ACTIVE at the custodian."""
    settings = auth_settings(
        sandbox,
        nats_server,
        sqlite_url,
        auth_port,
        **FAST_RECONCILER | {"EXCHANGE_DEADLINE_SECONDS": 2.0, "CALLBACK_WAIT_SECONDS": 20},
    )
    async with running_auth(settings) as auth, httpx.AsyncClient(base_url=auth.url) as browser:
        callback = await consent(sandbox, await begin(browser))
        await faults(sandbox, token=EndpointFaults(error_503_rate=1.0))
        answer = await browser.get(callback)
        assert answer.status_code == 502
        minutes = settings.orphan_revoke_minutes
        assert minutes <= 5  # the default settings' promise is checked below, too
        assert "could not confirm your permission" in answer.text
        assert f"If PG&amp;E shows us as authorized, we will revoke it within {minutes}" in (
            answer.text
        )
        assert 'href="/"' in answer.text  # start again
        (record,) = authorizations(sandbox)
        assert record.active
        await faults(sandbox)  # the custodian recovers: the reconciler finds the orphan
        await eventually(lambda: not record.active, "the orphan's revocation")
        assert record.revoked_by == "third_party"

        async def orphans_counted() -> float:
            # Counted once the custodian's answer is back: after the custodian's own record.
            metrics = (await browser.get("/metrics")).text
            labels = '{action="revoked",reason="orphan"}'
            return metric(metrics, "scwadd_reconcile_actions_total", labels)

        assert await eventually(orphans_counted, "the reconciler's count") == 1
    assert await grant_events(nats_server) == []


async def test_a_late_callback_says_expired_and_its_authorization_is_revoked(
    sandbox, nats_server, sqlite_url, auth_port
):
    """Before: "not one we issued" (the state was purged, or the cookie had expired with it)
    and the authorization stayed active."""
    settings = auth_settings(
        sandbox,
        nats_server,
        sqlite_url,
        auth_port,
        **FAST_RECONCILER | {"OAUTH_STATE_TTL_SECONDS": 1},
    )
    async with running_auth(settings) as auth, httpx.AsyncClient(base_url=auth.url) as browser:
        callback = await consent(sandbox, await begin(browser))
        await asyncio.sleep(6)  # past the TTL and at least one purge (every 5 s)
        answer = await browser.get(callback)
        assert answer.status_code == 400
        assert "expired" in answer.text and "not one we issued" not in answer.text
        assert "we will revoke it within" in answer.text
        (record,) = authorizations(sandbox)
        await eventually(lambda: not record.active, "the orphan's revocation")
    assert await grant_events(nats_server) == []


async def test_a_crash_between_the_custodians_answer_and_our_record_loses_nothing(
    sandbox, nats_server, database_url, auth_port
):
    """The attempt was recorded (outbox) and the custodian answered, but the process died
    before the grant was written: the restarted service takes the attempt over; the code is
    spent, so it fails, the page says so, and the reconciler revokes the authorization."""
    settings = auth_settings(sandbox, nats_server, database_url, auth_port, **FAST_RECONCILER)
    keyring = Keyring.parse(settings.TOKEN_SEALING_KEYS.get_secret_value())
    run_migrations(database_url, package="scwadd_auth.migrations")
    engine = make_engine(database_url)
    try:
        async with running_auth(settings) as auth:
            async with httpx.AsyncClient(base_url=auth.url) as browser:
                callback = await consent(sandbox, await begin(browser))
            code = parse_qs(urlsplit(callback).query)["code"][0]
            # What the dead replica had done: exchanged the code (the custodian answered)...
            async with Custodian(custodian_config(sandbox)) as custodian:
                await custodian.exchange_code(code, settings.redirect_uri)
            # ...after writing its attempt down, and never got further.
            now = datetime.now(UTC)
            with session_factory(engine).begin() as session:
                exchanges.open_exchange(
                    session,
                    job_id="crashed-exchange",
                    status_id="sid-crashed-exchange",
                    sealed_code=keyring.seal(code, job_id="crashed-exchange").model_dump_json(),
                    owner="auth-dead",
                    now=now - timedelta(minutes=1),
                    deadline=now + timedelta(minutes=5),
                )
                row = session.get(Exchange, "crashed-exchange")
                assert row is not None
                row.claimed_until = now - timedelta(seconds=1)

            def decided() -> str | None:
                with session_factory(engine)() as session:
                    found = session.get(Exchange, "crashed-exchange")
                    return found.state if found and found.state != "pending" else None

            assert await eventually(decided, "the takeover") == "failed"
            async with httpx.AsyncClient(base_url=auth.url) as browser:
                view = (await browser.get("/api/status/sid-crashed-exchange")).json()
            assert view["phase"] == "failed" and view["finished"] and view["start_again"]
            assert "we will revoke it within" in view["message"]
            (record,) = authorizations(sandbox)
            await eventually(lambda: not record.active, "the orphan's revocation")

            def recorded() -> str | None:
                # Our record follows the custodian's answer, so it may come a moment later.
                with session_factory(engine)() as session:
                    (row,) = session.query(CustodianAuthorization).all()
                    return row.state if row.state == "revoked" else None

            await eventually(recorded, "the reconciler's record of the revocation")
        with session_factory(engine)() as session:
            (done,) = session.query(CustodianAuthorization).all()
            assert done.state == "revoked" and done.authorization_uri.endswith(
                record.authorization_id
            )
            assert session.get(Exchange, "crashed-exchange").sealed_code is None
    finally:
        engine.dispose()


async def test_the_reconciler_leaves_grants_alone_and_revokes_only_orphans(
    sandbox, nats_server, sqlite_url, auth_port
):
    settings = auth_settings(sandbox, nats_server, sqlite_url, auth_port, **FAST_RECONCILER)
    async with running_auth(settings) as auth, httpx.AsyncClient(base_url=auth.url) as browser:
        answer = await browser.get(await consent(sandbox, await begin(browser)))
        assert answer.status_code == 303
        (granted,) = authorizations(sandbox)
        # Another customer's consent whose callback never reaches us (the tab was closed).
        await consent(sandbox, await begin(browser), customer=1)
        orphan = next(r for r in authorizations(sandbox) if r is not granted)
        await eventually(lambda: not orphan.active, "the orphan's revocation")
        await asyncio.sleep(2)  # a few more passes
        assert granted.active  # the pipeline's: the exporter revokes it, never both
    assert len(await grant_events(nats_server)) == 1


class LateCallbackCustodian(Custodian):
    """The real custodian client, whose first DELETE lets ``before_delete`` run first: the
    customer's callback arriving while the reconciler's DELETE is on its way (in a burst it
    waits for the shared call budget), in a fixed order rather than by timing."""

    def __init__(self, *args: Any, before_delete: Callable[[], Any], **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.before_delete: Callable[[], Any] | None = before_delete

    async def revoke(self, authorization_uri: str) -> Any:
        hook, self.before_delete = self.before_delete, None
        if hook is not None:
            await hook()
        return await super().revoke(authorization_uri)


async def test_a_callback_arriving_during_an_orphans_revocation_is_not_revoked_twice(
    sandbox, nats_server, database_url, auth_port
):
    """The pipeline bench's 410: the reconciler took an authorization for an orphan (its
    callback had not arrived within the grace), the callback arrived before the DELETE, the
    exchange recorded the grant and handed it to the exporter, whose DELETE came second.
    Before: a grant event and a revoked authorization (the exporter's DELETE answered 410).
    Now the exchange sees the reconciler's claim and gives up: one DELETE, no grant."""
    from scwadd_auth.reconciler import Reconciler

    settings = auth_settings(
        sandbox,
        nats_server,
        database_url,
        auth_port,
        # The service's own reconciler makes its first pass at start-up, then sleeps: the
        # passes that matter are this test's.
        **FAST_RECONCILER | {"RECONCILE_INTERVAL_SECONDS": 3600.0, "CALLBACK_WAIT_SECONDS": 20},
    )
    engine = make_engine(database_url)
    answers: list[httpx.Response] = []
    try:
        async with running_auth(settings) as auth, httpx.AsyncClient(base_url=auth.url) as browser:
            callback = await consent(sandbox, await begin(browser))
            (record,) = authorizations(sandbox)

            async def late_callback() -> None:
                answers.append(await browser.get(callback))

            async with LateCallbackCustodian(
                custodian_config(sandbox), before_delete=late_callback
            ) as custodian:
                worker = Reconciler(
                    settings=settings,
                    sessions=session_factory(engine),
                    custodian=custodian,
                    holder="test",
                )
                assert await worker.reconcile_once() == {"waiting": 1}  # first seen
                later = datetime.now(UTC) + timedelta(seconds=5)  # past the grace
                assert await worker.reconcile_once(now=later) == {"revoked": 1}
                assert await worker.reconcile_once(now=later) == {}  # revoked: not listed active
            (answer,) = answers
            assert answer.status_code == 502, answer.text
            assert "we will revoke it within" in answer.text
            assert not record.active and record.revoked_by == "third_party"
        with session_factory(engine)() as session:
            (row,) = session.query(CustodianAuthorization).all()
            assert row.state == "revoked"
            (exchange,) = session.query(Exchange).all()
            assert (exchange.state, exchange.reason) == ("failed", "revoked_as_orphan")
    finally:
        engine.dispose()
    # No grant for the exporter to revoke a second time.
    assert await grant_events(nats_server) == []


async def test_a_grant_recorded_after_the_pass_read_our_tables_makes_the_reconciler_back_off(
    sandbox, nats_server, database_url, auth_port
):
    """The other order: the pass read our tables (no grant, no exchange: an orphan), then the
    callback's grant was recorded before the reconciler claimed the authorization. The claim
    reads the ledger again and backs off; the exporter alone revokes the grant."""
    from scwadd_auth.reconciler import Reconciler

    settings = auth_settings(
        sandbox,
        nats_server,
        database_url,
        auth_port,
        **FAST_RECONCILER | {"RECONCILE_INTERVAL_SECONDS": 3600.0},
    )
    engine = make_engine(database_url)
    answers: list[httpx.Response] = []

    class LateCallbackReconciler(Reconciler):
        async def _revoke(self, *args: Any, **kwargs: Any) -> str | None:
            answers.append(await browser.get(callback))
            return await super()._revoke(*args, **kwargs)

    try:
        async with running_auth(settings) as auth, httpx.AsyncClient(base_url=auth.url) as browser:
            callback = await consent(sandbox, await begin(browser))
            (record,) = authorizations(sandbox)
            async with Custodian(custodian_config(sandbox)) as custodian:
                worker = LateCallbackReconciler(
                    settings=settings,
                    sessions=session_factory(engine),
                    custodian=custodian,
                    holder="test",
                )
                assert await worker.reconcile_once() == {"waiting": 1}
                later = datetime.now(UTC) + timedelta(seconds=5)
                assert await worker.reconcile_once(now=later) == {}  # backed off
            (answer,) = answers
            assert answer.status_code == 303, answer.text
            assert record.active  # the exporter's to revoke
    finally:
        engine.dispose()
    (event,) = await grant_events(nats_server)
    assert event.authorization_uri.endswith(record.authorization_id)


async def test_one_reconciler_at_a_time(sessions):
    """The lease works the same on SQLite and PostgreSQL (the ``sessions`` fixture runs both)."""
    now = datetime.now(UTC)
    assert reconciler.take_lease(sessions, "a", 10, now)
    assert not reconciler.take_lease(sessions, "b", 10, now)
    assert reconciler.take_lease(sessions, "a", 10, now + timedelta(seconds=5))  # renewal
    assert not reconciler.take_lease(sessions, "b", 10, now + timedelta(seconds=14))
    assert reconciler.take_lease(sessions, "b", 10, now + timedelta(seconds=16))  # a died
    assert not reconciler.take_lease(sessions, "a", 10, now + timedelta(seconds=17))
    reconciler.release_lease(sessions, "b")
    assert reconciler.take_lease(sessions, "a", 10, now + timedelta(seconds=18))


def test_the_authorization_list_is_read_bounded_and_both_time_forms():
    base = "https://api.test/espi/1_1/resource"
    page = f"""<?xml version="1.0"?>
<feed xmlns="http://www.w3.org/2005/Atom" xmlns:espi="http://naesb.org/espi">
<link rel="self" href="{base}/Authorization"/><link rel="next" href="{base}/Authorization?p=2"/>
<entry><link rel="self" href="{base}/Authorization/1"/><content><espi:Authorization>
<espi:authorizedPeriod><espi:start>1700000000000</espi:start></espi:authorizedPeriod>
<espi:status>1</espi:status><espi:authorizationURI>{base}/Authorization/1</espi:authorizationURI>
</espi:Authorization></content></entry>
<entry><link rel="self" href="{base}/Authorization/2"/><content><espi:Authorization>
<espi:authorizedPeriod><espi:start>1700000000</espi:start></espi:authorizedPeriod>
<espi:status>0</espi:status></espi:Authorization></content></entry>
<entry><link rel="self" href="{base}/Authorization/3"/><content><espi:Authorization>
<espi:status>1</espi:status><espi:resourceURI>{base}/Batch/Bulk/77</espi:resourceURI>
<espi:authorizationURI>{base}/Authorization/3</espi:authorizationURI>
<espi:grant_type>client_credentials</espi:grant_type></espi:Authorization></content></entry>
</feed>""".encode()
    items, following = reconciler.parse_authorization_feed(page)
    assert following == f"{base}/Authorization?p=2"
    assert [(i.authorization_uri, i.active) for i in items] == [
        (f"{base}/Authorization/1", True),
        (f"{base}/Authorization/2", False),  # no authorizationURI: its self link
        # The third party's own registration (its Bulk): never a consent to revoke.
        (f"{base}/Authorization/3", False),
    ]
    assert items[0].created_at == items[1].created_at == datetime.fromtimestamp(1700000000, UTC)
    assert items[2].registration and not items[0].registration
    bomb = b'<?xml version="1.0"?><!DOCTYPE a [<!ENTITY x "x">]><feed/>'
    with pytest.raises(reconciler.FeedError, match="DTD"):
        reconciler.parse_authorization_feed(bomb)
    with pytest.raises(reconciler.FeedError, match="larger"):
        reconciler.parse_authorization_feed(b" " * (reconciler.MAX_PAGE_BYTES + 1))


def test_default_settings_revoke_an_orphan_within_five_minutes(sandbox):
    settings = auth_settings(sandbox, "nats://127.0.0.1:1", "sqlite://", 8080)
    assert settings.orphan_revoke_minutes <= 5
    assert settings.EXCHANGE_DEADLINE_SECONDS < 600  # PG&E's code lifetime


# -- section 3: the public surface ---------------------------------------------------------
async def test_authorize_checks_origin_and_is_rate_limited(
    sandbox, nats_server, sqlite_url, auth_port
):
    settings = auth_settings(
        sandbox, nats_server, sqlite_url, auth_port, AUTHORIZE_BURST=3, AUTHORIZE_PER_MINUTE=1
    )
    async with running_auth(settings) as auth, httpx.AsyncClient(base_url=auth.url) as browser:
        forged = await browser.post("/authorize", headers={"Origin": "https://evil.example"})
        assert forged.status_code == 403 and "location" not in forged.headers
        null = await browser.post("/authorize", headers={"Origin": "null"})
        assert null.status_code == 403
        referer = await browser.post("/authorize", headers={"Referer": "https://evil.example/page"})
        assert referer.status_code == 403
        answers = [await browser.post("/authorize", headers={"Origin": auth.url}) for _ in range(4)]
        assert [a.status_code for a in answers] == [303, 303, 303, 429]
        assert int(answers[-1].headers["retry-after"]) >= 1


async def test_an_error_callback_without_a_valid_state_claims_no_result(
    sandbox, nats_server, sqlite_url, auth_port
):
    """Before: "You did not give us permission at PG&E, so nothing was shared" for any
    ``error=access_denied``, state or not: a forged link could tell a customer their consent
    had been declined."""
    settings = auth_settings(sandbox, nats_server, sqlite_url, auth_port)
    async with running_auth(settings) as auth, httpx.AsyncClient(base_url=auth.url) as browser:
        for params in (
            {"error": "access_denied"},
            {"error": "access_denied", "state": "forged" * 8},
            {"error": "server_error", "state": "forged" * 8},
        ):
            answer = await browser.get("/OAuthCallback", params=params)
            assert answer.status_code == 400
            text = answer.text
            assert "We could not accept this link" in text
            for claim in ("Nothing was shared", "did not give us permission", "PG&amp;E reported"):
                assert claim not in text


async def test_percent_encoded_parameter_names_are_redacted_in_logs(
    sandbox, nats_server, sqlite_url, auth_port, caplog
):
    """``c%6Fde=`` is ``code=`` to the server: before, a log line kept its value."""
    caplog.set_level(logging.INFO)
    settings = auth_settings(sandbox, nats_server, sqlite_url, auth_port)
    secret = base64.urlsafe_b64encode(b"the-code-value-xyz").decode().rstrip("=")
    path = f"/OAuthCallback?c%6Fde={secret}&st%61te={secret}2&%63%6F%64%65={secret}3&c%256Fde=4"
    async with running_auth(settings) as auth, httpx.AsyncClient(base_url=auth.url) as browser:
        answer = await browser.get(auth.url + path)
        # The server decodes the names: a code and a state, one we never issued.
        assert answer.status_code == 400 and "not one we issued" in answer.text
    # Every line the service logged, rendered as the services render them; plus the access
    # log's line for the request (uvicorn's format), which carries the raw query string.
    access = logging.LogRecord(
        "uvicorn.access",
        logging.INFO,
        "",
        0,
        '%s - "%s %s HTTP/%s" %d',
        ("127.0.0.1:1234", "GET", path, "1.1", 400),
        None,
    )
    formatter = make_formatter()
    text = "\n".join(formatter.format(r) for r in [*caplog.records, access])
    assert "OAuthCallback?c%6Fde=[REDACTED]" in text
    assert secret not in text


async def test_a_grant_the_pipeline_left_active_past_its_deadline_is_flagged_not_revoked(
    sandbox, sessions, nats_server
):
    """The exporter revokes the grants it knows; if one is still active long after the
    deadline (its message dead-lettered), the reconciler flags it for the operator rather than
    sending a DELETE the exporter may send too."""
    from custodian_support import grant_tokens
    from scwadd_auth import ledger
    from scwadd_auth.reconciler import Reconciler

    settings = auth_settings(sandbox, nats_server, "sqlite://", 8080, **FAST_RECONCILER)
    tokens = await grant_tokens(sandbox, "electric-60min")
    keyring = Keyring.parse(settings.TOKEN_SEALING_KEYS.get_secret_value())
    consented = datetime.now(UTC) - timedelta(minutes=settings.GRANT_DEADLINE_MINUTES + 31)
    event = ledger.build_grant_event(
        job_id="old-job", tokens=tokens, keyring=keyring, now=consented
    )
    with sessions.begin() as session:
        ledger.record_grant(session, status_id="sid-old", event=event)
    async with Custodian(custodian_config(sandbox)) as custodian:
        worker = Reconciler(settings=settings, sessions=sessions, custodian=custodian, holder="t")
        assert await worker.reconcile_once() == {"flagged": 1}
        assert await worker.reconcile_once() == {}  # flagged once, not again every pass
    (record,) = authorizations(sandbox)
    assert record.active
    with sessions() as session:
        (row,) = session.query(CustodianAuthorization).all()
        assert (row.state, row.reason) == ("flagged", "pipeline_overdue")


async def test_an_orphan_we_revoked_that_is_still_listed_active_is_flagged_not_deleted_again(
    sandbox, sessions, nats_server
):
    """Our DELETE was answered 2xx, yet the custodian lists the authorization active: a second
    DELETE would revoke twice (or be answered 410); the operator is told instead."""
    from custodian_support import grant_tokens
    from scwadd_auth.reconciler import Reconciler, normalise_uri

    settings = auth_settings(sandbox, nats_server, "sqlite://", 8080, **FAST_RECONCILER)
    tokens = await grant_tokens(sandbox, "electric-60min")  # active, and in no ledger of ours
    assert tokens.authorization_uri
    uri = normalise_uri(tokens.authorization_uri)
    long_ago = datetime.now(UTC) - timedelta(minutes=10)
    with sessions.begin() as session:
        session.add(
            CustodianAuthorization(
                authorization_uri=uri,
                first_seen_at=long_ago,
                state="revoked",
                reason="orphan",
                attempts=1,
                updated_at=long_ago,
            )
        )
    (record,) = authorizations(sandbox)
    deletes_before = sandbox.state.calls_by_client[(sandbox.client_id, "Authorization")]
    async with Custodian(custodian_config(sandbox)) as custodian:
        worker = Reconciler(settings=settings, sessions=sessions, custodian=custodian, holder="t")
        assert await worker.reconcile_once() == {"flagged": 1}
        assert await worker.reconcile_once() == {}
    assert record.active
    # Two list GETs, no DELETE (the sandbox counts both under "Authorization").
    assert sandbox.state.calls_by_client[(sandbox.client_id, "Authorization")] == deletes_before + 2
    with sessions() as session:
        row = session.get(CustodianAuthorization, uri)
        assert row is not None and (row.state, row.reason) == ("flagged", "revoked_but_active")

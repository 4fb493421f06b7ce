"""The auth service against a real nats-server and the real sandbox over mutual TLS.

Each test runs the service's real ``main`` (HTTP, bus, database, migrations) and drives the
consent the way a browser would: landing page, POST to our /authorize, the sandbox's consent
form, back to our callback with the sandbox's code.
"""

from __future__ import annotations

import asyncio
import json
import logging
import re
import ssl
from urllib.parse import parse_qs, urlsplit

import httpx
import pytest
from auth_support import auth_settings, grant_events, running_auth
from scwadd_auth import ledger
from scwadd_auth.models import Grant
from scwadd_core.db import make_engine, run_migrations, session_factory
from scwadd_core.events import GrantReceived
from scwadd_core.logs import make_formatter
from scwadd_core.sealing import Keyring
from sqlalchemy import select

pytestmark = pytest.mark.anyio


def web_verify(sandbox) -> ssl.SSLContext:
    return ssl.create_default_context(cafile=str(sandbox.pki.ca_cert))


async def begin(auth: httpx.AsyncClient) -> str:
    landing = await auth.get("/")
    assert landing.status_code == 200
    assert "revoke" in landing.text and "12 months" in landing.text
    response = await auth.post("/authorize")
    assert response.status_code == 303
    return response.headers["location"]


async def consent(sandbox, custodian_url: str, decision: str = "approve", customer: int = 0) -> str:
    """Fill the sandbox's consent form (as its ``customer``-th customer); returns where it
    sends the browser back to."""
    async with httpx.AsyncClient(verify=web_verify(sandbox)) as web:
        page = await web.get(custodian_url)
        assert page.status_code == 200, page.text
        form = {
            "request_id": re.search(r'name="request_id" value="([^"]+)"', page.text).group(1),
            "customer": re.findall(r'name="customer" value="([^"]+)"', page.text)[customer],
            "history": re.findall(r'name="history" value="([^"]+)"', page.text)[1],
            "decision": decision,
        }
        answer = await web.post(sandbox.authorize_url, data=form)
        assert answer.status_code in (302, 303)
        return answer.headers["location"]


def grants_counted(metrics_text: str, outcome: str) -> float:
    match = re.search(rf'^scwadd_grants_total{{outcome="{outcome}"}} (\S+)$', metrics_text, re.M)
    return float(match.group(1)) if match else 0.0


async def test_consent_records_a_sealed_grant_publishes_once_and_logs_no_secret(
    sandbox, nats_server, database_url, auth_port, caplog
):
    # INFO, as the services run; pytest's own formatter, so nothing is masked for us: a token
    # that reached a log call at all would show here.
    caplog.set_level(logging.INFO)
    settings = auth_settings(sandbox, nats_server, database_url, auth_port)
    async with running_auth(settings) as auth:
        async with httpx.AsyncClient(base_url=auth.url) as browser:
            before = (await browser.get("/metrics")).text
            custodian_url = await begin(browser)
            query = parse_qs(urlsplit(custodian_url).query)
            assert query["client_id"] == [sandbox.client_id]
            assert query["response_type"] == ["code"]
            assert query["redirect_uri"] == [f"{auth.url}/OAuthCallback"]
            state = query["state"][0]
            assert len(state) * 6 >= 128
            cookie = next(c for c in browser.cookies.jar if c.name == "scwadd_oauth_browser")
            assert cookie.has_nonstandard_attr("HttpOnly")
            assert cookie.get_nonstandard_attr("SameSite", "").lower() == "lax"
            assert not cookie.secure  # the public URL is http here

            callback = await consent(sandbox, custodian_url)
            code = parse_qs(urlsplit(callback).query)["code"][0]
            first = await browser.get(callback)
            assert first.status_code == 303
            status_path = first.headers["location"]
            assert status_path.startswith("/status/")
            # The same callback again (a reload, a double click) changes nothing.
            second = await browser.get(callback)
            assert (second.status_code, second.headers["location"]) == (303, status_path)

            page = await browser.get(status_path)
            assert page.status_code == 200
            assert "Your data request" in page.text
            status_id = status_path.rsplit("/", 1)[1]
            state_json = (await browser.get(f"/api/status/{status_id}")).json()
            assert state_json["phase"] == "waiting" and not state_json["finished"]
            assert (await browser.get("/api/status/not-a-real-id")).status_code == 404

            metrics = (await browser.get("/metrics")).text
        for outcome in ("received", "duplicate"):
            assert grants_counted(metrics, outcome) == grants_counted(before, outcome) + 1

    events = await grant_events(nats_server)
    assert len(events) == 1
    event = events[0]
    record = next(iter(sandbox.state.authorizations.values()))
    assert event.authorization_uri.endswith(record.authorization_id)
    assert event.subscription_id == record.subscription_id
    keyring = Keyring.parse(settings.TOKEN_SEALING_KEYS.get_secret_value())
    access = keyring.open(event.access_token, job_id=event.job_id)
    assert access in sandbox.state.tokens  # a real token the sandbox issued, sealed in transit
    assert event.refresh_token is not None
    refresh = keyring.open(event.refresh_token, job_id=event.job_id)

    # At rest: the ledger row has the event with sealed tokens and no token in clear.
    engine = make_engine(database_url)
    try:
        with engine.connect() as connection:
            rows = connection.execute(select(Grant)).all()
            dump = json.dumps([tuple(str(v) for v in row) for row in rows])
    finally:
        engine.dispose()
    assert len(rows) == 1 and rows[0].published_at is not None
    for secret in (access, refresh, code, state):
        assert secret not in dump

    # Rendered as the services render them (JSON, redaction on), minus this test's own client.
    formatter = make_formatter()
    service_records = [r for r in caplog.records if not r.name.startswith(("httpx", "httpcore"))]
    logs = "\n".join(formatter.format(r) for r in service_records)
    assert "grant recorded" in logs
    for secret in (access, refresh, code, state, sandbox.client_secret):
        assert secret not in logs
    # Tokens never even reach a log call (the access log's query string is masked above).
    raw = "\n".join(r.getMessage() for r in service_records)
    for secret in (access, refresh, sandbox.client_secret):
        assert secret not in raw


async def test_forged_missing_and_foreign_states_are_refused(
    sandbox, nats_server, sqlite_url, auth_port
):
    settings = auth_settings(sandbox, nats_server, sqlite_url, auth_port)
    async with running_auth(settings) as auth:
        async with httpx.AsyncClient(base_url=auth.url) as browser:
            custodian_url = await begin(browser)
            callback = await consent(sandbox, custodian_url)
            query = parse_qs(urlsplit(callback).query)
            code, state = query["code"][0], query["state"][0]

            missing = await browser.get("/OAuthCallback", params={"code": code})
            assert missing.status_code == 400
            assert "missing its security check" in missing.text
            forged = await browser.get(
                "/OAuthCallback", params={"code": code, "state": "forged" * 8}
            )
            assert forged.status_code == 400
            assert "not one we issued" in forged.text

        # The right state from another browser (no cookie, or another one) is refused too.
        async with httpx.AsyncClient(base_url=auth.url) as attacker:
            foreign = await attacker.get("/OAuthCallback", params={"code": code, "state": state})
            assert foreign.status_code == 400
            assert "different browser" in foreign.text
            await begin(attacker)  # the attacker's own cookie does not help either
            foreign = await attacker.get("/OAuthCallback", params={"code": code, "state": state})
            assert foreign.status_code == 400
    assert await grant_events(nats_server) == []


async def test_access_denied_and_invalid_request_publish_nothing(
    sandbox, nats_server, sqlite_url, auth_port
):
    settings = auth_settings(sandbox, nats_server, sqlite_url, auth_port)
    async with running_auth(settings) as auth:
        async with httpx.AsyncClient(base_url=auth.url) as browser:
            before = (await browser.get("/metrics")).text
            custodian_url = await begin(browser)
            callback = await consent(sandbox, custodian_url, decision="cancel")
            assert parse_qs(urlsplit(callback).query)["error"] == ["access_denied"]
            denied = await browser.get(callback)
            assert denied.status_code == 200
            assert "Nothing was shared" in denied.text
            # The state was consumed: replaying the cancel link is refused.
            replay = await browser.get(callback.replace("error=access_denied", "code=x"))
            assert replay.status_code == 400

            custodian_url = await begin(browser)
            bad = custodian_url.replace("response_type=code", "response_type=token")
            async with httpx.AsyncClient(verify=web_verify(sandbox)) as web:
                back = (await web.get(bad)).headers["location"]
            assert parse_qs(urlsplit(back).query)["error"] == ["invalid_request"]
            invalid = await browser.get(back)
            assert invalid.status_code == 400
            assert "not valid" in invalid.text
            metrics = (await browser.get("/metrics")).text
        assert grants_counted(metrics, "denied") == grants_counted(before, "denied") + 1
    assert await grant_events(nats_server) == []
    assert sandbox.state.authorizations == {}


async def test_a_code_the_custodian_refuses_publishes_nothing(
    sandbox, nats_server, sqlite_url, auth_port
):
    settings = auth_settings(sandbox, nats_server, sqlite_url, auth_port)
    async with running_auth(settings) as auth, httpx.AsyncClient(base_url=auth.url) as browser:
        custodian_url = await begin(browser)
        state = parse_qs(urlsplit(custodian_url).query)["state"][0]
        refused = await browser.get(
            "/OAuthCallback", params={"code": "not-a-code-the-sandbox-issued", "state": state}
        )
        assert refused.status_code == 502
        assert "could not confirm your permission" in refused.text
    assert await grant_events(nats_server) == []


async def test_a_grant_recorded_but_not_published_before_a_crash_is_published_at_start(
    sandbox, nats_server, database_url, auth_port
):
    """The ledger row is committed before the publish; a crash in between loses nothing."""
    settings = auth_settings(sandbox, nats_server, database_url, auth_port)
    keyring = Keyring.parse(settings.TOKEN_SEALING_KEYS.get_secret_value())
    event = GrantReceived(
        job_id="crashed-job",
        subscription_id="7",
        resource_uri="https://custodian.test/Batch/Subscription/7",
        authorization_uri="https://custodian.test/Authorization/9",
        scope="FB=4",
        access_token=keyring.seal("an-access-token", job_id="crashed-job"),
    )
    run_migrations(database_url, package="scwadd_auth.migrations")
    engine = make_engine(database_url)
    try:
        with session_factory(engine).begin() as session:
            ledger.record_grant(session, status_id="sid-crashed", event=event)
        for _restart in range(2):
            async with (
                running_auth(settings) as auth,
                httpx.AsyncClient(base_url=auth.url) as browser,
            ):
                for _ in range(100):
                    with session_factory(engine)() as session:
                        if session.get(Grant, "crashed-job").published_at is not None:
                            break
                    await asyncio.sleep(0.1)
                view = (await browser.get("/api/status/sid-crashed")).json()
                assert view["phase"] == "waiting"
        events = await grant_events(nats_server)
        # Published once, with the event id the ledger kept, across two restarts.
        assert [e.event_id for e in events] == [event.event_id]
        assert events[0].access_token == event.access_token
    finally:
        engine.dispose()


async def test_two_callbacks_racing_with_one_code_make_one_grant(
    sandbox, nats_server, sqlite_url, auth_port
):
    settings = auth_settings(sandbox, nats_server, sqlite_url, auth_port)
    async with running_auth(settings) as auth:
        async with httpx.AsyncClient(base_url=auth.url) as browser:
            callback = await consent(sandbox, await begin(browser))
            answers = await asyncio.gather(*(browser.get(callback) for _ in range(3)))
        locations = {a.headers.get("location") for a in answers if a.status_code == 303}
        assert len(locations) == 1
        # A racer that lost before the winner finished is told the link was used, never 5xx.
        assert {a.status_code for a in answers} <= {303, 400}
    assert len(await grant_events(nats_server)) == 1
    # One code exchange; any other token call is the reconciler's client token.
    client_tokens = sum(1 for t in sandbox.state.tokens.values() if t.token_class == "client")
    assert sandbox.state.calls_by_client[(sandbox.client_id, "token")] == 1 + client_tokens


async def test_the_browser_cookie_is_secure_when_the_public_url_is_https(
    sandbox, nats_server, sqlite_url, auth_port
):
    settings = auth_settings(sandbox, nats_server, sqlite_url, auth_port).model_copy(
        update={"PUBLIC_BASE_URL": "https://scwadd.example"}
    )
    async with (
        running_auth(settings) as auth,
        httpx.AsyncClient(base_url=auth.url) as browser,
    ):
        answer = await browser.post("/authorize")
    cookie = answer.headers["set-cookie"].lower()
    assert "secure" in cookie and "httponly" in cookie and "samesite=lax" in cookie
    query = parse_qs(urlsplit(answer.headers["location"]).query)
    assert query["redirect_uri"] == ["https://scwadd.example/OAuthCallback"]


async def test_a_nats_outage_during_the_callback_loses_no_grant(
    sandbox, nats, sqlite_url, auth_port
):
    settings = auth_settings(sandbox, nats.url, sqlite_url, auth_port)
    engine = make_engine(sqlite_url)

    def ledger_row() -> Grant | None:
        with session_factory(engine)() as session:
            return session.scalars(select(Grant)).one_or_none()

    try:
        async with (
            running_auth(settings) as auth,
            httpx.AsyncClient(base_url=auth.url, timeout=30) as browser,
        ):
            callback = await consent(sandbox, await begin(browser))
            nats.stop()
            try:
                answer = await browser.get(callback)
                # The customer still reaches the status page: the grant is in the ledger.
                assert answer.status_code == 303
                assert answer.headers["location"].startswith("/status/")
                row = ledger_row()
                assert row is not None and row.published_at is None
                assert row.publish_attempts == 1
            finally:
                await asyncio.to_thread(nats.start)
            for _ in range(300):  # the outbox sweep runs every 5 s
                row = ledger_row()
                if row is not None and row.published_at is not None:
                    break
                await asyncio.sleep(0.1)
            assert row is not None and row.published_at is not None
    finally:
        engine.dispose()
    # Stored once, although the buffered first attempt may have arrived after all.
    assert len(await grant_events(nats.url)) == 1

"""OAuth as PG&E does it: the consent page's redirects and every token endpoint rule."""

from __future__ import annotations

from pathlib import Path

import httpx
from sandbox_helpers import YEAR, approve, client_token, consent, exchange, grant_for, query_of
from scwadd_sandbox.testing import RunningSandbox, start_sandbox


def _authorize(sandbox: RunningSandbox, **params: str) -> httpx.Response:
    query = {
        "client_id": sandbox.client_id,
        "redirect_uri": sandbox.redirect_uri,
        "response_type": "code",
        "state": "st-1",
    } | params
    with sandbox.web_client() as web:
        return web.get("/myAuthorization", params=query)


def test_consent_page_lists_customers_and_their_service_points(sandbox: RunningSandbox) -> None:
    page = _authorize(sandbox, scope="MinAuthEndDate=1;PreferredAuthEndDate=2")
    assert page.status_code == 200
    for customer in sandbox.state.customers:
        assert customer.name in page.text
        for point in customer.service_points:
            assert point.usage_point_id in page.text
    assert "<script" not in page.text
    assert page.headers["x-frame-options"] == "DENY"
    with sandbox.web_client() as web:
        index = web.get("/")
    assert index.status_code == 200 and sandbox.token_url in index.text


def test_approve_redirects_with_code_and_state(sandbox: RunningSandbox) -> None:
    response = consent(sandbox, state="abc/123")
    assert response.status_code == 302
    location = response.headers["location"]
    assert location.startswith(sandbox.redirect_uri + "?")
    query = query_of(location)
    assert query["state"] == "abc/123"
    assert len(query["code"]) > 20


def test_cancel_redirects_with_access_denied(sandbox: RunningSandbox) -> None:
    response = consent(sandbox, decision="cancel", state="s9")
    assert response.status_code == 302
    assert query_of(response.headers["location"]) == {"error": "access_denied", "state": "s9"}
    assert sandbox.state.authorizations == {}


def test_bad_response_type_redirects_with_invalid_request(sandbox: RunningSandbox) -> None:
    response = _authorize(sandbox, response_type="token")
    assert response.status_code == 302
    assert query_of(response.headers["location"]) == {"error": "invalid_request", "state": "st-1"}


def test_unknown_client_or_redirect_uri_is_a_400_page_without_redirect(
    sandbox: RunningSandbox,
) -> None:
    for params in (
        {"client_id": "x" * 32},
        {"redirect_uri": "http://127.0.0.1:8080/elsewhere"},
        {"redirect_uri": sandbox.redirect_uri + "/"},
    ):
        response = _authorize(sandbox, **params)
        assert response.status_code == 400
        assert "location" not in response.headers
        assert "Request refused" in response.text


def test_a_stale_or_forged_consent_form_is_refused(sandbox: RunningSandbox) -> None:
    with sandbox.web_client() as web:
        response = web.post(
            "/myAuthorization", data={"request_id": "forged", "decision": "approve"}
        )
    assert response.status_code == 400
    assert "location" not in response.headers


def test_token_endpoint_answers_pges_shapes(sandbox: RunningSandbox, api: httpx.Client) -> None:
    grant = grant_for(sandbox, api, "gas-electric", YEAR)
    body = grant.body
    assert body["token_type"] == "Bearer"
    assert body["expires_in"] == 3600
    assert body["resourceURI"] == (
        f"{sandbox.espi_base}/Batch/Subscription/{grant.subscription_id}"
    )
    assert body["authorizationURI"] == (
        f"{sandbox.espi_base}/Authorization/{grant.authorization_id}"
    )
    scope = body["scope"]
    assert scope.startswith("FB=1_3_4_5_8_10_12_13_14_15_16_18_19_31_32_35_37_38_39_40_46;")
    assert "IntervalDuration=3600;" in scope
    assert f"HistoryLength={YEAR};" in scope
    assert response_headers_no_store(sandbox, api)


def response_headers_no_store(sandbox: RunningSandbox, api: httpx.Client) -> bool:
    response = api.post(
        sandbox.token_url, auth=sandbox.basic_auth, data={"grant_type": "client_credentials"}
    )
    return response.headers["cache-control"] == "no-store"


def test_code_is_single_use_and_a_replay_revokes_what_it_issued(
    sandbox: RunningSandbox, api: httpx.Client
) -> None:
    code = approve(sandbox)
    grant = exchange(sandbox, api, code)
    usage = f"{sandbox.espi_base}/Subscription/{grant.subscription_id}/UsagePoint"
    assert api.get(usage, headers=grant.headers).status_code == 200
    replay = api.post(
        sandbox.token_url,
        auth=sandbox.basic_auth,
        data={
            "grant_type": "authorization_code",
            "code": code,
            "redirect_uri": sandbox.redirect_uri,
        },
    )
    assert replay.status_code == 400
    assert replay.json()["error"] == "invalid_grant"
    assert api.get(usage, headers=grant.headers).status_code == 401
    refreshed = api.post(
        sandbox.token_url,
        auth=sandbox.basic_auth,
        data={"grant_type": "refresh_token", "refresh_token": grant.refresh_token},
    )
    assert refreshed.json()["error"] == "invalid_grant"


def test_code_is_bound_to_its_redirect_uri(sandbox: RunningSandbox, api: httpx.Client) -> None:
    code = approve(sandbox)
    for redirect in ("http://127.0.0.1:8080/other", None):
        data = {"grant_type": "authorization_code", "code": code}
        if redirect:
            data["redirect_uri"] = redirect
        response = api.post(sandbox.token_url, auth=sandbox.basic_auth, data=data)
        assert response.status_code == 400
        assert response.json()["error"] == "invalid_grant"


def test_expired_code_is_refused(pki_dir: Path) -> None:
    with start_sandbox(pki_dir, code_lifetime=0) as sandbox, sandbox.api_client() as api:
        response = api.post(
            sandbox.token_url,
            auth=sandbox.basic_auth,
            data={
                "grant_type": "authorization_code",
                "code": approve(sandbox),
                "redirect_uri": sandbox.redirect_uri,
            },
        )
        assert response.status_code == 400
        assert response.json()["error_description"] == "Authorization code expired"


def test_parameters_are_accepted_in_the_query_string(
    sandbox: RunningSandbox, api: httpx.Client
) -> None:
    response = api.post(
        sandbox.token_url,
        auth=sandbox.basic_auth,
        params={
            "grant_type": "authorization_code",
            "code": approve(sandbox),
            "redirect_uri": sandbox.redirect_uri,
        },
    )
    assert response.status_code == 200
    assert "access_token" in response.json()


def test_refresh_tokens_rotate(sandbox: RunningSandbox, api: httpx.Client) -> None:
    grant = grant_for(sandbox, api)
    first = api.post(
        sandbox.token_url,
        auth=sandbox.basic_auth,
        data={"grant_type": "refresh_token", "refresh_token": grant.refresh_token},
    )
    assert first.status_code == 200
    body = first.json()
    assert body["refresh_token"] != grant.refresh_token
    assert body["access_token"] != grant.access_token
    again = api.post(
        sandbox.token_url,
        auth=sandbox.basic_auth,
        data={"grant_type": "refresh_token", "refresh_token": grant.refresh_token},
    )
    assert again.status_code == 400
    assert again.json()["error"] == "invalid_grant"
    usage = f"{sandbox.espi_base}/Subscription/{grant.subscription_id}/UsagePoint"
    headers = {"Authorization": f"Bearer {body['access_token']}"}
    assert api.get(usage, headers=headers).status_code == 200


def test_client_credentials_answers_client_access_token(
    sandbox: RunningSandbox, api: httpx.Client
) -> None:
    response = api.post(
        sandbox.token_url, auth=sandbox.basic_auth, data={"grant_type": "client_credentials"}
    )
    body = response.json()
    assert set(body) == {"client_access_token", "token_type", "expires_in", "scope"}
    assert body["expires_in"] == 3600


def test_get_is_405_and_missing_grant_type_is_400_json(
    sandbox: RunningSandbox, api: httpx.Client
) -> None:
    assert api.get(sandbox.token_url, auth=sandbox.basic_auth).status_code == 405
    response = api.post(sandbox.token_url, auth=sandbox.basic_auth, data={})
    assert response.status_code == 400
    assert response.json() == {
        "error": "invalid_request",
        "error_description": "Missing grant_type",
    }
    unknown = api.post(sandbox.token_url, auth=sandbox.basic_auth, data={"grant_type": "password"})
    assert unknown.json()["error"] == "unsupported_grant_type"


def test_client_authentication_is_required(sandbox: RunningSandbox, api: httpx.Client) -> None:
    for auth in (None, (sandbox.client_id, "wrong"), ("nobody" * 6, sandbox.client_secret)):
        response = api.post(sandbox.token_url, auth=auth, data={"grant_type": "client_credentials"})
        assert response.status_code == 401
        assert response.json()["error"] == "invalid_client"


def test_reauthorizing_cancels_the_previous_authorization(
    sandbox: RunningSandbox, api: httpx.Client
) -> None:
    first = grant_for(sandbox, api)
    second = grant_for(sandbox, api)
    assert first.subscription_id != second.subscription_id
    old = f"{sandbox.espi_base}/Subscription/{first.subscription_id}/UsagePoint"
    assert api.get(old, headers=first.headers).status_code == 401
    record = sandbox.state.authorizations[first.authorization_id]
    assert (record.status, record.revoked_by) == ("revoked", "reauthorization")


def test_expires_in_can_be_shortened_and_tokens_then_die(pki_dir: Path) -> None:
    with start_sandbox(pki_dir, access_token_lifetime=0) as sandbox, sandbox.api_client() as api:
        grant = grant_for(sandbox, api)
        assert grant.body["expires_in"] == 0
        usage = f"{sandbox.espi_base}/Subscription/{grant.subscription_id}/UsagePoint"
        assert api.get(usage, headers=grant.headers).status_code == 401
        assert client_token(sandbox, api)  # client tokens keep their own lifetime

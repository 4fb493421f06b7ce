"""The token endpoint (``/datacustodian/oauth/v2/token``, and the test path): the
``authorization_code``, ``refresh_token`` and ``client_credentials`` grants, the client
authenticated with HTTP Basic and its registered certificate (PG&E's Share My Data token
endpoint; RFC 6749 §4.1.3, §5.2 for the error bodies)."""

from __future__ import annotations

import base64
import binascii
import hmac
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse, Response

from scwadd_sandbox import documents
from scwadd_sandbox.config import TEST_TOKEN_PATH, TOKEN_PATH, SandboxConfig
from scwadd_sandbox.http.access import EspiAccess, Refusal, apply_faults
from scwadd_sandbox.state import CLIENT_SCOPE, AuthorizationRecord, SandboxState


def token_router(access: EspiAccess) -> APIRouter:
    router = APIRouter()
    state, config = access.state, access.config
    require_some_certificate = access.require_some_certificate
    check_certificate = access.check_certificate

    @router.post(TOKEN_PATH)
    @router.post(TEST_TOKEN_PATH)
    async def token(request: Request) -> Response:
        require_some_certificate(request)
        client_id = _basic_client(request, state)
        check_certificate(request, client_id)
        state.count_call(client_id, "token", None)
        await apply_faults(state, "token")
        params: dict[str, str] = dict(request.query_params)
        form = await request.form()
        params.update({k: v for k, v in form.items() if isinstance(v, str)})
        grant_type = params.get("grant_type")
        if not grant_type:
            raise _oauth_error(400, "invalid_request", "Missing grant_type")
        if grant_type == "authorization_code":
            body = _grant_code(state, config, client_id, params)
        elif grant_type == "refresh_token":
            body = _grant_refresh(state, config, client_id, params)
        elif grant_type == "client_credentials":
            token_value = state.issue_client_token(client_id)
            body = {
                "client_access_token": token_value,
                "token_type": "Bearer",
                "expires_in": config.client_token_lifetime,
                "scope": CLIENT_SCOPE,
            }
        else:
            raise _oauth_error(
                400, "unsupported_grant_type", f"Unsupported grant_type {grant_type[:40]!r}"
            )
        state.responses_by_status[200] += 1
        return JSONResponse(body, headers={"Cache-Control": "no-store", "Pragma": "no-cache"})

    return router


def _oauth_error(status: int, error: str, description: str) -> Refusal:
    body = {"error": error, "error_description": description}
    headers = {"Cache-Control": "no-store"}
    if status == 401:
        headers["WWW-Authenticate"] = 'Basic realm="datacustodian"'
    return Refusal(JSONResponse(body, status_code=status, headers=headers))


def _basic_client(request: Request, state: SandboxState) -> str:
    header = request.headers.get("authorization", "")
    scheme, _, encoded = header.partition(" ")
    if scheme.lower() != "basic":
        raise _oauth_error(401, "invalid_client", "HTTP Basic client authentication required")
    try:
        client_id, _, secret = base64.b64decode(encoded.strip()).decode().partition(":")
    except (binascii.Error, UnicodeDecodeError):
        raise _oauth_error(401, "invalid_client", "Malformed HTTP Basic credentials") from None
    registration = state.registration(client_id)
    if registration is None or not hmac.compare_digest(
        secret.encode(), registration.client_secret.encode()
    ):
        raise _oauth_error(401, "invalid_client", "Unknown client or wrong secret")
    return client_id


def _grant_code(
    state: SandboxState, config: SandboxConfig, client_id: str, params: dict[str, str]
) -> dict[str, Any]:
    code = params.get("code")
    if not code:
        raise _oauth_error(400, "invalid_request", "Missing code")
    record = state.codes.get(code)
    if record is None or record.client_id != client_id:
        raise _oauth_error(400, "invalid_grant", "Unknown authorization code")
    if record.used:
        state.revoke_grant(code)
        raise _oauth_error(400, "invalid_grant", "Authorization code already used")
    if record.expires_at <= state.clock():
        raise _oauth_error(400, "invalid_grant", "Authorization code expired")
    if params.get("redirect_uri") != record.redirect_uri:
        raise _oauth_error(400, "invalid_grant", "redirect_uri does not match the authorization")
    record.used = True
    authorization = state.authorizations[record.authorization_id]
    if not authorization.active:
        raise _oauth_error(400, "invalid_grant", "The authorization has been revoked")
    access, refresh = state.issue_customer_tokens(authorization, grant=code)
    return _token_body(config, authorization, access, refresh)


def _grant_refresh(
    state: SandboxState, config: SandboxConfig, client_id: str, params: dict[str, str]
) -> dict[str, Any]:
    value = params.get("refresh_token")
    if not value:
        raise _oauth_error(400, "invalid_request", "Missing refresh_token")
    record = state.refresh_tokens.get(value)
    if record is None or record.client_id != client_id:
        raise _oauth_error(400, "invalid_grant", "Unknown or already used refresh token")
    # Rotation: a refresh token works once.
    del state.refresh_tokens[value]
    if record.expires_at <= state.clock():
        raise _oauth_error(400, "invalid_grant", "Refresh token expired")
    authorization = state.authorizations[record.authorization_id]
    if not authorization.active:
        raise _oauth_error(400, "invalid_grant", "The authorization has been revoked")
    access, refresh = state.issue_customer_tokens(authorization, grant=record.grant)
    return _token_body(config, authorization, access, refresh)


def _token_body(
    config: SandboxConfig, record: AuthorizationRecord, access: str, refresh: str
) -> dict[str, Any]:
    paths = documents.resource_paths(config.espi_base)
    return {
        "access_token": access,
        "token_type": "Bearer",
        "expires_in": config.access_token_lifetime,
        "refresh_token": refresh,
        "scope": record.scope,
        "resourceURI": paths.batch_subscription(record.subscription_id),
        "authorizationURI": paths.authorization(record.authorization_id),
    }

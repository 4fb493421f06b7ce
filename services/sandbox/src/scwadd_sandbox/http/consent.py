"""OAuth, the customer's side: PG&E's myAuthorization page (``GET``: the consent form, ``POST``:
the customer's decision), answered by a redirect to the third party's ``redirect_uri`` with a
``code`` or an ``error`` (RFC 6749 §4.1.1, §4.1.2)."""

from __future__ import annotations

import time
from typing import Annotated
from urllib.parse import urlencode

from fastapi import APIRouter, Form, Query
from fastapi.responses import HTMLResponse, RedirectResponse, Response

from scwadd_sandbox.config import AUTHORIZE_PATH, SandboxConfig
from scwadd_sandbox.http.pages import CONSENT_PAGE, error_page
from scwadd_sandbox.state import HISTORY_CHOICES, SHARE_CHOICES, ConsentRequest, SandboxState

CONSENT_LIFETIME = 1800


def consent_router(config: SandboxConfig, state: SandboxState) -> APIRouter:
    router = APIRouter()

    @router.get(AUTHORIZE_PATH, response_model=None)
    async def authorize(
        client_id: str | None = None,
        redirect_uri: str | None = None,
        response_type: str | None = None,
        state_param: Annotated[str | None, Query(alias="state")] = None,
        scope: str | None = None,
        login: str | None = None,
    ) -> Response:
        registration = state.registration(client_id or "")
        if registration is None:
            return error_page("Unknown client_id: this application is not registered.")
        if not redirect_uri or redirect_uri not in registration.redirect_uris:
            return error_page("The redirect_uri is not registered for this application.")
        if response_type != "code":
            return _redirect(redirect_uri, {"error": "invalid_request", "state": state_param})
        _expire_consents(state)
        request_id = state.open_consent(
            ConsentRequest(
                client_id=registration.client_id,
                redirect_uri=redirect_uri,
                state=state_param,
                scope=scope,
                created_at=time.monotonic(),
            )
        )
        return _consent_page(registration.client_id, request_id, None, 200)

    def _consent_page(client_id: str, request_id: str, error: str | None, status: int) -> Response:
        html = CONSENT_PAGE.render(
            title="Share your energy data",
            client_id=client_id,
            request_id=request_id,
            customers=state.customers,
            history_choices=HISTORY_CHOICES,
            share_choices=[(key, label) for key, (label, _blocks) in SHARE_CHOICES.items()],
            action=AUTHORIZE_PATH,
            error=error,
        )
        # A consent page must never be framed by the party asking for consent.
        headers = {
            "Cache-Control": "no-store",
            "X-Frame-Options": "DENY",
            # No form-action here: browsers apply it to the redirect back to the third party.
            "Content-Security-Policy": "frame-ancestors 'none'",
        }
        return HTMLResponse(html, status_code=status, headers=headers)

    @router.post(AUTHORIZE_PATH, response_model=None)
    async def decide(
        request_id: Annotated[str, Form()] = "",
        decision: Annotated[str, Form()] = "",
        customer: Annotated[str, Form()] = "",
        history: Annotated[str, Form()] = "",
        share: Annotated[str, Form()] = "all",
    ) -> Response:
        _expire_consents(state)
        pending = state.consent_requests.get(request_id)
        if pending is None:
            return error_page("This authorization request is unknown or has expired.")
        if decision == "cancel":
            del state.consent_requests[request_id]
            return _redirect(
                pending.redirect_uri, {"error": "access_denied", "state": pending.state}
            )
        chosen = state.customer(customer)
        allowed = {str(seconds) for seconds, _label in HISTORY_CHOICES}
        if (
            decision != "approve"
            or chosen is None
            or history not in allowed
            or share not in SHARE_CHOICES
        ):
            return _consent_page(
                pending.client_id,
                request_id,
                "Choose a customer, a history length and what to share.",
                400,
            )
        del state.consent_requests[request_id]
        record, code = state.authorize(pending, chosen, int(history), share)
        preferred = _preferred_end(pending.scope)
        if preferred is not None and preferred > record.created_at:
            record.expires_at = preferred
        return _redirect(pending.redirect_uri, {"code": code, "state": pending.state})

    return router


def _redirect(redirect_uri: str, params: dict[str, str | None]) -> RedirectResponse:
    query = urlencode({k: v for k, v in params.items() if v is not None})
    separator = "&" if "?" in redirect_uri else "?"
    return RedirectResponse(redirect_uri + separator + query, status_code=302)


def _preferred_end(scope: str | None) -> int | None:
    """PreferredAuthEndDate (epoch seconds) from a myAuthorization ``scope`` parameter."""
    for part in (scope or "").split(";"):
        name, _, value = part.partition("=")
        if name.strip() == "PreferredAuthEndDate" and value.strip().isdigit():
            return int(value)
    return None


def _expire_consents(state: SandboxState) -> None:
    cutoff = time.monotonic() - CONSENT_LIFETIME
    for request_id, pending in list(state.consent_requests.items()):
        if pending.created_at < cutoff:
            del state.consent_requests[request_id]

"""The browser face: PG&E's myAuthorization login + consent pages, and the admin API.

The consent form is plain HTML (no script): a person in a browser and a program posting the
form with httpx go through exactly the same steps and checks.
"""

from __future__ import annotations

import hmac
import time
from typing import Annotated, Any
from urllib.parse import urlencode

import jinja2
from fastapi import Body, FastAPI, Form, Query, Request
from fastapi.responses import HTMLResponse, JSONResponse, RedirectResponse, Response

from scwadd_sandbox import billing, data, documents
from scwadd_sandbox.api import parse_time
from scwadd_sandbox.config import AUTHORIZE_PATH, SandboxConfig
from scwadd_sandbox.faults import BillingFaults, FaultConfig
from scwadd_sandbox.state import (
    FB_COST,
    HISTORY_CHOICES,
    SHARE_CHOICES,
    AuthorizationRecord,
    ConsentRequest,
    SandboxState,
)

CONSENT_LIFETIME = 1800
TRUTH_MAX_DAYS = 800

_templates = jinja2.Environment(autoescape=True, undefined=jinja2.StrictUndefined)

_LAYOUT = """<!doctype html>
<html lang="en"><head><meta charset="utf-8">
<title>{{ title }} - ShareMyData sandbox</title>
<style>
body{font-family:sans-serif;max-width:46rem;margin:2rem auto;padding:0 1rem;color:#222}
fieldset{margin:1rem 0}label{display:block;margin:.3rem 0}
.points{margin:.1rem 0 .6rem 1.6rem;color:#555;font-size:.9rem}
button{padding:.5rem 1.2rem;margin-right:1rem}.error{color:#a00}
</style></head><body>
<p><strong>ShareMyData sandbox</strong> &mdash; a test data custodian, not PG&amp;E.</p>
{% block body %}{% endblock %}
</body></html>"""

_CONSENT = _templates.from_string(
    _LAYOUT.replace(
        "{% block body %}{% endblock %}",
        """<h1>Share your energy data</h1>
<p><strong>{{ client_id }}</strong> asks to read your energy usage data.</p>
{% if error %}<p class="error" role="alert">{{ error }}</p>{% endif %}
<form method="post" action="{{ action }}">
<input type="hidden" name="request_id" value="{{ request_id }}">
<fieldset><legend>Sign in as a sandbox customer</legend>
{% for customer in customers %}
<label><input type="radio" name="customer" value="{{ customer.retail_customer_id }}"
 {% if loop.first %}checked{% endif %}> {{ customer.name }} ({{ customer.profile }})</label>
<ul class="points">{% for point in customer.service_points %}
<li>{{ "Gas" if point.kind == 1 else "Electric" }} service at {{ point.address }}
 (service point {{ point.usage_point_id }}){% if point.solar %}, rooftop solar{% endif %}</li>
{% endfor %}</ul>
{% endfor %}
</fieldset>
<fieldset><legend>How much history to share</legend>
{% for seconds, label in history_choices %}
<label><input type="radio" name="history" value="{{ seconds }}"
 {% if loop.index == 2 %}checked{% endif %}> {{ label }}</label>
{% endfor %}
</fieldset>
<fieldset><legend>What to share</legend>
{% for value, label in share_choices %}
<label><input type="radio" name="share" value="{{ value }}"
 {% if loop.first %}checked{% endif %}> {{ label }}</label>
{% endfor %}
</fieldset>
<button type="submit" name="decision" value="approve">Approve</button>
<button type="submit" name="decision" value="cancel">Cancel</button>
</form>""",
    )
)

_INDEX = _templates.from_string(
    _LAYOUT.replace(
        "{% block body %}{% endblock %}",
        """<h1>ShareMyData sandbox</h1>
<p>A local data custodian shaped like PG&amp;E Share My Data. See docs/sandbox.md.</p>
<ul>
<li>Authorization: <code>{{ authorize_url }}?client_id=…&amp;redirect_uri=…
&amp;response_type=code&amp;state=…</code></li>
<li>Token (mutual TLS): <code>{{ token_url }}</code></li>
<li>ESPI resources (mutual TLS): <code>{{ espi_base }}</code></li>
</ul>
<h2>Sandbox customers</h2>
<ul>{% for customer in customers %}
<li>{{ customer.name }} ({{ customer.profile }}):
{{ customer.service_points | length }} service point(s)</li>
{% endfor %}</ul>""",
    )
)

_ERROR = _templates.from_string(
    _LAYOUT.replace(
        "{% block body %}{% endblock %}",
        '<h1>Request refused</h1><p class="error">{{ message }}</p>',
    )
)


def _error_page(message: str, status: int = 400) -> HTMLResponse:
    return HTMLResponse(_ERROR.render(title="Request refused", message=message), status_code=status)


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


def create_web_app(config: SandboxConfig, state: SandboxState | None = None) -> FastAPI:
    state = state if state is not None else SandboxState(config)
    app = FastAPI(title="ShareMyData sandbox", docs_url=None, redoc_url=None, openapi_url=None)
    app.state.sandbox = state

    @app.get("/", response_class=HTMLResponse)
    async def index() -> HTMLResponse:
        return HTMLResponse(
            _INDEX.render(
                title="ShareMyData sandbox",
                authorize_url=config.authorize_url,
                token_url=config.token_url,
                espi_base=config.espi_base,
                customers=state.customers,
            )
        )

    @app.get("/healthz")
    async def healthz() -> dict[str, str]:
        return {"status": "ok"}

    # -- OAuth: the customer's side ------------------------------------------------------
    @app.get(AUTHORIZE_PATH, response_model=None)
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
            return _error_page("Unknown client_id: this application is not registered.")
        if not redirect_uri or redirect_uri not in registration.redirect_uris:
            return _error_page("The redirect_uri is not registered for this application.")
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
        html = _CONSENT.render(
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

    @app.post(AUTHORIZE_PATH, response_model=None)
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
            return _error_page("This authorization request is unknown or has expired.")
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

    # -- admin API -----------------------------------------------------------------------
    def admin(request: Request) -> None:
        header = request.headers.get("authorization", "")
        scheme, _, value = header.partition(" ")
        if scheme.lower() != "bearer" or not hmac.compare_digest(
            value.strip().encode(), config.admin_token.encode()
        ):
            raise AdminRefused()

    @app.exception_handler(AdminRefused)
    async def refused(_request: Request, _exc: AdminRefused) -> Response:
        return JSONResponse(
            {"error": "admin credential required"},
            status_code=401,
            headers={"WWW-Authenticate": 'Bearer realm="sandbox-admin"'},
        )

    @app.get("/admin/registrations")
    async def registrations(request: Request) -> list[dict[str, Any]]:
        admin(request)
        return [r.public_view() for r in config.registrations]

    @app.get("/admin/customers")
    async def customers(request: Request) -> list[dict[str, Any]]:
        admin(request)
        return [_customer_view(c) for c in state.customers]

    @app.get("/admin/authorizations")
    async def authorizations(request: Request) -> list[dict[str, Any]]:
        admin(request)
        return [r.public_view() for r in state.authorizations.values()]

    @app.post("/admin/authorizations/{authorization_id}/revoke")
    async def revoke(
        request: Request,
        authorization_id: str,
        by: Annotated[str, Body(embed=True)] = "customer",
    ) -> Response:
        admin(request)
        record = state.authorizations.get(authorization_id)
        if record is None:
            return JSONResponse({"error": "unknown authorization"}, status_code=404)
        changed = state.revoke(record, by=by)
        return JSONResponse({"revoked": changed, "authorization": record.public_view()})

    @app.get("/admin/calls")
    async def calls(request: Request) -> dict[str, Any]:
        admin(request)
        return state.call_report()

    @app.delete("/admin/calls")
    async def reset_calls(request: Request) -> dict[str, str]:
        admin(request)
        state.calls_by_client.clear()
        state.over_limit_by_client.clear()
        state.merged_slash_paths = 0
        state.calls_by_authorization.clear()
        state.responses_by_status.clear()
        return {"status": "reset"}

    @app.get("/admin/faults")
    async def get_faults(request: Request) -> dict[str, Any]:
        admin(request)
        return state.faults.config.model_dump()

    @app.put("/admin/faults")
    async def put_faults(request: Request, faults: FaultConfig) -> dict[str, Any]:
        admin(request)
        state.faults.replace(faults)
        return state.faults.config.model_dump()

    @app.post("/admin/tokens/expire")
    async def expire_tokens(
        request: Request, client_id: Annotated[str | None, Body(embed=True)] = None
    ) -> dict[str, int]:
        admin(request)
        return {"expired": state.expire_tokens(client_id)}

    @app.get("/admin/batches")
    async def batches(request: Request) -> list[dict[str, Any]]:
        admin(request)
        return [job.public_view() for job in state.batches.values()]

    @app.get("/admin/truth")
    async def truth(
        request: Request,
        start: str,
        end: str,
        retail_customer_id: str | None = None,
        subscription_id: str | None = None,
        usage_point_id: str | None = None,
    ) -> Response:
        """A customer's exact readings for [start, end): integers, as the documents carry them.

        With ``subscription_id`` the range is clipped to what that authorization may read (its
        history length and the data that exists), i.e. exactly what the API serves.
        """
        admin(request)
        first, last = parse_time(start, "start"), parse_time(end, "end")
        if last <= first or last - first > TRUTH_MAX_DAYS * 86400:
            return JSONResponse({"error": "bad range"}, status_code=400)
        chosen: data.Customer | None
        with_cost = True
        record = None
        if subscription_id is not None:
            record = state.authorization_by_subscription(subscription_id)
            chosen = record.customer if record else None
            with_cost = record is None or record.grants(FB_COST)
            if record is not None:
                # Exactly what the API serves for this range: whole days, clipped.
                span = state.served_range(record, first, last)
                first, last = span if span is not None else (first, first)
        else:
            chosen = state.customer(retail_customer_id or "")
        if chosen is None:
            return JSONResponse({"error": "unknown customer or subscription"}, status_code=404)
        first = max(first, state.data_start)
        last = min(last, state.data_end)
        truth = _truth(config.seed, chosen, first, last, usage_point_id, with_cost)
        truth["bills"] = _bills_truth(
            config.seed, chosen, record, first, last, usage_point_id, state.faults.config.billing
        )
        return JSONResponse(truth)

    return app


def _bills_truth(
    seed: int,
    customer: data.Customer,
    record: AuthorizationRecord | None,
    start: int,
    end: int,
    usage_point_id: str | None,
    faults: BillingFaults,
) -> list[dict[str, Any]]:
    """The UsageSummaries served for the whole billing periods in [start, end), with the billing
    faults in force: for ``record``'s grant (none without FB 15/16, no amounts without 16), or
    everything when no authorization is named."""
    bills: list[dict[str, Any]] = []
    if end <= start:
        return bills
    for point in customer.service_points:
        if usage_point_id is not None and point.usage_point_id != usage_point_id:
            continue
        if record is None:
            summaries = billing.usage_summaries(seed, customer, point, start, end, True, faults)
        else:
            summaries = documents.usage_summaries(seed, record, point, start, end, faults)
        bills.extend(billing.summary_json(point.usage_point_id, s) for s in summaries)
    return bills


class AdminRefused(Exception):
    """The admin API was called without its credential."""


def _expire_consents(state: SandboxState) -> None:
    cutoff = time.monotonic() - CONSENT_LIFETIME
    for request_id, pending in list(state.consent_requests.items()):
        if pending.created_at < cutoff:
            del state.consent_requests[request_id]


def _customer_view(customer: data.Customer) -> dict[str, Any]:
    return {
        "retail_customer_id": customer.retail_customer_id,
        "name": customer.name,
        "profile": customer.profile,
        "service_points": [
            {
                "usage_point_id": point.usage_point_id,
                "kind": point.kind,
                "address": point.address,
                "solar": point.solar,
                "meter_readings": [_meter_view(m) for m in point.meters],
            }
            for point in customer.service_points
        ],
    }


def _meter_view(meter: data.Meter) -> dict[str, Any]:
    spec = meter.spec
    return {
        "meter_reading_id": meter.meter_reading_id,
        "reading_type_id": spec.reading_type_id,
        "uom": spec.uom,
        "power_of_ten_multiplier": spec.power_of_ten_multiplier,
        "flow_direction": spec.flow_direction,
        "interval_length": spec.interval_length,
        "commodity": spec.commodity,
    }


def _truth(
    seed: int,
    customer: data.Customer,
    start: int,
    end: int,
    usage_point_id: str | None,
    with_cost: bool = True,
) -> dict[str, Any]:
    """Every reading in [start, end); ``cost`` is None where the grant does not cover costs."""
    points = []
    for point in customer.service_points:
        if usage_point_id is not None and point.usage_point_id != usage_point_id:
            continue
        meters = []
        for meter in point.meters:
            readings = (
                [
                    {
                        "start": r.start,
                        "duration": r.duration,
                        "value": r.value,
                        "quality": r.quality,
                        "tou": r.tou,
                        "cost": r.cost if with_cost else None,
                    }
                    for r in data.readings(seed, point, meter, start, end)
                ]
                if end > start
                else []
            )
            meters.append({**_meter_view(meter), "readings": readings})
        points.append(
            {"usage_point_id": point.usage_point_id, "kind": point.kind, "meter_readings": meters}
        )
    return {
        "retail_customer_id": customer.retail_customer_id,
        "start": start,
        "end": end,
        "usage_points": points,
    }

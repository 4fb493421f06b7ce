"""The customer-facing HTTP routes: landing page, redirect, callback, status page and its JSON."""

from __future__ import annotations

from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse, JSONResponse, RedirectResponse, Response
from fastapi.templating import Jinja2Templates
from scwadd_core.throttle import TokenBucket, retry_after_header

from scwadd_auth import metrics
from scwadd_auth.oauth_state import BROWSER_COOKIE
from scwadd_auth.service import AuthService, Outcome
from scwadd_auth.status import PHASES

TEMPLATES = Jinja2Templates(directory=str(Path(__file__).parent / "templates"))
AUTHORIZE_PATH = "/authorize"
STEPS = [
    ("waiting", "Permission received"),
    ("fetching", "Reading your data from PG&E"),
    ("exporting", "Building your file"),
    ("done", "Delivered, access revoked"),
]
# Pages that carry a state, a code or a status link must not be cached or leak via Referer.
NO_STORE = {"Cache-Control": "no-store", "Referrer-Policy": "no-referrer"}
assert {key for key, _ in STEPS} <= set(PHASES)


def build_router(service: AuthService) -> APIRouter:
    settings = service.settings
    router = APIRouter()
    throttle = TokenBucket(burst=settings.AUTHORIZE_BURST, per_minute=settings.AUTHORIZE_PER_MINUTE)

    @router.get("/", response_class=HTMLResponse)
    async def landing(request: Request) -> Response:
        return TEMPLATES.TemplateResponse(
            request,
            "landing.html",
            {
                "operator_name": settings.OPERATOR_NAME,
                "purpose": settings.OPERATOR_PURPOSE.rstrip(". "),
                "retention_days": f"{settings.EXPORT_RETENTION_DAYS:g}",
                "raw_days": f"{settings.NATS_RAW_MAX_AGE_DAYS:g}",
                "privacy_contact": settings.PRIVACY_CONTACT,
                "privacy_url": settings.PRIVACY_POLICY_URL,
                "history_months": max(1, round(settings.HISTORY_DAYS / 30.44)),
                "deadline_hours": max(1, round(settings.GRANT_DEADLINE_MINUTES / 60)),
                "authorize_path": AUTHORIZE_PATH,
            },
        )

    @router.post(AUTHORIZE_PATH)
    async def authorize(request: Request) -> Response:
        if not same_origin(request, settings.public_origin):
            # A form posted from another site (CSRF): browsers always send Origin on a POST.
            metrics.AUTHORIZE_REFUSED.labels("cross_origin").inc()
            return _render(
                request,
                Outcome(
                    403,
                    heading="We could not start from this page",
                    sentence="This request did not come from our own page. Please start from "
                    "our page instead.",
                    start_over=True,
                ),
            )
        client = request.client.host if request.client is not None else "unknown"
        wait = throttle.take(client)
        if wait > 0:
            metrics.AUTHORIZE_REFUSED.labels("rate_limited").inc()
            response = _render(
                request,
                Outcome(
                    429,
                    heading="Too many attempts",
                    sentence="Please wait a minute before you try again.",
                    start_over=True,
                ),
            )
            response.headers["Retry-After"] = retry_after_header(wait)
            return response
        url, browser_token = await service.start_authorization(request.cookies.get(BROWSER_COOKIE))
        response = RedirectResponse(url, status_code=303, headers=NO_STORE)
        response.set_cookie(
            BROWSER_COOKIE,
            browser_token,
            max_age=settings.OAUTH_STATE_TTL_SECONDS,
            path="/",
            httponly=True,
            samesite="lax",
            secure=settings.secure_cookies,
        )
        return response

    @router.get(settings.OAUTH_CALLBACK_PATH)
    async def callback(request: Request) -> Response:
        params = {key: value for key, value in request.query_params.items()}
        outcome = await service.callback(params, request.cookies.get(BROWSER_COOKIE))
        return _render(request, outcome)

    @router.get("/status/{status_id}", response_class=HTMLResponse)
    async def status_page(request: Request, status_id: str) -> Response:
        view = await service.status_view(status_id)
        if view is None:
            return _not_found(request)
        return TEMPLATES.TemplateResponse(
            request,
            "status.html",
            {
                "view": view,
                "view_json": view.as_json(),
                "steps": STEPS,
                "json_url": f"/api/status/{status_id}",
            },
            headers=NO_STORE,
        )

    @router.get("/api/status/{status_id}")
    async def status_json(status_id: str) -> Response:
        view = await service.status_view(status_id)
        if view is None:
            return JSONResponse({"error": "unknown status id"}, status_code=404, headers=NO_STORE)
        return JSONResponse(view.as_json(), headers=NO_STORE)

    return router


def same_origin(request: Request, public_origin: str) -> bool:
    """``Origin`` (or, without it, ``Referer``) names our public origin, or neither is sent.

    Browsers send ``Origin`` on every cross-site POST (``null`` from sandboxed or privacy
    contexts, refused too); a request with neither header is not a browser's cross-site form,
    so it cannot be CSRF (OWASP's "verifying origin with standard headers").
    """
    origin = request.headers.get("origin")
    if origin is None:
        referer = request.headers.get("referer")
        if referer is None:
            return True
        parts = urlsplit(referer)
        origin = f"{parts.scheme}://{parts.netloc}"
    return origin.strip().lower().rstrip("/") == public_origin


def _render(request: Request, outcome: Outcome) -> Response:
    if outcome.location is not None:
        return RedirectResponse(outcome.location, status_code=outcome.status_code, headers=NO_STORE)
    context: dict[str, Any] = {
        "heading": outcome.heading,
        "sentence": outcome.sentence,
        "start_over": "/" if outcome.start_over else None,
    }
    return TEMPLATES.TemplateResponse(
        request, "message.html", context, status_code=outcome.status_code, headers=NO_STORE
    )


def _not_found(request: Request) -> Response:
    context = {
        "heading": "We do not know this page",
        "sentence": "This status link is not one of ours, or it was mistyped.",
        "start_over": None,
    }
    return TEMPLATES.TemplateResponse(
        request, "message.html", context, status_code=404, headers=NO_STORE
    )

"""The operator's console and its JSON API, behind the same HTTP Basic auth as ``/output/``.

Pages: ``/console/`` (needs action, then customers and exports: search, filters, sort, keyset
pages), ``/console/jobs/{job}`` (one export: summary, charts, downloads), ``POST
/console/jobs/{job}/revoke`` (CSRF-protected, audited). The JSON API under ``/api/`` mirrors
them (``/api/openapi.json`` describes it). Charts are drawn by plotly.js, served from the plotly
package installed with the service (``/console/static/plotly.min.js``): nothing from a CDN.
"""

from __future__ import annotations

import hashlib
import hmac
import importlib.resources
import json
from datetime import UTC, date, datetime, time
from pathlib import Path
from typing import Annotated, Any, Literal

import nats.js.errors
from fastapi import APIRouter, FastAPI, Form, Header, HTTPException, Query, Request
from fastapi import Path as Path_  # FastAPI's path parameter, not pathlib's
from fastapi.openapi.utils import get_openapi
from fastapi.responses import FileResponse, HTMLResponse, JSONResponse, RedirectResponse, Response
from pydantic import BaseModel
from scwadd_core.events import RAW_BUCKET
from scwadd_espi.convert import ConversionError
from scwadd_espi.parser import EspiParseError

from scwadd_files import analysis
from scwadd_files.console_pages import job_page, list_page, period_days
from scwadd_files.http import Operator, client_address
from scwadd_files.ledger import (
    GRANT_STATES,
    MAX_PAGE,
    SORTS,
    STATES,
    Console,
    ExportUnavailable,
    JobQuery,
)
from scwadd_files.models import ConsoleJob

CONSOLE_CSP = (
    "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
    "connect-src 'self'; form-action 'self'; base-uri 'none'; frame-ancestors 'none'"
)
STATIC_FILES = {
    "console.css": "text/css; charset=utf-8",
    "plotly.css": "text/css; charset=utf-8",
    "console.js": "text/javascript; charset=utf-8",
    "plotly.min.js": "text/javascript; charset=utf-8",
}
JOB_ID = r"^[A-Za-z0-9-]{1,64}$"
LAYOUTS = ("default", "pge", "scwadd")


def static_path(name: str) -> Path:
    """Where a console asset is on disk; plotly.min.js is the one the plotly wheel ships."""
    if name == "plotly.min.js":
        return Path(str(importlib.resources.files("plotly") / "package_data" / "plotly.min.js"))
    return Path(str(importlib.resources.files("scwadd_files") / "static" / name))


class JobOut(BaseModel):
    """One job as the console lists it. Energy figures are exact decimals as strings, in the
    CSV's units (kWh, therms); periods are ISO 8601."""

    job_id: str
    subscription_id: str
    state: str
    failure_reason: str | None
    grant_state: str
    grant_reason: str | None
    consented_at: datetime
    updated_at: datetime
    usage_points: list[dict[str, str]]
    services: list[str]
    period_promised: dict[str, str | None]
    period_covered: dict[str, str | None]
    covered_days: float | None
    promised_days: float | None
    delivered_kwh: str | None
    received_kwh: str | None
    therms: str | None
    peak_interval: dict[str, Any] | None
    gap_count: int | None
    gap_seconds: int | None
    # Rows whose reading had no value (blank in the CSV: unknown, not zero).
    rows_without_value: int | None = None
    estimated_share: float | None
    rows: int | None
    csv_layout: str | None
    links: dict[str, str]
    # Shared by the customer (RetailCustomer, UsageSummary): customer data, never logged.
    customer_name: str | None = None
    service_addresses: list[dict[str, Any]] = []
    # The manifest's ``bills`` and ``reconciliation`` (docs/csv.md), None without bills.
    bills: dict[str, Any] | None = None


class JobsOut(BaseModel):
    jobs: list[JobOut]
    total: int
    next: str | None


class RevokeOut(BaseModel):
    job_id: str
    outcome: Literal["requested", "not_flagged", "unknown_job"]


def _iso(moment: datetime | None) -> str | None:
    return moment.astimezone(UTC).isoformat() if moment else None


def job_out(job: ConsoleJob) -> JobOut:
    base = f"/api/jobs/{job.job_id}"
    links = {"self": base, "page": f"/console/jobs/{job.job_id}", "series": f"{base}/series"}
    if job.csv_object:
        links["csv_as_exported"] = f"/output/{job.csv_object}"
        for layout in LAYOUTS:
            links[f"csv_{layout}"] = f"{base}/csv?layout={layout}"
        links["hourly"] = f"{base}/rollup/hourly.csv"
        links["daily"] = f"{base}/rollup/daily.csv"
        for index, _ in enumerate(json.loads(job.raw_objects or "[]")):
            links[f"raw_{index}"] = f"{base}/raw/{index}"
    if job.manifest_object:
        links["manifest"] = f"/output/{job.manifest_object}"
    if job.bills_object:
        links["bills_csv"] = f"/output/{job.bills_object}"
    return JobOut(
        job_id=job.job_id,
        subscription_id=job.subscription_id,
        state=job.state,
        failure_reason=job.failure_reason,
        grant_state=job.grant_state,
        grant_reason=job.grant_reason,
        consented_at=job.received_at,
        updated_at=job.updated_at,
        usage_points=json.loads(job.usage_points or "[]"),
        services=[s for s in job.services.split(", ") if s],
        period_promised={"start": _iso(job.promised_start), "end": _iso(job.promised_end)},
        period_covered={"start": job.covered_start, "end": job.covered_end},
        covered_days=period_days(job.covered_start, job.covered_end),
        promised_days=period_days(job.promised_start, job.promised_end),
        delivered_kwh=job.delivered_kwh,
        received_kwh=job.received_kwh,
        therms=job.therms,
        peak_interval=(
            {"kwh": job.peak_kwh, "start_local": job.peak_start, "seconds": job.peak_seconds}
            if job.peak_kwh is not None
            else None
        ),
        gap_count=job.gap_count,
        gap_seconds=job.gap_seconds,
        rows_without_value=job.rows_without_value,
        estimated_share=job.estimated_share,
        rows=job.rows,
        csv_layout=job.csv_layout,
        links=links,
        customer_name=job.customer_name,
        service_addresses=json.loads(job.service_addresses or "[]"),
        bills=json.loads(job.bills) if job.bills else None,
    )


def _day_start(text: str | None, name: str) -> datetime | None:
    if not text:
        return None
    try:
        return datetime.combine(date.fromisoformat(text), time(), UTC)
    except ValueError:
        raise HTTPException(400, f"{name} must be a date, YYYY-MM-DD") from None


def build_query(
    q: str,
    state: str | None,
    grant: str | None,
    since: str | None,
    until: str | None,
    sort: str,
    after: str | None,
    limit: int,
) -> JobQuery:
    key, _, direction = sort.partition(":")
    if key not in SORTS or direction not in ("", "asc", "desc"):
        raise HTTPException(400, f"sort must be one of {sorted(SORTS)} with :asc or :desc")
    if state and state not in STATES:
        raise HTTPException(400, f"state must be one of {list(STATES)}")
    if grant and grant not in GRANT_STATES:
        raise HTTPException(400, f"grant must be one of {list(GRANT_STATES)}")
    return JobQuery(
        q=q.strip(),
        state=state or None,
        grant=grant or None,
        since=_day_start(since, "since"),
        until=_day_start(until, "until"),
        sort=key,
        descending=(direction or ("desc" if key != "subscription" else "asc")) == "desc",
        limit=limit,
        after=after or None,
    )


def csrf_token(request: Request, user: str) -> str:
    """A token bound to the operator: an HMAC keyed by their bcrypt hash (a secret every replica
    shares through the htpasswd, so any replica accepts it; it changes with the password)."""
    verifier = request.app.state.files.verifier
    return hmac.new(
        verifier.secret_for(user), b"scwadd-console-csrf\x00" + user.encode(), hashlib.sha256
    ).hexdigest()


def _check_origin(request: Request) -> None:
    """A browser sends Origin on a POST; one from another site is refused whatever the token."""
    origin = request.headers.get("origin")
    if origin and origin != "null":
        host = request.headers.get("host", "")
        if origin.split("://", 1)[-1] != host:
            raise HTTPException(403, "cross-site request refused")


def add_console(app: FastAPI, console: Console) -> None:
    """Mount the console pages, the API and the static files on the files service's app."""
    api = APIRouter(prefix="/api", tags=["console"])

    async def load(job_id: str) -> ConsoleJob:
        job = await console.job(job_id)
        if job is None:
            raise HTTPException(404, "No such job.")
        return job

    async def run_page(query: JobQuery) -> Any:
        try:
            return await console.page(query)
        except ValueError as error:
            raise HTTPException(400, str(error)) from None

    # -- JSON API ------------------------------------------------------------------------
    @api.get("/jobs", response_model=JobsOut, summary="Customers and exports, one row per job")
    async def api_list(
        user: Operator,
        q: Annotated[str, Query(max_length=100)] = "",
        state: Annotated[str | None, Query()] = None,
        grant: Annotated[str | None, Query()] = None,
        since: Annotated[str | None, Query(description="consented on or after, YYYY-MM-DD")] = None,
        until: Annotated[str | None, Query(description="consented before, YYYY-MM-DD")] = None,
        sort: Annotated[
            str, Query(description="received|subscription|delivered[:asc|:desc]")
        ] = "received:desc",
        after: Annotated[
            str | None, Query(max_length=300, description="the previous page's `next`")
        ] = None,
        limit: Annotated[int, Query(ge=1, le=MAX_PAGE)] = 50,
    ) -> JobsOut:
        query = build_query(q, state, grant, since, until, sort, after, limit)
        page = await run_page(query)
        return JobsOut(
            jobs=[job_out(j) for j in page.jobs], total=page.total, next=page.next_cursor
        )

    @api.get("/needs-action", response_model=list[JobOut], summary="Flagged and unrevoked grants")
    async def api_needs(user: Operator) -> list[JobOut]:
        return [job_out(j) for j in await console.needs_action()]

    @api.get("/jobs/{job_id}", response_model=JobOut, summary="One job")
    async def api_job(user: Operator, job_id: Annotated[str, Path_(pattern=JOB_ID)]) -> JobOut:
        return job_out(await load(job_id))

    @api.get("/jobs/{job_id}/series", summary="The charts' series (daily, heat map, profile)")
    async def api_series(
        user: Operator, job_id: Annotated[str, Path_(pattern=JOB_ID)]
    ) -> JSONResponse:
        job = await load(job_id)
        if not job.csv_object:
            raise HTTPException(409, "This job has no export.")
        try:
            result = await console.analysis(job.job_id)
        except ExportUnavailable as error:
            raise HTTPException(410, str(error)) from None
        return JSONResponse(
            {
                "job_id": job.job_id,
                "summary": {
                    "delivered_kwh": result.summary.delivered_kwh,
                    "received_kwh": result.summary.received_kwh,
                    "therms": result.summary.therms,
                    "rows": result.summary.rows,
                },
                "daily": result.daily,
                "heatmap": result.heatmap,
                "profile": result.profile,
            },
            headers={"Cache-Control": "private, no-store"},
        )

    async def _download(
        data: bytes, filename: str, media: str, request: Request, user: str
    ) -> Response:
        import logging

        logging.getLogger("scwadd_files.audit").info(
            "download",
            extra={
                "audit": "download",
                "user": user,
                "object": filename,
                "status": 200,
                "bytes_sent": len(data),
                "outcome": "complete",
                "client": client_address(request),
                "at": datetime.now(UTC).isoformat(),
            },
        )
        return Response(
            data,
            media_type=media,
            headers={
                "Content-Disposition": f'attachment; filename="{filename}"',
                "Cache-Control": "private, no-store",
            },
        )

    def _base(job: ConsoleJob) -> str:
        return (job.csv_object or f"{job.job_id}.csv").removesuffix(".csv")

    @api.get("/jobs/{job_id}/csv", summary="The CSV in a layout, converted again from the raw XML")
    async def api_csv(
        request: Request,
        user: Operator,
        job_id: Annotated[str, Path_(pattern=JOB_ID)],
        layout: Annotated[Literal["default", "pge", "scwadd"], Query()] = "default",
    ) -> Response:
        job = await load(job_id)
        try:
            data = await console.csv_in_layout(job, layout)
        except ExportUnavailable as error:
            raise HTTPException(410, str(error)) from None
        except (EspiParseError, ConversionError) as error:
            raise HTTPException(422, f"the raw documents cannot be converted: {error}") from None
        return await _download(
            data, f"{_base(job)}.{layout}.csv", "text/csv; charset=utf-8", request, user
        )

    @api.get("/jobs/{job_id}/rollup/{period}.csv", summary="Hourly or daily sums per meter")
    async def api_rollup(
        request: Request,
        user: Operator,
        job_id: Annotated[str, Path_(pattern=JOB_ID)],
        period: Literal["hourly", "daily"],
    ) -> Response:
        job = await load(job_id)
        try:
            data = await console.default_csv(job.job_id)
        except ExportUnavailable as error:
            raise HTTPException(410, str(error)) from None
        body = analysis.rollup_csv(analysis.read_rows(data), period)
        return await _download(
            body, f"{_base(job)}.{period}.csv", "text/csv; charset=utf-8", request, user
        )

    @api.get("/jobs/{job_id}/raw/{index}", summary="A Green Button XML document as received")
    async def api_raw(
        request: Request,
        user: Operator,
        job_id: Annotated[str, Path_(pattern=JOB_ID)],
        index: Annotated[int, Path_(ge=0, le=10_000)],
    ) -> Response:
        job = await load(job_id)
        names: list[str] = json.loads(job.raw_objects or "[]")
        if index >= len(names):
            raise HTTPException(404, "No such document.")
        try:
            store = await console.bus.object_store(RAW_BUCKET)
            data = (await store.get(names[index])).data or b""
        except nats.js.errors.ObjectNotFoundError:
            raise HTTPException(410, "The raw document is no longer kept.") from None
        filename = f"{_base(job)}.{index + 1}.xml"
        return await _download(data, filename, "application/atom+xml", request, user)

    @api.get("/csrf", summary="The token a POST must carry (X-CSRF-Token)")
    async def api_csrf(request: Request, user: Operator) -> dict[str, str]:
        return {"csrf": csrf_token(request, user)}

    @api.post(
        "/jobs/{job_id}/revoke", response_model=RevokeOut, summary="Revoke a flagged grant again"
    )
    async def api_revoke(
        request: Request,
        user: Operator,
        job_id: Annotated[str, Path_(pattern=JOB_ID)],
        x_csrf_token: Annotated[str, Header()] = "",
    ) -> RevokeOut:
        _check_origin(request)
        if not hmac.compare_digest(x_csrf_token, csrf_token(request, user)):
            raise HTTPException(403, "missing or wrong X-CSRF-Token (GET /api/csrf)")
        outcome = await console.request_revocation(
            job_id, operator=user, client=client_address(request)
        )
        if outcome == "unknown_job":
            raise HTTPException(404, "No such job.")
        return RevokeOut(job_id=job_id, outcome=outcome)  # type: ignore[arg-type]

    app.include_router(api)

    @app.get("/api/openapi.json", include_in_schema=False)
    async def openapi(user: Operator) -> JSONResponse:
        return JSONResponse(
            get_openapi(
                title="SCWADD console API",
                version="1",
                description="The operator's console as JSON, behind the same HTTP Basic auth.",
                routes=api.routes,
            )
        )

    # -- pages ---------------------------------------------------------------------------
    def html(body: str, status: int = 200) -> HTMLResponse:
        return HTMLResponse(
            body,
            status_code=status,
            headers={"Cache-Control": "no-store", "Content-Security-Policy": CONSOLE_CSP},
        )

    @app.get("/console", include_in_schema=False)
    async def console_without_slash() -> RedirectResponse:
        return RedirectResponse("/console/", status_code=307)

    @app.get("/console/", include_in_schema=False)
    async def console_list(
        request: Request,
        user: Operator,
        q: Annotated[str, Query(max_length=100)] = "",
        state: str | None = None,
        grant: str | None = None,
        since: str | None = None,
        until: str | None = None,
        sort: str = "received:desc",
        after: Annotated[str | None, Query(max_length=300)] = None,
        limit: Annotated[int, Query(ge=1, le=MAX_PAGE)] = 50,
    ) -> HTMLResponse:
        query = build_query(q, state, grant, since, until, sort, after, limit)
        page = await run_page(query)
        params = {
            k: v
            for k, v in {
                "q": q,
                "state": state,
                "grant": grant,
                "since": since,
                "until": until,
                "sort": sort,
                "limit": str(limit) if limit != 50 else None,
            }.items()
            if v
        }
        if after:
            params["after"] = after
        needs = await console.needs_action()
        return html(
            list_page(
                page, query, user=user, needs=needs, csrf=csrf_token(request, user), params=params
            )
        )

    @app.get("/console/jobs/{job_id}", include_in_schema=False)
    async def console_job(
        request: Request,
        user: Operator,
        job_id: Annotated[str, Path_(pattern=JOB_ID)],
        requested: Annotated[str | None, Query(pattern="^(requested|not_flagged)$")] = None,
    ) -> HTMLResponse:
        job = await load(job_id)
        notice = {
            "requested": "Asked the exporter to revoke this grant again; the outcome appears here.",
            "not_flagged": "This grant is not flagged any more: nothing was sent.",
        }.get(requested or "")
        page = job_page(
            job,
            user=user,
            csrf=csrf_token(request, user),
            actions=await console.actions(job_id),
            notice=notice,
        )
        return html(page)

    @app.post("/console/jobs/{job_id}/revoke", include_in_schema=False)
    async def console_revoke(
        request: Request,
        user: Operator,
        job_id: Annotated[str, Path_(pattern=JOB_ID)],
        csrf: Annotated[str, Form(max_length=200)] = "",
    ) -> RedirectResponse:
        _check_origin(request)
        if not hmac.compare_digest(csrf, csrf_token(request, user)):
            raise HTTPException(403, "The form is stale or forged (CSRF token): reload the page.")
        outcome = await console.request_revocation(
            job_id, operator=user, client=client_address(request)
        )
        if outcome == "unknown_job":
            raise HTTPException(404, "No such job.")
        return RedirectResponse(f"/console/jobs/{job_id}?requested={outcome}", status_code=303)

    @app.get("/console/static/{name}", include_in_schema=False)
    async def static(name: str) -> FileResponse:
        media = STATIC_FILES.get(name)
        if media is None:
            raise HTTPException(404, "No such file.")
        return FileResponse(
            static_path(name),
            media_type=media,
            headers={"Cache-Control": "public, max-age=3600"},
        )

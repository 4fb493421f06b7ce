"""The operator's file server: ``/output/`` lists the exports, ``/output/{name}`` streams one
from the ``scwadd-exports`` object store, both behind HTTP Basic (bcrypt htpasswd); the console
(:mod:`scwadd_files.console`) is mounted beside them when the service has its read model."""

from __future__ import annotations

import base64
import binascii
import logging
import re
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from email.utils import format_datetime, parsedate_to_datetime
from typing import Annotated, Any

import nats.js.errors
from fastapi import Depends, FastAPI, HTTPException, Query, Request
from fastapi.responses import (
    HTMLResponse,
    JSONResponse,
    RedirectResponse,
    Response,
    StreamingResponse,
)
from prometheus_client import Counter
from scwadd_core.events import EXPORTS_BUCKET
from scwadd_core.objects import ObjectEntry, list_entries, object_entry, stream_object
from scwadd_core.throttle import retry_after_header
from scwadd_core.web import create_app

from scwadd_files.pages import listing_page
from scwadd_files.service import FilesService, NotSignedIn, SignInThrottled

log = logging.getLogger(__name__)
audit = logging.getLogger("scwadd_files.audit")

REALM = "SCWADD exports"
# Names the exporter writes (`<subscription>-<date>-<job>.csv`, `.manifest.json`). Anything else,
# and in particular anything with a slash, a backslash, "..", a NUL or a leading dot, is refused
# before the store is asked.
SAFE_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,254}$")

DOWNLOADS = Counter(
    "scwadd_files_downloads_total",
    "Export downloads by HTTP status (200 whole file, 206 range, 304 not modified).",
    ["status"],
)

SECURITY_HEADERS = {
    "X-Content-Type-Options": "nosniff",
    "X-Frame-Options": "DENY",
    "Referrer-Policy": "no-referrer",
    "Content-Security-Policy": (
        "default-src 'none'; style-src 'unsafe-inline'; frame-ancestors 'none'"
    ),
}


def is_safe_name(name: str) -> bool:
    return bool(SAFE_NAME.match(name)) and ".." not in name


def content_type_for(name: str) -> str:
    if name.endswith(".csv"):
        return "text/csv; charset=utf-8"
    if name.endswith(".json"):
        return "application/json"
    return "application/octet-stream"


def parse_basic(header: str | None) -> tuple[str, str] | None:
    if not header:
        return None
    scheme, _, encoded = header.partition(" ")
    if scheme.lower() != "basic" or not encoded:
        return None
    try:
        decoded = base64.b64decode(encoded.strip(), validate=True).decode("utf-8")
    except (binascii.Error, UnicodeDecodeError):
        return None
    user, sep, password = decoded.partition(":")
    if not sep:
        return None
    return user, password


def parse_range(header: str, size: int) -> tuple[int, int] | str | None:
    """One ``bytes=`` range → (start, end) inclusive; None to ignore the header (malformed or
    several ranges: serving the whole file is always allowed); "unsatisfiable" for a 416."""
    unit, _, spec = header.partition("=")
    if unit.strip().lower() != "bytes" or "," in spec:
        return None
    first, dash, last = spec.strip().partition("-")
    if not dash:
        return None
    try:
        if first == "":
            suffix = int(last)
            if suffix <= 0:
                return "unsatisfiable"
            return (max(size - suffix, 0), size - 1) if size else "unsatisfiable"
        start = int(first)
        end = int(last) if last else size - 1
    except ValueError:
        return None
    if start < 0 or (last and end < start):
        return None
    if start >= size:
        return "unsatisfiable"
    return start, min(end, size - 1)


def client_address(request: Request) -> str:
    return request.client.host if request.client else "unknown"


async def current_operator(request: Request) -> str:
    """The signed-in operator's name, or a 401 (challenge) / 429 (``Retry-After``)."""
    service: FilesService = request.app.state.files
    credentials = parse_basic(request.headers.get("authorization"))
    try:
        return await service.sign_in(client_address(request), credentials)
    except SignInThrottled as refused:
        raise HTTPException(
            status_code=429,
            detail="Too many failed sign-ins from your address; try again later.",
            headers={"Retry-After": retry_after_header(refused.wait)},
        ) from None
    except NotSignedIn:
        raise HTTPException(
            status_code=401,
            detail="Sign in with the operator's user name and password.",
            headers={"WWW-Authenticate": f'Basic realm="{REALM}", charset="UTF-8"'},
        ) from None


Operator = Annotated[str, Depends(current_operator)]


def build_app(service: FilesService) -> FastAPI:
    app = create_app("scwadd files", checks={"nats": service.exports_ready})
    app.state.files = service

    @app.middleware("http")
    async def security_headers(request: Request, call_next: Any) -> Response:
        response: Response = await call_next(request)
        for header, value in SECURITY_HEADERS.items():
            response.headers.setdefault(header, value)
        return response

    @app.get("/", include_in_schema=False)
    async def root() -> RedirectResponse:
        return RedirectResponse("/console/" if service.console else "/output/", status_code=307)

    @app.get("/output", include_in_schema=False)
    async def output_without_slash() -> RedirectResponse:
        return RedirectResponse("/output/", status_code=307)

    @app.get("/output/")
    async def listing(
        request: Request,
        user: Operator,
        format: Annotated[str | None, Query(pattern="^(json|html)$")] = None,
    ) -> Response:
        entries = await list_entries(service.bus.js, EXPORTS_BUCKET)
        accept = request.headers.get("accept", "")
        wants_json = format == "json" or (
            format is None and "application/json" in accept and "text/html" not in accept
        )
        headers = {"Cache-Control": "no-store", "Vary": "Accept"}
        if wants_json:
            return JSONResponse(
                {
                    "exports": [
                        {
                            "name": entry.name,
                            "size": entry.size,
                            "modified": entry.modified.astimezone(UTC).isoformat(),
                            "sha256": entry.sha256_hex,
                            "url": f"/output/{entry.name}",
                        }
                        for entry in entries
                    ],
                    "retention_days": service.retention_days,
                },
                headers=headers,
            )
        page = listing_page(entries, user=user, retention_days=service.retention_days)
        # The page's own, stricter policy (its one inline style block, nothing else): set on
        # the response, so the shared default of scwadd_core.web keeps it.
        csp = {"Content-Security-Policy": SECURITY_HEADERS["Content-Security-Policy"]}
        return HTMLResponse(page, headers=headers | csp)

    @app.api_route("/output/{name}", methods=["GET", "HEAD"])
    async def download(name: str, request: Request, user: Operator) -> Response:
        if not is_safe_name(name):
            raise HTTPException(status_code=400, detail="Not an export name.")
        try:
            entry = await object_entry(service.bus.js, EXPORTS_BUCKET, name)
        except nats.js.errors.ObjectNotFoundError:
            raise HTTPException(status_code=404, detail="No such export.") from None
        return _serve_entry(service, entry, request, user)

    if service.console is not None:
        from scwadd_files.console import add_console

        add_console(app, service.console)
    return app


def _not_modified(request: Request, entry: ObjectEntry, etag: str) -> bool:
    if_none_match = request.headers.get("if-none-match")
    if if_none_match is not None:
        tags = {tag.strip().removeprefix("W/") for tag in if_none_match.split(",")}
        return "*" in tags or etag in tags
    if_modified_since = request.headers.get("if-modified-since")
    if if_modified_since:
        try:
            since = parsedate_to_datetime(if_modified_since)
        except (TypeError, ValueError):
            return False
        if since.tzinfo is None:
            since = since.replace(tzinfo=UTC)
        return entry.modified.replace(microsecond=0) <= since
    return False


def _range_applies(request: Request, entry: ObjectEntry, etag: str) -> bool:
    if_range = request.headers.get("if-range")
    if if_range is None:
        return True
    if if_range.startswith('"'):
        return if_range == etag
    try:
        moment = parsedate_to_datetime(if_range)
    except (TypeError, ValueError):
        return False
    return entry.modified.replace(microsecond=0) <= moment.astimezone(UTC)


def _serve_entry(
    service: FilesService, entry: ObjectEntry, request: Request, user: str
) -> Response:
    etag = f'"{entry.sha256_hex}"'
    headers = {
        "ETag": etag,
        "Last-Modified": format_datetime(entry.modified.astimezone(UTC), usegmt=True),
        "Accept-Ranges": "bytes",
        # The name passed SAFE_NAME, so it needs no quoting beyond the quotes.
        "Content-Disposition": f'attachment; filename="{entry.name}"',
        "Cache-Control": "private, no-cache",
    }
    if _not_modified(request, entry, etag):
        DOWNLOADS.labels("304").inc()
        return Response(status_code=304, headers=headers)
    start, end, status = 0, entry.size - 1, 200
    range_header = request.headers.get("range")
    if range_header and _range_applies(request, entry, etag):
        wanted = parse_range(range_header, entry.size)
        if wanted == "unsatisfiable":
            DOWNLOADS.labels("416").inc()
            return Response(
                status_code=416, headers={**headers, "Content-Range": f"bytes */{entry.size}"}
            )
        if isinstance(wanted, tuple):
            start, end = wanted
            status = 206
            headers["Content-Range"] = f"bytes {start}-{end}/{entry.size}"
    length = max(end - start + 1, 0)
    headers["Content-Length"] = str(length)
    media_type = content_type_for(entry.name)
    if request.method == "HEAD":
        return Response(status_code=status, headers=headers, media_type=media_type)
    DOWNLOADS.labels(str(status)).inc()
    body = _audited(
        stream_object(service.bus.js, EXPORTS_BUCKET, entry, start=start, end=end),
        user=user,
        name=entry.name,
        client=client_address(request),
        status=status,
        byte_range=headers.get("Content-Range"),
    )
    return StreamingResponse(body, status_code=status, headers=headers, media_type=media_type)


async def _audited(
    chunks: AsyncIterator[bytes],
    *,
    user: str,
    name: str,
    client: str,
    status: int,
    byte_range: str | None,
) -> AsyncIterator[bytes]:
    """Pass the chunks through, then write the one audit line: who, what, when, how much."""
    sent = 0
    outcome = "aborted"
    try:
        async for chunk in chunks:
            sent += len(chunk)
            yield chunk
        outcome = "complete"
    except Exception:
        outcome = "failed"
        log.exception("download of %s failed", name)
        raise
    finally:
        audit.info(
            "download",
            extra={
                "audit": "download",
                "user": user,
                "object": name,
                "status": status,
                "range": byte_range,
                "bytes_sent": sent,
                "outcome": outcome,
                "client": client,
                "at": datetime.now(UTC).isoformat(),
            },
        )

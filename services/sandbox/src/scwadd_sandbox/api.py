"""The API face: the token endpoint and the ESPI REST resources, behind mutual TLS.

The TLS handshake already insists on a certificate issued by the configured CA (see
:mod:`scwadd_sandbox.tls`). Once the request names its client (HTTP Basic on the token endpoint,
the bearer token elsewhere), the certificate must also be one registered for that client;
otherwise the answer is PG&E's 400 "Invalid Certificate".
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import datetime as dt
import hmac
import logging
import uuid
from dataclasses import dataclass
from typing import Any

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse, PlainTextResponse, Response
from starlette.exceptions import HTTPException as StarletteHTTPException

from scwadd_sandbox import billing, data, documents
from scwadd_sandbox.config import (
    ESPI_ROOT,
    TEST_TOKEN_PATH,
    TOKEN_PATH,
    OverLimit,
    Registration,
    SandboxConfig,
)
from scwadd_sandbox.data import Meter, ServicePoint
from scwadd_sandbox.faults import FaultKind, malform, truncate
from scwadd_sandbox.notify import Notifier
from scwadd_sandbox.state import (
    CLIENT_SCOPE,
    FB_RETAIL_CUSTOMER,
    FB_USAGE_SUMMARY,
    FB_USAGE_SUMMARY_COST,
    AuthorizationRecord,
    BatchJob,
    BatchKind,
    SandboxState,
    TokenClass,
    TokenRecord,
    retry_after_header,
)
from scwadd_sandbox.tls import MergeSlashesMiddleware, TlsExtensionMiddleware, peer_fingerprint

log = logging.getLogger(__name__)

ATOM = "application/atom+xml"
XML = "application/xml"
INVALID_CERTIFICATE = "Invalid Certificate"
DUPLICATE_BATCH = "An unprocessed batch request for the same resource already exists"
DEFAULT_WINDOW = 31 * 86400


class Refusal(Exception):
    """A request the custodian refuses; becomes the response as is."""

    def __init__(self, response: Response) -> None:
        super().__init__(response.status_code)
        self.response = response


def _text(status: int, message: str, headers: dict[str, str] | None = None) -> Refusal:
    return Refusal(PlainTextResponse(message, status_code=status, headers=headers))


def _oauth_error(status: int, error: str, description: str) -> Refusal:
    body = {"error": error, "error_description": description}
    headers = {"Cache-Control": "no-store"}
    if status == 401:
        headers["WWW-Authenticate"] = 'Basic realm="datacustodian"'
    return Refusal(JSONResponse(body, status_code=status, headers=headers))


@dataclass(frozen=True)
class Caller:
    token: TokenRecord
    authorization: AuthorizationRecord | None


def create_api_app(
    config: SandboxConfig, state: SandboxState | None = None, notifier: Notifier | None = None
) -> Any:
    """The API face as an ASGI app (wrapped so it sees the client certificate)."""
    state = state if state is not None else SandboxState(config)
    notifier = notifier if notifier is not None else Notifier(state)
    app = FastAPI(title="ShareMyData sandbox API", docs_url=None, redoc_url=None, openapi_url=None)
    app.state.sandbox = state
    app.state.notifier = notifier

    @app.exception_handler(Refusal)
    async def refusal(_request: Request, exc: Refusal) -> Response:
        state.responses_by_status[exc.response.status_code] += 1
        return exc.response

    @app.exception_handler(StarletteHTTPException)
    async def http_error(_request: Request, exc: StarletteHTTPException) -> Response:
        state.responses_by_status[exc.status_code] += 1
        return PlainTextResponse(str(exc.detail), status_code=exc.status_code)

    def check_certificate(request: Request, client_id: str) -> None:
        registration = state.registration(client_id)
        fingerprint = peer_fingerprint(request.scope)
        if registration is None or fingerprint not in registration.cert_fingerprints:
            raise _text(400, INVALID_CERTIFICATE)

    def require_some_certificate(request: Request) -> None:
        fingerprint = peer_fingerprint(request.scope)
        known = any(fingerprint in r.cert_fingerprints for r in config.registrations)
        if not known:
            raise _text(400, INVALID_CERTIFICATE)

    # -- token endpoint ----------------------------------------------------------------
    @app.post(TOKEN_PATH)
    @app.post(TEST_TOKEN_PATH)
    async def token(request: Request) -> Response:
        require_some_certificate(request)
        client_id = _basic_client(request, state)
        check_certificate(request, client_id)
        state.count_call(client_id, "token", None)
        await _apply_faults(state, "token")
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

    # -- ESPI helpers ------------------------------------------------------------------
    async def enter(
        request: Request,
        endpoint: str,
        token_classes: tuple[TokenClass, ...],
        subscription_id: str | None = None,
    ) -> Caller:
        """Authenticate, account, rate-limit and fault one ESPI call."""
        require_some_certificate(request)
        header = request.headers.get("authorization", "")
        scheme, _, value = header.partition(" ")
        record = state.token(value.strip()) if scheme.lower() == "bearer" else None
        if record is None:
            raise _text(
                401,
                "Invalid or expired access token",
                {"WWW-Authenticate": 'Bearer error="invalid_token"'},
            )
        check_certificate(request, record.client_id)
        authorization = (
            state.authorizations.get(record.authorization_id) if record.authorization_id else None
        )
        state.count_call(
            record.client_id, endpoint, authorization.authorization_id if authorization else None
        )
        profile = config.over_limit
        wait = state.limiter.check(record.client_id, admit=profile is OverLimit.LENIENT)
        if wait is not None:
            # PG&E documents its limits, not its answer beyond them: one of three profiles.
            state.over_limit_by_client[record.client_id] += 1
            if profile is OverLimit.STRICT:
                raise _text(429, "Too Many Requests", {"Retry-After": retry_after_header(wait)})
            if profile is OverLimit.UNAVAILABLE:
                raise _text(503, "Service Unavailable")
        if record.token_class not in token_classes:
            raise _text(403, "This resource is not available with this type of access token")
        if subscription_id is not None and (
            authorization is None
            or authorization.subscription_id != subscription_id
            or not authorization.active
        ):
            raise _text(403, "The access token does not grant access to this subscription")
        return Caller(record, authorization)

    async def answer(
        endpoint_fault: FaultKind, body: bytes, media_type: str = ATOM, status: int = 200
    ) -> Response:
        if endpoint_fault is FaultKind.TRUNCATE:
            body = truncate(body)
        elif endpoint_fault is FaultKind.MALFORMED:
            body = malform(body)
        state.responses_by_status[status] += 1
        return Response(body, status_code=status, media_type=media_type)

    def no_content() -> Response:
        state.responses_by_status[204] += 1
        return Response(status_code=204)

    def point_of(record: AuthorizationRecord, usage_point_id: str) -> ServicePoint:
        point = record.customer.service_point(usage_point_id)
        if point is None:
            raise _text(404, "UsagePoint not found")
        return point

    def meter_of(point: ServicePoint, meter_reading_id: str) -> Meter:
        for meter in point.meters:
            if meter.meter_reading_id == meter_reading_id:
                return meter
        raise _text(404, "MeterReading not found")

    def data_range(request: Request, record: AuthorizationRecord) -> tuple[int, int] | None:
        """The published range asked for, widened to whole days, narrowed to the days updated
        in ``updated-min``..``updated-max`` and clipped to what exists; None when nothing is
        left."""
        start, end = parse_range(request, state.data_end, config.max_range_seconds)
        span = state.served_range(record, start, end)
        return updated_days(request, span)

    base = config.espi_base
    seed = config.seed

    # -- ESPI resources ----------------------------------------------------------------
    @app.get(ESPI_ROOT + "/ReadServiceStatus")
    async def read_service_status(request: Request) -> Response:
        await enter(request, "ReadServiceStatus", (TokenClass.CLIENT,))
        fault = await _apply_faults(state, "ReadServiceStatus")
        return await answer(fault, documents.service_status(), XML)

    @app.get(ESPI_ROOT + "/Subscription/{subscription_id}/UsagePoint")
    async def usage_points(request: Request, subscription_id: str) -> Response:
        caller = await enter(request, "UsagePoint", (TokenClass.CUSTOMER,), subscription_id)
        fault = await _apply_faults(state, "UsagePoint")
        record = _must(caller.authorization)
        body = documents.usage_point_feed(base, seed, record, record.customer.service_points)
        return await answer(fault, body)

    @app.get(ESPI_ROOT + "/Subscription/{subscription_id}/UsagePoint/{usage_point_id}")
    async def usage_point(request: Request, subscription_id: str, usage_point_id: str) -> Response:
        caller = await enter(request, "UsagePoint", (TokenClass.CUSTOMER,), subscription_id)
        fault = await _apply_faults(state, "UsagePoint")
        record = _must(caller.authorization)
        point = point_of(record, usage_point_id)
        return await answer(fault, documents.single_usage_point(base, seed, record, point))

    mr_root = ESPI_ROOT + "/Subscription/{subscription_id}/UsagePoint/{usage_point_id}/MeterReading"

    @app.get(mr_root)
    async def meter_readings(
        request: Request, subscription_id: str, usage_point_id: str
    ) -> Response:
        caller = await enter(request, "MeterReading", (TokenClass.CUSTOMER,), subscription_id)
        fault = await _apply_faults(state, "MeterReading")
        record = _must(caller.authorization)
        point = point_of(record, usage_point_id)
        return await answer(fault, documents.meter_reading_feed(base, seed, record, point))

    @app.get(mr_root + "/{meter_reading_id}")
    async def meter_reading(
        request: Request, subscription_id: str, usage_point_id: str, meter_reading_id: str
    ) -> Response:
        caller = await enter(request, "MeterReading", (TokenClass.CUSTOMER,), subscription_id)
        fault = await _apply_faults(state, "MeterReading")
        record = _must(caller.authorization)
        point = point_of(record, usage_point_id)
        meter = meter_of(point, meter_reading_id)
        body = documents.single_meter_reading(base, seed, record, point, meter)
        return await answer(fault, body)

    @app.get(mr_root + "/{meter_reading_id}/ReadingType/{reading_type_id}")
    async def nested_reading_type(
        request: Request,
        subscription_id: str,
        usage_point_id: str,
        meter_reading_id: str,
        reading_type_id: str,
    ) -> Response:
        caller = await enter(request, "ReadingType", (TokenClass.CUSTOMER,), subscription_id)
        fault = await _apply_faults(state, "ReadingType")
        record = _must(caller.authorization)
        point = point_of(record, usage_point_id)
        meter = meter_of(point, meter_reading_id)
        if meter.spec.reading_type_id != reading_type_id:
            raise _text(404, "ReadingType not found")
        body = documents.reading_type_entry(base, seed, record, point, meter)
        return await answer(fault, body)

    @app.get(mr_root + "/{meter_reading_id}/IntervalBlock")
    async def interval_blocks(
        request: Request, subscription_id: str, usage_point_id: str, meter_reading_id: str
    ) -> Response:
        caller = await enter(request, "IntervalBlock", (TokenClass.CUSTOMER,), subscription_id)
        record = _must(caller.authorization)
        point = point_of(record, usage_point_id)
        meter = meter_of(point, meter_reading_id)
        span = data_range(request, record)
        fault = await _apply_faults(state, "IntervalBlock")
        if span is None or fault is FaultKind.EMPTY:
            return no_content()
        body = await asyncio.to_thread(
            documents.interval_block_feed, base, seed, record, point, meter, *span
        )
        return await answer(fault, body)

    up_root = ESPI_ROOT + "/Subscription/{subscription_id}/UsagePoint/{usage_point_id}"

    @app.get(up_root + "/UsageSummary")
    async def usage_summary(
        request: Request, subscription_id: str, usage_point_id: str
    ) -> Response:
        caller = await enter(request, "UsageSummary", (TokenClass.CUSTOMER,), subscription_id)
        record = _in_scope(_must(caller.authorization), FB_USAGE_SUMMARY, FB_USAGE_SUMMARY_COST)
        point = point_of(record, usage_point_id)
        fault = await _apply_faults(state, "UsageSummary")
        start, end = parse_range(request, state.data_end, config.max_range_seconds)
        span = state.served_range(record, start, end)
        no_period = span is None or not billing.has_period(record.customer, *span)
        if span is None or no_period or fault is FaultKind.EMPTY:
            return no_content()
        start, end = span
        body = await asyncio.to_thread(
            documents.usage_summary_feed,
            base,
            seed,
            record,
            point,
            start,
            end,
            state.faults.config.billing,
        )
        return await answer(fault, body)

    @app.get(ESPI_ROOT + "/ReadingType/{reading_type_id}")
    async def reading_type(request: Request, reading_type_id: str) -> Response:
        caller = await enter(request, "ReadingType", (TokenClass.CUSTOMER, TokenClass.CLIENT))
        fault = await _apply_faults(state, "ReadingType")
        for record in _visible_authorizations(state, caller):
            for point in record.customer.service_points:
                for meter in point.meters:
                    if meter.spec.reading_type_id == reading_type_id:
                        body = documents.reading_type_entry(base, seed, record, point, meter)
                        return await answer(fault, body)
        raise _text(404, "ReadingType not found")

    @app.get(ESPI_ROOT + "/LocalTimeParameters")
    async def local_time_parameters_feed(request: Request) -> Response:
        await enter(request, "LocalTimeParameters", (TokenClass.CUSTOMER, TokenClass.CLIENT))
        fault = await _apply_faults(state, "LocalTimeParameters")
        return await answer(fault, documents.local_time_feed(base))

    @app.get(ESPI_ROOT + "/DownloadSampleData")
    async def download_sample_data(request: Request) -> Response:
        """PG&E's sample data for the client token: a week of the first sandbox customer."""
        await enter(request, "DownloadSampleData", (TokenClass.CLIENT,))
        fault = await _apply_faults(state, "DownloadSampleData")
        body = await asyncio.to_thread(
            documents.sample_feed, base, seed, state.customers[0], state.data_end, str(request.url)
        )
        return await answer(fault, body)

    @app.get(ESPI_ROOT + "/LocalTimeParameters/{local_time_id}")
    async def local_time_parameters(request: Request, local_time_id: str) -> Response:
        await enter(request, "LocalTimeParameters", (TokenClass.CUSTOMER, TokenClass.CLIENT))
        fault = await _apply_faults(state, "LocalTimeParameters")
        if local_time_id != documents.LOCAL_TIME_ID:
            raise _text(404, "LocalTimeParameters not found")
        return await answer(fault, documents.local_time_entry(base))

    @app.get(ESPI_ROOT + "/ProgramIdMappings/{mapping_id}")
    async def program_id_mappings(request: Request, mapping_id: str) -> Response:
        await enter(request, "ProgramIdMappings", (TokenClass.CUSTOMER, TokenClass.CLIENT))
        fault = await _apply_faults(state, "ProgramIdMappings")
        if mapping_id != documents.PROGRAM_ID_MAPPINGS_ID:
            raise _text(404, "ProgramIdMappings not found")
        return await answer(fault, documents.program_id_mappings_document(base))

    @app.get(ESPI_ROOT + "/Batch/Subscription/{subscription_id}/UsagePoint/{usage_point_id}")
    async def batch_usage_point(
        request: Request, subscription_id: str, usage_point_id: str
    ) -> Response:
        caller = await enter(
            request, "BatchSubscriptionUsagePoint", (TokenClass.CUSTOMER,), subscription_id
        )
        record = _must(caller.authorization)
        point = point_of(record, usage_point_id)
        span = data_range(request, record)
        fault = await _apply_faults(state, "BatchSubscriptionUsagePoint")
        if span is None or fault is FaultKind.EMPTY:
            return no_content()
        body = await asyncio.to_thread(
            documents.usage_feed,
            base,
            seed,
            record,
            [point],
            *span,
            str(request.url),
            state.faults.config.billing,
        )
        return await answer(fault, body)

    def start_batch(
        kind: BatchKind,
        client_id: str,
        authorization_id: str | None,
        span: tuple[int, int],
        key: tuple[str, ...],
    ) -> Response:
        """202 and a late notification; 400 while the identical request is still pending."""
        if any(job.pending and job.key == key for job in state.batches.values()):
            state.responses_by_status[400] += 1
            return PlainTextResponse(DUPLICATE_BATCH, status_code=400)
        registration = state.registration(client_id)
        assert registration is not None  # the caller's certificate matched it
        job = BatchJob(
            correlation_id=str(uuid.uuid4()),
            bulk_id=registration.bulk_id,
            kind=kind,
            client_id=client_id,
            authorization_id=authorization_id,
            published_min=span[0],
            published_max=span[1],
            key=key,
            delay_seconds=state.notification_delay(),
        )
        state.batches[job.correlation_id] = job
        notifier.schedule(job)
        state.responses_by_status[202] += 1
        return Response(status_code=202)

    @app.get(ESPI_ROOT + "/Batch/Subscription/{subscription_id}")
    async def batch_subscription(request: Request, subscription_id: str) -> Response:
        caller = await enter(request, "BatchSubscription", (TokenClass.CUSTOMER,), subscription_id)
        record = _must(caller.authorization)
        span = data_range(request, record)
        fault = await _apply_faults(state, "BatchSubscription")
        if span is None or fault is FaultKind.EMPTY:
            return no_content()
        key = ("subscription", subscription_id, str(span[0]), str(span[1]))
        return start_batch(
            BatchKind.SUBSCRIPTION, record.client_id, record.authorization_id, span, key
        )

    @app.get(ESPI_ROOT + "/Batch/Bulk/{bulk_id}")
    async def batch_bulk(request: Request, bulk_id: str) -> Response:
        """Without ``correlationID``: a Bulk request (202, then a notification). With it: the
        data a notification announced. The client token only, as PG&E documents."""
        caller = await enter(request, "BatchBulk", (TokenClass.CLIENT,))
        fault = await _apply_faults(state, "BatchBulk")
        client_id = caller.token.client_id
        registration = state.registration(client_id)
        if registration is None or bulk_id != registration.bulk_id:
            raise _text(404, "Bulk not found")
        correlation = request.query_params.get("correlationID")
        if correlation is None:
            start, end = parse_range(request, state.data_end, config.max_range_seconds)
            span = updated_days(request, state.bulk_range(start, end))
            if span is None or fault is FaultKind.EMPTY:
                return no_content()
            key = ("bulk", client_id, str(span[0]), str(span[1]))
            return start_batch(BatchKind.BULK, client_id, None, span, key)
        job = state.batches.get(correlation)
        if job is None or job.client_id != client_id:
            raise _text(404, "Batch not found")
        if job.authorization_id is not None:
            record = state.authorizations[job.authorization_id]
            if not record.active:
                raise _text(403, "The authorization of this batch has been revoked")
            records = [record]
        else:
            records = state.active_authorizations(client_id)
        parts = [
            (record, span)
            for record in records
            if (span := state.served_range(record, job.published_min, job.published_max))
        ]
        if not parts or fault is FaultKind.EMPTY:
            return no_content()
        body = await asyncio.to_thread(
            documents.bulk_feed, base, seed, parts, str(request.url), state.faults.config.billing
        )
        return await answer(fault, body)

    @app.get(ESPI_ROOT + "/Batch/RetailCustomer/{customer_id}")
    async def batch_retail_customer(request: Request, customer_id: str) -> Response:
        caller = await enter(request, "BatchRetailCustomer", (TokenClass.CUSTOMER,))
        fault = await _apply_faults(state, "BatchRetailCustomer")
        record = _in_scope(_must(caller.authorization), FB_RETAIL_CUSTOMER)
        # PG&E's clients pass either the retail customer id or the subscription id here.
        if customer_id not in (record.customer.retail_customer_id, record.subscription_id):
            raise _text(403, "The access token does not grant access to this customer")
        body = documents.retail_customer_feed(base, record, str(request.url))
        return await answer(fault, body)

    @app.get(ESPI_ROOT + "/Authorization")
    async def authorizations(request: Request) -> Response:
        caller = await enter(request, "Authorization", (TokenClass.CLIENT,))
        fault = await _apply_faults(state, "Authorization")
        registration = _registration(state, caller)
        records = [
            r for r in state.authorizations.values() if r.client_id == caller.token.client_id
        ]
        body = documents.authorization_feed(
            base, registration, records, config.authorization_times_in_ms
        )
        return await answer(fault, body)

    @app.get(ESPI_ROOT + "/Authorization/{authorization_id}")
    async def authorization(request: Request, authorization_id: str) -> Response:
        caller = await enter(request, "Authorization", (TokenClass.CLIENT,))
        fault = await _apply_faults(state, "Authorization")
        registration = _registration(state, caller)
        if authorization_id == registration.client_authorization_id:
            body = documents.client_authorization_entry(
                base, registration, config.authorization_times_in_ms
            )
            return await answer(fault, body)
        record = _own_authorization(state, caller, authorization_id)
        return await answer(
            fault, documents.authorization_entry(base, record, config.authorization_times_in_ms)
        )

    @app.delete(ESPI_ROOT + "/Authorization/{authorization_id}")
    async def revoke(request: Request, authorization_id: str) -> Response:
        caller = await enter(request, "Authorization", (TokenClass.CLIENT,))
        fault = await _apply_faults(state, "Authorization")
        if authorization_id == _registration(state, caller).client_authorization_id:
            raise _text(403, "The third party's own authorization cannot be revoked")
        record = _own_authorization(state, caller, authorization_id)
        if not state.revoke(record, by="third_party"):
            raise _text(410, "Authorization already revoked")
        return await answer(fault, b"", "text/plain")

    def merged(_path: str) -> None:
        state.merged_slash_paths += 1
        log.info("served a request path with repeated slashes as if merged")

    return TlsExtensionMiddleware(MergeSlashesMiddleware(app, merged))


def _must(record: AuthorizationRecord | None) -> AuthorizationRecord:
    if record is None:
        raise _text(403, "This resource needs a customer access token")
    return record


def _in_scope(record: AuthorizationRecord, *blocks: int) -> AuthorizationRecord:
    """403 unless the granted scope holds one of ``blocks`` (PG&E documents no answer for a
    resource outside the scope; 403 is the ESPI answer for a resource the token may not read)."""
    if not record.grants(*blocks):
        raise _text(403, "This resource is not within the granted scope")
    return record


def _registration(state: SandboxState, caller: Caller) -> Registration:
    registration = state.registration(caller.token.client_id)
    if registration is None:  # its certificate was checked against it a moment ago
        raise _text(400, INVALID_CERTIFICATE)
    return registration


def _visible_authorizations(state: SandboxState, caller: Caller) -> list[AuthorizationRecord]:
    if caller.authorization is not None:
        return [caller.authorization]
    return [r for r in state.authorizations.values() if r.client_id == caller.token.client_id]


def _own_authorization(
    state: SandboxState, caller: Caller, authorization_id: str
) -> AuthorizationRecord:
    record = state.authorizations.get(authorization_id)
    if record is None or record.client_id != caller.token.client_id:
        raise _text(404, "Authorization not found")
    return record


async def _apply_faults(state: SandboxState, endpoint: str) -> FaultKind:
    """Sleep the injected latency; answer 500/503/hang here; leave body faults to the caller."""
    decision = state.faults.decide(endpoint)
    if decision.latency_seconds:
        await asyncio.sleep(decision.latency_seconds)
    if decision.kind is FaultKind.ERROR_500:
        raise _text(500, "Internal Server Error")
    if decision.kind is FaultKind.ERROR_503:
        raise _text(503, "Service Unavailable", {"Retry-After": "1"})
    if decision.kind is FaultKind.HANG:
        await asyncio.sleep(state.faults.config.hang_seconds)
        raise _text(504, "Gateway Timeout")
    return decision.kind


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


def updated_days(request: Request, span: tuple[int, int] | None) -> tuple[int, int] | None:
    """The whole days of ``span`` updated in [``updated-min``, ``updated-max``). A day's readings
    are updated once, when the day ends (``data.day_updated``)."""
    raw_min = request.query_params.get("updated-min")
    raw_max = request.query_params.get("updated-max")
    if span is None or not (raw_min or raw_max):
        return span
    first, last = span
    if raw_min:
        # The first day ending at or after updated-min.
        first = max(first, data.pacific_midnight(parse_time(raw_min, "updated-min") - 1))
    if raw_max:
        updated_max = parse_time(raw_max, "updated-max")
        # Days ending before updated-max start before the day holding updated-max - 1.
        last = min(last, data.pacific_midnight(updated_max - 1))
    return (first, last) if last > first else None


def parse_time(value: str, name: str) -> int:
    """Epoch seconds or ISO 8601 (``2024-01-01T00:00:00Z``); both are what clients send."""
    text = value.strip()
    if text.lstrip("-").isdigit():
        return int(text)
    try:
        moment = dt.datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        raise _text(400, f"{name} is neither epoch seconds nor ISO 8601: {text[:40]!r}") from None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=dt.UTC)
    return int(moment.timestamp())


def parse_range(request: Request, data_end: int, max_range: int) -> tuple[int, int]:
    """``published-min``..``published-max`` (epoch seconds or ISO 8601). Missing max: now (the
    data's end); missing min: ``updated-min``'s day when that is given, else 31 days earlier."""
    raw_min = request.query_params.get("published-min")
    raw_max = request.query_params.get("published-max")
    end = parse_time(raw_max, "published-max") if raw_max else data_end
    if raw_min:
        start = parse_time(raw_min, "published-min")
    elif updated := request.query_params.get("updated-min"):
        start = min(data.pacific_midnight(parse_time(updated, "updated-min") - 1), end - 1)
    else:
        start = end - min(DEFAULT_WINDOW, max_range)
    if end <= start:
        raise _text(400, "published-max must be after published-min")
    if end - start > max_range:
        raise _text(400, f"The requested range exceeds the maximum of {max_range} seconds")
    return start, end

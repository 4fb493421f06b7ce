"""What every call to the API face goes through, whichever resource it names.

The TLS handshake already insists on a certificate issued by the configured CA (see
:mod:`scwadd_sandbox.tls`). Once the request names its client (HTTP Basic on the token endpoint,
the bearer token elsewhere), the certificate must also be one registered for that client;
otherwise the answer is PG&E's 400 "Invalid Certificate". :class:`EspiAccess` then counts the
call, applies the client ID's rate limits and the injected faults, and checks the token's class
and subscription; a refusal is raised as :class:`Refusal` and answered as is. The published and
updated ranges (``published-min`` ... ``updated-max``) are read here too.
"""

from __future__ import annotations

import asyncio
import datetime as dt
from dataclasses import dataclass

from fastapi import Request
from fastapi.responses import PlainTextResponse, Response
from scwadd_core.throttle import retry_after_header

from scwadd_sandbox import data
from scwadd_sandbox.config import OverLimit, SandboxConfig
from scwadd_sandbox.data import Meter, ServicePoint
from scwadd_sandbox.faults import FaultKind, malform, truncate
from scwadd_sandbox.state import AuthorizationRecord, SandboxState, TokenClass, TokenRecord
from scwadd_sandbox.tls import peer_fingerprint

ATOM = "application/atom+xml"
XML = "application/xml"
INVALID_CERTIFICATE = "Invalid Certificate"
DEFAULT_WINDOW = 31 * 86400


class Refusal(Exception):
    """A request the custodian refuses; becomes the response as is."""

    def __init__(self, response: Response) -> None:
        super().__init__(response.status_code)
        self.response = response


def refuse(status: int, message: str, headers: dict[str, str] | None = None) -> Refusal:
    """A plain-text refusal (PG&E answers its errors as text)."""
    return Refusal(PlainTextResponse(message, status_code=status, headers=headers))


@dataclass(frozen=True)
class Caller:
    token: TokenRecord
    authorization: AuthorizationRecord | None


class EspiAccess:
    """The checks, accounting and answers the API face's routers share (one per app)."""

    def __init__(self, config: SandboxConfig, state: SandboxState) -> None:
        self.config = config
        self.state = state

    def check_certificate(self, request: Request, client_id: str) -> None:
        registration = self.state.registration(client_id)
        fingerprint = peer_fingerprint(request.scope)
        if registration is None or fingerprint not in registration.cert_fingerprints:
            raise refuse(400, INVALID_CERTIFICATE)

    def require_some_certificate(self, request: Request) -> None:
        fingerprint = peer_fingerprint(request.scope)
        known = any(fingerprint in r.cert_fingerprints for r in self.config.registrations)
        if not known:
            raise refuse(400, INVALID_CERTIFICATE)

    async def enter(
        self,
        request: Request,
        endpoint: str,
        token_classes: tuple[TokenClass, ...],
        subscription_id: str | None = None,
    ) -> Caller:
        """Authenticate, account, rate-limit and fault one ESPI call."""
        self.require_some_certificate(request)
        header = request.headers.get("authorization", "")
        scheme, _, value = header.partition(" ")
        record = self.state.token(value.strip()) if scheme.lower() == "bearer" else None
        if record is None:
            raise refuse(
                401,
                "Invalid or expired access token",
                {"WWW-Authenticate": 'Bearer error="invalid_token"'},
            )
        self.check_certificate(request, record.client_id)
        authorization = (
            self.state.authorizations.get(record.authorization_id)
            if record.authorization_id
            else None
        )
        self.state.count_call(
            record.client_id, endpoint, authorization.authorization_id if authorization else None
        )
        profile = self.config.over_limit
        wait = self.state.limiter.check(record.client_id, admit=profile is OverLimit.LENIENT)
        if wait is not None:
            # PG&E documents its limits, not its answer beyond them: one of three profiles.
            self.state.over_limit_by_client[record.client_id] += 1
            if profile is OverLimit.STRICT:
                raise refuse(429, "Too Many Requests", {"Retry-After": retry_after_header(wait)})
            if profile is OverLimit.UNAVAILABLE:
                raise refuse(503, "Service Unavailable")
        if record.token_class not in token_classes:
            raise refuse(403, "This resource is not available with this type of access token")
        if subscription_id is not None and (
            authorization is None
            or authorization.subscription_id != subscription_id
            or not authorization.active
        ):
            raise refuse(403, "The access token does not grant access to this subscription")
        return Caller(record, authorization)

    async def answer(
        self, endpoint_fault: FaultKind, body: bytes, media_type: str = ATOM, status: int = 200
    ) -> Response:
        if endpoint_fault is FaultKind.TRUNCATE:
            body = truncate(body)
        elif endpoint_fault is FaultKind.MALFORMED:
            body = malform(body)
        self.state.responses_by_status[status] += 1
        return Response(body, status_code=status, media_type=media_type)

    def no_content(self) -> Response:
        self.state.responses_by_status[204] += 1
        return Response(status_code=204)

    def point_of(self, record: AuthorizationRecord, usage_point_id: str) -> ServicePoint:
        point = record.customer.service_point(usage_point_id)
        if point is None:
            raise refuse(404, "UsagePoint not found")
        return point

    def meter_of(self, point: ServicePoint, meter_reading_id: str) -> Meter:
        for meter in point.meters:
            if meter.meter_reading_id == meter_reading_id:
                return meter
        raise refuse(404, "MeterReading not found")

    def data_range(self, request: Request, record: AuthorizationRecord) -> tuple[int, int] | None:
        """The published range asked for, widened to whole days, narrowed to the days updated
        in ``updated-min``..``updated-max`` and clipped to what exists; None when nothing is
        left."""
        start, end = parse_range(request, self.state.data_end, self.config.max_range_seconds)
        span = self.state.served_range(record, start, end)
        return updated_days(request, span)


def customer_record(record: AuthorizationRecord | None) -> AuthorizationRecord:
    if record is None:
        raise refuse(403, "This resource needs a customer access token")
    return record


async def apply_faults(state: SandboxState, endpoint: str) -> FaultKind:
    """Sleep the injected latency; answer 500/503/hang here; leave body faults to the caller."""
    decision = state.faults.decide(endpoint)
    if decision.latency_seconds:
        await asyncio.sleep(decision.latency_seconds)
    if decision.kind is FaultKind.ERROR_500:
        raise refuse(500, "Internal Server Error")
    if decision.kind is FaultKind.ERROR_503:
        raise refuse(503, "Service Unavailable", {"Retry-After": "1"})
    if decision.kind is FaultKind.HANG:
        await asyncio.sleep(state.faults.config.hang_seconds)
        raise refuse(504, "Gateway Timeout")
    return decision.kind


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
        raise refuse(400, f"{name} is neither epoch seconds nor ISO 8601: {text[:40]!r}") from None
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
        raise refuse(400, "published-max must be after published-min")
    if end - start > max_range:
        raise refuse(400, f"The requested range exceeds the maximum of {max_range} seconds")
    return start, end

"""The sandbox's admin API (``/admin/...``, bearer admin token): registrations, customers,
authorizations and their revocation, call counts, faults, token expiry, batches, and the truth
(a customer's exact readings) that tests compare the pipeline's CSV with."""

from __future__ import annotations

import hmac
from typing import Annotated, Any

from fastapi import APIRouter, Body, Request
from fastapi.responses import JSONResponse, Response

from scwadd_sandbox import billing, data, documents
from scwadd_sandbox.config import SandboxConfig
from scwadd_sandbox.faults import BillingFaults, FaultConfig
from scwadd_sandbox.http.access import parse_time
from scwadd_sandbox.state import FB_COST, AuthorizationRecord, SandboxState

TRUTH_MAX_DAYS = 800


def admin_router(config: SandboxConfig, state: SandboxState) -> APIRouter:
    router = APIRouter()

    def admin(request: Request) -> None:
        header = request.headers.get("authorization", "")
        scheme, _, value = header.partition(" ")
        if scheme.lower() != "bearer" or not hmac.compare_digest(
            value.strip().encode(), config.admin_token.encode()
        ):
            raise AdminRefused()

    @router.get("/admin/registrations")
    async def registrations(request: Request) -> list[dict[str, Any]]:
        admin(request)
        return [r.public_view() for r in config.registrations]

    @router.get("/admin/customers")
    async def customers(request: Request) -> list[dict[str, Any]]:
        admin(request)
        return [_customer_view(c) for c in state.customers]

    @router.get("/admin/authorizations")
    async def authorizations(request: Request) -> list[dict[str, Any]]:
        admin(request)
        return [r.public_view() for r in state.authorizations.values()]

    @router.post("/admin/authorizations/{authorization_id}/revoke")
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

    @router.get("/admin/calls")
    async def calls(request: Request) -> dict[str, Any]:
        admin(request)
        return state.call_report()

    @router.delete("/admin/calls")
    async def reset_calls(request: Request) -> dict[str, str]:
        admin(request)
        state.calls_by_client.clear()
        state.over_limit_by_client.clear()
        state.merged_slash_paths = 0
        state.calls_by_authorization.clear()
        state.responses_by_status.clear()
        return {"status": "reset"}

    @router.get("/admin/faults")
    async def get_faults(request: Request) -> dict[str, Any]:
        admin(request)
        return state.faults.config.model_dump()

    @router.put("/admin/faults")
    async def put_faults(request: Request, faults: FaultConfig) -> dict[str, Any]:
        admin(request)
        state.faults.replace(faults)
        return state.faults.config.model_dump()

    @router.post("/admin/tokens/expire")
    async def expire_tokens(
        request: Request, client_id: Annotated[str | None, Body(embed=True)] = None
    ) -> dict[str, int]:
        admin(request)
        return {"expired": state.expire_tokens(client_id)}

    @router.get("/admin/batches")
    async def batches(request: Request) -> list[dict[str, Any]]:
        admin(request)
        return [job.public_view() for job in state.batches.values()]

    @router.get("/admin/truth")
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

    return router


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

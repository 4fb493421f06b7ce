"""The ESPI resources a token may read (NAESB ESPI REST, PG&E's Share My Data API):
ReadServiceStatus, UsagePoint, MeterReading, ReadingType, IntervalBlock, UsageSummary,
LocalTimeParameters, ProgramIdMappings, DownloadSampleData and the RetailCustomer batch."""

from __future__ import annotations

import asyncio

from fastapi import APIRouter, Request
from fastapi.responses import Response

from scwadd_sandbox import billing, documents
from scwadd_sandbox.config import ESPI_ROOT
from scwadd_sandbox.faults import FaultKind
from scwadd_sandbox.http.access import (
    XML,
    Caller,
    EspiAccess,
    apply_faults,
    customer_record,
    parse_range,
    refuse,
)
from scwadd_sandbox.state import (
    FB_RETAIL_CUSTOMER,
    FB_USAGE_SUMMARY,
    FB_USAGE_SUMMARY_COST,
    AuthorizationRecord,
    SandboxState,
    TokenClass,
)


def espi_router(access: EspiAccess) -> APIRouter:
    router = APIRouter()
    state, config = access.state, access.config
    enter, answer, no_content = access.enter, access.answer, access.no_content
    point_of, meter_of, data_range = access.point_of, access.meter_of, access.data_range
    base = config.espi_base
    seed = config.seed

    @router.get(ESPI_ROOT + "/ReadServiceStatus")
    async def read_service_status(request: Request) -> Response:
        await enter(request, "ReadServiceStatus", (TokenClass.CLIENT,))
        fault = await apply_faults(state, "ReadServiceStatus")
        return await answer(fault, documents.service_status(), XML)

    @router.get(ESPI_ROOT + "/Subscription/{subscription_id}/UsagePoint")
    async def usage_points(request: Request, subscription_id: str) -> Response:
        caller = await enter(request, "UsagePoint", (TokenClass.CUSTOMER,), subscription_id)
        fault = await apply_faults(state, "UsagePoint")
        record = customer_record(caller.authorization)
        body = documents.usage_point_feed(base, seed, record, record.customer.service_points)
        return await answer(fault, body)

    @router.get(ESPI_ROOT + "/Subscription/{subscription_id}/UsagePoint/{usage_point_id}")
    async def usage_point(request: Request, subscription_id: str, usage_point_id: str) -> Response:
        caller = await enter(request, "UsagePoint", (TokenClass.CUSTOMER,), subscription_id)
        fault = await apply_faults(state, "UsagePoint")
        record = customer_record(caller.authorization)
        point = point_of(record, usage_point_id)
        return await answer(fault, documents.single_usage_point(base, seed, record, point))

    mr_root = ESPI_ROOT + "/Subscription/{subscription_id}/UsagePoint/{usage_point_id}/MeterReading"

    @router.get(mr_root)
    async def meter_readings(
        request: Request, subscription_id: str, usage_point_id: str
    ) -> Response:
        caller = await enter(request, "MeterReading", (TokenClass.CUSTOMER,), subscription_id)
        fault = await apply_faults(state, "MeterReading")
        record = customer_record(caller.authorization)
        point = point_of(record, usage_point_id)
        return await answer(fault, documents.meter_reading_feed(base, seed, record, point))

    @router.get(mr_root + "/{meter_reading_id}")
    async def meter_reading(
        request: Request, subscription_id: str, usage_point_id: str, meter_reading_id: str
    ) -> Response:
        caller = await enter(request, "MeterReading", (TokenClass.CUSTOMER,), subscription_id)
        fault = await apply_faults(state, "MeterReading")
        record = customer_record(caller.authorization)
        point = point_of(record, usage_point_id)
        meter = meter_of(point, meter_reading_id)
        body = documents.single_meter_reading(base, seed, record, point, meter)
        return await answer(fault, body)

    @router.get(mr_root + "/{meter_reading_id}/ReadingType/{reading_type_id}")
    async def nested_reading_type(
        request: Request,
        subscription_id: str,
        usage_point_id: str,
        meter_reading_id: str,
        reading_type_id: str,
    ) -> Response:
        caller = await enter(request, "ReadingType", (TokenClass.CUSTOMER,), subscription_id)
        fault = await apply_faults(state, "ReadingType")
        record = customer_record(caller.authorization)
        point = point_of(record, usage_point_id)
        meter = meter_of(point, meter_reading_id)
        if meter.spec.reading_type_id != reading_type_id:
            raise refuse(404, "ReadingType not found")
        body = documents.reading_type_entry(base, seed, record, point, meter)
        return await answer(fault, body)

    @router.get(mr_root + "/{meter_reading_id}/IntervalBlock")
    async def interval_blocks(
        request: Request, subscription_id: str, usage_point_id: str, meter_reading_id: str
    ) -> Response:
        caller = await enter(request, "IntervalBlock", (TokenClass.CUSTOMER,), subscription_id)
        record = customer_record(caller.authorization)
        point = point_of(record, usage_point_id)
        meter = meter_of(point, meter_reading_id)
        span = data_range(request, record)
        fault = await apply_faults(state, "IntervalBlock")
        if span is None or fault is FaultKind.EMPTY:
            return no_content()
        body = await asyncio.to_thread(
            documents.interval_block_feed, base, seed, record, point, meter, *span
        )
        return await answer(fault, body)

    up_root = ESPI_ROOT + "/Subscription/{subscription_id}/UsagePoint/{usage_point_id}"

    @router.get(up_root + "/UsageSummary")
    async def usage_summary(
        request: Request, subscription_id: str, usage_point_id: str
    ) -> Response:
        caller = await enter(request, "UsageSummary", (TokenClass.CUSTOMER,), subscription_id)
        record = _in_scope(
            customer_record(caller.authorization), FB_USAGE_SUMMARY, FB_USAGE_SUMMARY_COST
        )
        point = point_of(record, usage_point_id)
        fault = await apply_faults(state, "UsageSummary")
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

    @router.get(ESPI_ROOT + "/ReadingType/{reading_type_id}")
    async def reading_type(request: Request, reading_type_id: str) -> Response:
        caller = await enter(request, "ReadingType", (TokenClass.CUSTOMER, TokenClass.CLIENT))
        fault = await apply_faults(state, "ReadingType")
        for record in _visible_authorizations(state, caller):
            for point in record.customer.service_points:
                for meter in point.meters:
                    if meter.spec.reading_type_id == reading_type_id:
                        body = documents.reading_type_entry(base, seed, record, point, meter)
                        return await answer(fault, body)
        raise refuse(404, "ReadingType not found")

    @router.get(ESPI_ROOT + "/LocalTimeParameters")
    async def local_time_parameters_feed(request: Request) -> Response:
        await enter(request, "LocalTimeParameters", (TokenClass.CUSTOMER, TokenClass.CLIENT))
        fault = await apply_faults(state, "LocalTimeParameters")
        return await answer(fault, documents.local_time_feed(base))

    @router.get(ESPI_ROOT + "/DownloadSampleData")
    async def download_sample_data(request: Request) -> Response:
        """PG&E's sample data for the client token: a week of the first sandbox customer."""
        await enter(request, "DownloadSampleData", (TokenClass.CLIENT,))
        fault = await apply_faults(state, "DownloadSampleData")
        body = await asyncio.to_thread(
            documents.sample_feed, base, seed, state.customers[0], state.data_end, str(request.url)
        )
        return await answer(fault, body)

    @router.get(ESPI_ROOT + "/LocalTimeParameters/{local_time_id}")
    async def local_time_parameters(request: Request, local_time_id: str) -> Response:
        await enter(request, "LocalTimeParameters", (TokenClass.CUSTOMER, TokenClass.CLIENT))
        fault = await apply_faults(state, "LocalTimeParameters")
        if local_time_id != documents.LOCAL_TIME_ID:
            raise refuse(404, "LocalTimeParameters not found")
        return await answer(fault, documents.local_time_entry(base))

    @router.get(ESPI_ROOT + "/ProgramIdMappings/{mapping_id}")
    async def program_id_mappings(request: Request, mapping_id: str) -> Response:
        await enter(request, "ProgramIdMappings", (TokenClass.CUSTOMER, TokenClass.CLIENT))
        fault = await apply_faults(state, "ProgramIdMappings")
        if mapping_id != documents.PROGRAM_ID_MAPPINGS_ID:
            raise refuse(404, "ProgramIdMappings not found")
        return await answer(fault, documents.program_id_mappings_document(base))

    @router.get(ESPI_ROOT + "/Batch/RetailCustomer/{customer_id}")
    async def batch_retail_customer(request: Request, customer_id: str) -> Response:
        caller = await enter(request, "BatchRetailCustomer", (TokenClass.CUSTOMER,))
        fault = await apply_faults(state, "BatchRetailCustomer")
        record = _in_scope(customer_record(caller.authorization), FB_RETAIL_CUSTOMER)
        # PG&E's clients pass either the retail customer id or the subscription id here.
        if customer_id not in (record.customer.retail_customer_id, record.subscription_id):
            raise refuse(403, "The access token does not grant access to this customer")
        body = documents.retail_customer_feed(base, record, str(request.url))
        return await answer(fault, body)

    return router


def _in_scope(record: AuthorizationRecord, *blocks: int) -> AuthorizationRecord:
    """403 unless the granted scope holds one of ``blocks`` (PG&E documents no answer for a
    resource outside the scope; 403 is the ESPI answer for a resource the token may not read)."""
    if not record.grants(*blocks):
        raise refuse(403, "This resource is not within the granted scope")
    return record


def _visible_authorizations(state: SandboxState, caller: Caller) -> list[AuthorizationRecord]:
    if caller.authorization is not None:
        return [caller.authorization]
    return [r for r in state.authorizations.values() if r.client_id == caller.token.client_id]

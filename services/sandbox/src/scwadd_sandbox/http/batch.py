"""Batch requests (PG&E's asynchronous ESPI): ``Batch/Subscription/{id}/UsagePoint/{id}`` answered
at once, ``Batch/Subscription/{id}`` and ``Batch/Bulk/{BulkID}`` answered 202 and announced
later by a BatchList notification, then fetched with ``correlationID``."""

from __future__ import annotations

import asyncio
import uuid

from fastapi import APIRouter, Request
from fastapi.responses import PlainTextResponse, Response

from scwadd_sandbox import documents
from scwadd_sandbox.config import ESPI_ROOT
from scwadd_sandbox.faults import FaultKind
from scwadd_sandbox.http.access import (
    EspiAccess,
    apply_faults,
    customer_record,
    parse_range,
    refuse,
    updated_days,
)
from scwadd_sandbox.notify import Notifier
from scwadd_sandbox.state import BatchJob, BatchKind, TokenClass

DUPLICATE_BATCH = "An unprocessed batch request for the same resource already exists"


def batch_router(access: EspiAccess, notifier: Notifier) -> APIRouter:
    router = APIRouter()
    state, config = access.state, access.config
    enter, answer, no_content = access.enter, access.answer, access.no_content
    point_of, data_range = access.point_of, access.data_range
    base = config.espi_base
    seed = config.seed

    @router.get(ESPI_ROOT + "/Batch/Subscription/{subscription_id}/UsagePoint/{usage_point_id}")
    async def batch_usage_point(
        request: Request, subscription_id: str, usage_point_id: str
    ) -> Response:
        caller = await enter(
            request, "BatchSubscriptionUsagePoint", (TokenClass.CUSTOMER,), subscription_id
        )
        record = customer_record(caller.authorization)
        point = point_of(record, usage_point_id)
        span = data_range(request, record)
        fault = await apply_faults(state, "BatchSubscriptionUsagePoint")
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

    @router.get(ESPI_ROOT + "/Batch/Subscription/{subscription_id}")
    async def batch_subscription(request: Request, subscription_id: str) -> Response:
        caller = await enter(request, "BatchSubscription", (TokenClass.CUSTOMER,), subscription_id)
        record = customer_record(caller.authorization)
        span = data_range(request, record)
        fault = await apply_faults(state, "BatchSubscription")
        if span is None or fault is FaultKind.EMPTY:
            return no_content()
        key = ("subscription", subscription_id, str(span[0]), str(span[1]))
        return start_batch(
            BatchKind.SUBSCRIPTION, record.client_id, record.authorization_id, span, key
        )

    @router.get(ESPI_ROOT + "/Batch/Bulk/{bulk_id}")
    async def batch_bulk(request: Request, bulk_id: str) -> Response:
        """Without ``correlationID``: a Bulk request (202, then a notification). With it: the
        data a notification announced. The client token only, as PG&E documents."""
        caller = await enter(request, "BatchBulk", (TokenClass.CLIENT,))
        fault = await apply_faults(state, "BatchBulk")
        client_id = caller.token.client_id
        registration = state.registration(client_id)
        if registration is None or bulk_id != registration.bulk_id:
            raise refuse(404, "Bulk not found")
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
            raise refuse(404, "Batch not found")
        if job.authorization_id is not None:
            record = state.authorizations[job.authorization_id]
            if not record.active:
                raise refuse(403, "The authorization of this batch has been revoked")
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

    return router

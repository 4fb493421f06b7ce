"""The fetcher's routes: ``POST /espi/notify``, where the custodian sends its BatchList after a
202. Public and unauthenticated, so bounded in rate, size and resources
(:mod:`scwadd_fetcher.notify`)."""

from __future__ import annotations

import logging
import math

from fastapi import APIRouter, Request, Response

from scwadd_fetcher import metrics
from scwadd_fetcher.notify import SourceRateLimit
from scwadd_fetcher.service import Fetcher

log = logging.getLogger(__name__)


def build_router(fetcher: Fetcher) -> APIRouter:
    router = APIRouter()
    limits = fetcher.notify_limits
    rate_limit = SourceRateLimit(limits)

    @router.post("/espi/notify")
    async def notify(request: Request) -> Response:
        """The custodian's BatchList. Answered at once; the waiting job (on any replica) gets it
        through ``batch.ready``. Bounded in rate (per sender and in all), size and resources."""
        source = request.client.host if request.client else "unknown"
        wait = rate_limit.allow(source)
        if wait > 0:
            metrics.BATCH_NOTIFICATIONS.labels("rate_limited").inc()
            return Response(
                "too many notifications\n",
                status_code=429,
                headers={"Retry-After": str(max(1, math.ceil(wait)))},
            )
        declared = request.headers.get("content-length", "")
        if declared.isdigit() and int(declared) > limits.max_bytes:
            metrics.BATCH_NOTIFICATIONS.labels("refused").inc()
            return Response("a BatchList is never this large\n", status_code=413)
        body = bytearray()
        async for chunk in request.stream():
            body += chunk
            if len(body) > limits.max_bytes:
                # Stop reading: an unauthenticated sender must not make us buffer gigabytes.
                metrics.BATCH_NOTIFICATIONS.labels("refused").inc()
                return Response("a BatchList is never this large\n", status_code=413)
        try:
            event = fetcher.accept_notification(bytes(body))
        except ValueError as error:
            metrics.BATCH_NOTIFICATIONS.labels("refused").inc()
            log.warning("refused a notification: %s", error)
            return Response(f"not a usable ESPI BatchList: {error}\n", status_code=400)
        stored = await fetcher.bus.publish(event)
        metrics.BATCH_NOTIFICATIONS.labels("accepted" if stored else "duplicate").inc()
        return Response(status_code=200)

    return router

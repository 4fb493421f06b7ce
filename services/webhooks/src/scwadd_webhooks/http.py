"""The webhooks service's routes: the deliveries, for the operator's console and scripts.

In-cluster only (like the exporter's ``/grants``): ids, states and endpoint origins, no payload
secrets; the ingress does not route here.
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any

from fastapi import APIRouter, HTTPException, Query
from scwadd_core.db import as_utc

from scwadd_webhooks.models import DeliveryState, WebhookDelivery
from scwadd_webhooks.service import WebhookService, origin

STATES = [state.value for state in DeliveryState]


def build_router(service: WebhookService) -> APIRouter:
    router = APIRouter()

    @router.get("/deliveries")
    async def deliveries(
        state: Annotated[str | None, Query()] = None,
        limit: Annotated[int, Query(ge=1, le=1000)] = 100,
        before: Annotated[datetime | None, Query()] = None,
    ) -> dict[str, Any]:
        """Deliveries newest first; ``?state=failed`` those that never arrived; ``before`` (the
        last row's ``created_at``) pages on."""
        if state is not None and state not in STATES:
            raise HTTPException(400, f"unknown state {state!r}; one of {', '.join(STATES)}")

        rows, counts = await service.deliveries(state=state, limit=limit, before=before)
        return {"counts": counts, "deliveries": [_json(row) for row in rows]}

    return router


def _json(row: WebhookDelivery) -> dict[str, Any]:
    def when(moment: datetime | None) -> str | None:
        return as_utc(moment).isoformat() if moment is not None else None

    return {
        "webhook_id": row.message_id,
        "endpoint": origin(row.endpoint),
        "type": row.event_type,
        "job_id": row.job_id,
        "state": row.state,
        "attempts": row.attempts,
        "last_status": row.last_status,
        "last_error": row.last_error,
        "created_at": when(row.created_at),
        "next_attempt_at": when(row.next_attempt_at) if row.state == "pending" else None,
        "delivered_at": when(row.delivered_at),
    }

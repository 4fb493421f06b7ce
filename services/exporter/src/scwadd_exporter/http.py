"""The exporter's routes: the grants and where they stand, for the operator's scripts.

``GET /grants[?status=]`` is an in-cluster endpoint (like webhooks' ``/deliveries``): no customer
data beyond subscription ids, no tokens; the ingress does not route here.
"""

from __future__ import annotations

import asyncio
from datetime import datetime
from typing import Any

from fastapi import APIRouter, Query
from fastapi.responses import JSONResponse
from scwadd_core.db import as_utc
from sqlalchemy.orm import Session, sessionmaker

from scwadd_exporter import ledger
from scwadd_exporter.models import ExporterGrant, GrantState


def _grant_json(grant: ExporterGrant) -> dict[str, Any]:
    def iso(moment: datetime | None) -> str | None:
        return as_utc(moment).isoformat() if moment is not None else None

    return {
        "job_id": grant.job_id,
        "subscription_id": grant.subscription_id,
        "status": grant.state,
        "reason": grant.reason,
        "detail": grant.detail,
        "received_at": iso(grant.received_at),
        "deadline": iso(grant.deadline),
        "state_changed_at": iso(grant.state_changed_at),
        "revoke_attempts": grant.revoke_attempts,
        "revoked_at": iso(grant.revoked_at),
    }


def build_router(sessions: sessionmaker[Session]) -> APIRouter:
    router = APIRouter()
    statuses = [state.value for state in GrantState]

    @router.get("/grants")
    async def grants(status: str | None = Query(default=None)) -> Any:
        """Grants and where they stand; ``?status=flagged`` lists those the operator must act on."""
        if status is not None and status not in statuses:
            return JSONResponse(
                {"error": f"unknown status {status!r}; one of {', '.join(statuses)}"},
                status_code=400,
            )

        def read() -> list[dict[str, Any]]:
            with sessions() as session:
                return [_grant_json(g) for g in ledger.grants_by_status(session, status)]

        rows = await asyncio.to_thread(read)
        return {"status": status, "count": len(rows), "grants": rows}

    return router

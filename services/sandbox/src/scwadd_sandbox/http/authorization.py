"""The third party's Authorization resources (client token only): the list of every
authorization made to its client ID, one of them, and its revocation (``DELETE``), as PG&E's
Share My Data API serves them."""

from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.responses import Response

from scwadd_sandbox import documents
from scwadd_sandbox.config import ESPI_ROOT, Registration
from scwadd_sandbox.http.access import INVALID_CERTIFICATE, Caller, EspiAccess, apply_faults, refuse
from scwadd_sandbox.state import AuthorizationRecord, SandboxState, TokenClass


def authorization_router(access: EspiAccess) -> APIRouter:
    router = APIRouter()
    state, config = access.state, access.config
    enter, answer = access.enter, access.answer
    base = config.espi_base

    @router.get(ESPI_ROOT + "/Authorization")
    async def authorizations(request: Request) -> Response:
        caller = await enter(request, "Authorization", (TokenClass.CLIENT,))
        fault = await apply_faults(state, "Authorization")
        registration = registration_of(state, caller)
        records = [
            r for r in state.authorizations.values() if r.client_id == caller.token.client_id
        ]
        body = documents.authorization_feed(
            base, registration, records, config.authorization_times_in_ms
        )
        return await answer(fault, body)

    @router.get(ESPI_ROOT + "/Authorization/{authorization_id}")
    async def authorization(request: Request, authorization_id: str) -> Response:
        caller = await enter(request, "Authorization", (TokenClass.CLIENT,))
        fault = await apply_faults(state, "Authorization")
        registration = registration_of(state, caller)
        if authorization_id == registration.client_authorization_id:
            body = documents.client_authorization_entry(
                base, registration, config.authorization_times_in_ms
            )
            return await answer(fault, body)
        record = own_authorization(state, caller, authorization_id)
        return await answer(
            fault, documents.authorization_entry(base, record, config.authorization_times_in_ms)
        )

    @router.delete(ESPI_ROOT + "/Authorization/{authorization_id}")
    async def revoke(request: Request, authorization_id: str) -> Response:
        caller = await enter(request, "Authorization", (TokenClass.CLIENT,))
        fault = await apply_faults(state, "Authorization")
        if authorization_id == registration_of(state, caller).client_authorization_id:
            raise refuse(403, "The third party's own authorization cannot be revoked")
        record = own_authorization(state, caller, authorization_id)
        if not state.revoke(record, by="third_party"):
            raise refuse(410, "Authorization already revoked")
        return await answer(fault, b"", "text/plain")

    return router


def registration_of(state: SandboxState, caller: Caller) -> Registration:
    registration = state.registration(caller.token.client_id)
    if registration is None:  # its certificate was checked against it a moment ago
        raise refuse(400, INVALID_CERTIFICATE)
    return registration


def own_authorization(
    state: SandboxState, caller: Caller, authorization_id: str
) -> AuthorizationRecord:
    record = state.authorizations.get(authorization_id)
    if record is None or record.client_id != caller.token.client_id:
        raise refuse(404, "Authorization not found")
    return record

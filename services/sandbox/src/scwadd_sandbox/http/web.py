"""The browser face: PG&E's myAuthorization login + consent pages (:mod:`.consent`), and the
admin API (:mod:`.admin`)."""

from __future__ import annotations

from fastapi import FastAPI, Request
from fastapi.responses import HTMLResponse, JSONResponse, Response

from scwadd_sandbox.config import SandboxConfig
from scwadd_sandbox.http.admin import AdminRefused, admin_router
from scwadd_sandbox.http.consent import consent_router
from scwadd_sandbox.http.pages import INDEX_PAGE
from scwadd_sandbox.state import SandboxState


def create_web_app(config: SandboxConfig, state: SandboxState | None = None) -> FastAPI:
    state = state if state is not None else SandboxState(config)
    app = FastAPI(title="ShareMyData sandbox", docs_url=None, redoc_url=None, openapi_url=None)
    app.state.sandbox = state

    @app.get("/", response_class=HTMLResponse)
    async def index() -> HTMLResponse:
        return HTMLResponse(
            INDEX_PAGE.render(
                title="ShareMyData sandbox",
                authorize_url=config.authorize_url,
                token_url=config.token_url,
                espi_base=config.espi_base,
                customers=state.customers,
            )
        )

    @app.get("/healthz")
    async def healthz() -> dict[str, str]:
        return {"status": "ok"}

    app.include_router(consent_router(config, state))
    app.include_router(admin_router(config, state))

    @app.exception_handler(AdminRefused)
    async def refused(_request: Request, _exc: AdminRefused) -> Response:
        return JSONResponse(
            {"error": "admin credential required"},
            status_code=401,
            headers={"WWW-Authenticate": 'Bearer realm="sandbox-admin"'},
        )

    return app

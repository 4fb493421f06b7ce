"""The API face: the token endpoint and the ESPI REST resources, behind mutual TLS.

One router per resource (:mod:`.token`, :mod:`.espi`, :mod:`.batch`, :mod:`.authorization`),
all behind the checks of :mod:`.access`; this module assembles them into the ASGI app.
"""

from __future__ import annotations

import logging
from typing import Any

from fastapi import FastAPI, Request
from fastapi.responses import PlainTextResponse, Response
from starlette.exceptions import HTTPException as StarletteHTTPException

from scwadd_sandbox.config import SandboxConfig
from scwadd_sandbox.http.access import EspiAccess, Refusal
from scwadd_sandbox.http.authorization import authorization_router
from scwadd_sandbox.http.batch import batch_router
from scwadd_sandbox.http.espi import espi_router
from scwadd_sandbox.http.token import token_router
from scwadd_sandbox.notify import Notifier
from scwadd_sandbox.state import SandboxState
from scwadd_sandbox.tls import MergeSlashesMiddleware, TlsExtensionMiddleware

log = logging.getLogger(__name__)


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

    access = EspiAccess(config, state)
    app.include_router(token_router(access))
    app.include_router(espi_router(access))
    app.include_router(batch_router(access, notifier))
    app.include_router(authorization_router(access))

    def merged(_path: str) -> None:
        state.merged_slash_paths += 1
        log.info("served a request path with repeated slashes as if merged")

    return TlsExtensionMiddleware(MergeSlashesMiddleware(app, merged))

"""TLS for the two faces, and the client certificate handed to the API application.

uvicorn does not put the peer certificate in the ASGI scope. :class:`ClientCertH11Protocol`
reads it from the connection's ``ssl_object`` once the handshake is done (asyncio calls
``connection_made`` only then) and every request on that connection carries it as the ASGI TLS
extension, ``scope["extensions"]["tls"]["client_cert_chain"]`` (PEM strings; empty when the
client presented none).
"""

from __future__ import annotations

import asyncio
import re
import ssl
from collections.abc import Callable
from pathlib import Path
from typing import Any

from scwadd_core import devpki
from starlette.types import ASGIApp, Receive, Scope, Send
from uvicorn.protocols.http.h11_impl import H11Protocol

_PEER_CERT_STATE = "scwadd_sandbox.peer_cert_der"


def server_context(
    cert_file: Path, key_file: Path, *, client_ca: Path | None, require_client_cert: bool = True
) -> ssl.SSLContext:
    """A TLS 1.2+ server context; with ``client_ca`` it asks for a client certificate issued by
    that CA (and refuses the handshake without one when ``require_client_cert``)."""
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    context.load_cert_chain(str(cert_file), str(key_file))
    if client_ca is not None:
        context.load_verify_locations(cafile=str(client_ca))
        context.verify_mode = ssl.CERT_REQUIRED if require_client_cert else ssl.CERT_OPTIONAL
    return context


class ClientCertH11Protocol(H11Protocol):
    """uvicorn's h11 protocol, remembering the peer certificate of its connection."""

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        ssl_object = transport.get_extra_info("ssl_object")
        der = ssl_object.getpeercert(binary_form=True) if ssl_object is not None else None
        # app_state is copied into every request's scope["state"]; this copy is per connection.
        self.app_state = {**self.app_state, _PEER_CERT_STATE: der}


class TlsExtensionMiddleware:
    """Moves the connection's peer certificate into the standard ASGI TLS extension."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            state: dict[str, Any] = scope.get("state") or {}
            der = state.pop(_PEER_CERT_STATE, None)
            chain = [ssl.DER_cert_to_PEM_cert(der)] if der else []
            extensions = dict(scope.get("extensions") or {})
            extensions["tls"] = {"client_cert_chain": chain}
            scope = {**scope, "extensions": extensions}
        await self.app(scope, receive, send)


class MergeSlashesMiddleware:
    """Serves ``resource//Batch/...`` as ``resource/Batch/...``.

    PG&E documents nothing about it; the web servers in front of such APIs usually merge
    repeated slashes (nginx's default ``merge_slashes on``), and a client's doubled slash from
    joining a base URL ending in ``/`` has one meaning. Each merge is counted
    (``/admin/calls``: ``merged_slash_paths``) and logged, without the path (it holds ids)."""

    def __init__(self, app: ASGIApp, on_merge: Callable[[str], None]) -> None:
        self.app = app
        self.on_merge = on_merge

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and "//" in scope["path"]:
            path = re.sub("/{2,}", "/", scope["path"])
            self.on_merge(path)
            scope = {**scope, "path": path, "raw_path": path.encode()}
        await self.app(scope, receive, send)


def peer_fingerprint(scope: Scope) -> str | None:
    """SHA-256 fingerprint of the presented client certificate, None when there was none."""
    chain = (scope.get("extensions") or {}).get("tls", {}).get("client_cert_chain") or []
    if not chain:
        return None
    return devpki.certificate_fingerprint(chain[0].encode())

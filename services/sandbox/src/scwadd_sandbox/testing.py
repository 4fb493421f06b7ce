"""Run a real sandbox inside a test: both faces on free ports, real TLS, in a background thread.

Usage in a conftest.py::

    import pytest
    from scwadd_sandbox.testing import RunningSandbox, start_sandbox

    @pytest.fixture
    def sandbox(tmp_path) -> Iterator[RunningSandbox]:
        with start_sandbox(tmp_path / "pki", notification_uri="https://127.0.0.1:8443/espi/notify")
        as running:
            yield running

    def test_something(sandbox):
        with sandbox.api_client() as api:          # mutual TLS with the registered client cert
            api.post(sandbox.token_url, auth=sandbox.basic_auth, data={...})
        sandbox.admin.get("/admin/calls")          # admin API, credential included

``RunningSandbox`` carries the URLs (``web_url``, ``api_url``, ``authorize_url``, ``token_url``,
``espi_base``), the admin token, the default registration (``client_id``, ``client_secret``,
``redirect_uri``, ``notification_uri``), the dev PKI paths (``pki``) and the in-process
``state`` for white-box assertions. Rate limits are lifted unless ``rate_limits`` is given;
notifications arrive after a short test delay (``TEST_NOTIFICATION_DELAY``) unless
``notification_delay`` is given.
"""

from __future__ import annotations

import asyncio
import contextlib
import html
import re
import secrets
import ssl
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import httpx
from scwadd_core import devpki

from scwadd_sandbox.config import (
    DEFAULT_CLIENT_ID,
    RateLimits,
    Registration,
    SandboxConfig,
    registration_from_mapping,
)
from scwadd_sandbox.server import SandboxServer, bind
from scwadd_sandbox.state import SandboxState

DEFAULT_TEST_REDIRECT = "http://127.0.0.1:8080/OAuthCallback"
DEFAULT_TEST_NOTIFICATION = "https://127.0.0.1:8081/espi/notify"
# Late like PG&E's notifications, but short enough for a test suite (the command's default is
# PG&E's 10-40 s); a test that needs another delay passes ``notification_delay=``.
TEST_NOTIFICATION_DELAY = (0.2, 1.0)


@dataclass
class RunningSandbox:
    web_url: str
    api_url: str
    admin_token: str
    client_id: str
    client_secret: str
    redirect_uri: str
    notification_uri: str
    pki: devpki.DevPki
    config: SandboxConfig
    state: SandboxState
    _clients: list[httpx.Client] = field(default_factory=list, repr=False)

    @property
    def authorize_url(self) -> str:
        return self.config.authorize_url

    @property
    def token_url(self) -> str:
        return self.config.token_url

    @property
    def espi_base(self) -> str:
        return self.config.espi_base

    @property
    def basic_auth(self) -> httpx.BasicAuth:
        return httpx.BasicAuth(self.client_id, self.client_secret)

    def ssl_context(self, cert: tuple[Path, Path] | None = None) -> ssl.SSLContext:
        """Trusts the dev CA; presents ``cert`` (default: the registered client certificate)."""
        context = ssl.create_default_context(cafile=str(self.pki.ca_cert))
        pair = cert if cert is not None else (self.pki.client_cert, self.pki.client_key)
        context.load_cert_chain(str(pair[0]), str(pair[1]))
        return context

    def api_client(self, cert: tuple[Path, Path] | None = None, **kwargs: Any) -> httpx.Client:
        """An httpx client for the API face with mutual TLS (the caller closes it)."""
        return httpx.Client(verify=self.ssl_context(cert), timeout=30.0, **kwargs)

    def web_client(self, **kwargs: Any) -> httpx.Client:
        """An httpx client for the browser face (no client certificate, no redirects followed)."""
        verify = ssl.create_default_context(cafile=str(self.pki.ca_cert))
        return httpx.Client(verify=verify, timeout=30.0, base_url=self.web_url, **kwargs)

    @property
    def admin(self) -> httpx.Client:
        """A client for the admin API with the credential set; closed when the sandbox stops."""
        client = self.web_client(headers={"Authorization": f"Bearer {self.admin_token}"})
        self._clients.append(client)
        return client


@contextlib.contextmanager
def start_sandbox(
    pki_dir: Path,
    *,
    client_id: str = DEFAULT_CLIENT_ID,
    client_secret: str | None = None,
    redirect_uri: str = DEFAULT_TEST_REDIRECT,
    notification_uri: str = DEFAULT_TEST_NOTIFICATION,
    extra_registrations: tuple[Registration, ...] = (),
    rate_limits: RateLimits | None = None,
    host: str = "127.0.0.1",
    clock: Callable[[], float] | None = None,
    **overrides: Any,
) -> Iterator[RunningSandbox]:
    """Start a sandbox on free ports; ``overrides`` are :class:`SandboxConfig` fields.

    ``clock`` (epoch seconds) replaces the wall clock for token lifetimes and rate limits, so a
    test can hold time still or move it."""
    pki = devpki.ensure_dev_pki(pki_dir)
    secret = client_secret or secrets.token_urlsafe(24)
    registration = registration_from_mapping(
        {
            "client_id": client_id,
            "client_secret": secret,
            "redirect_uris": [redirect_uri],
            "notification_uri": notification_uri,
            "client_cert": str(pki.client_cert),
        }
    )
    web_socket, api_socket = bind(host, 0), bind(host, 0)
    web_url = f"https://{host}:{web_socket.getsockname()[1]}"
    api_url = f"https://{host}:{api_socket.getsockname()[1]}"
    config = SandboxConfig(
        registrations=(registration, *extra_registrations),
        admin_token=secrets.token_urlsafe(24),
        ca_file=pki.ca_cert,
        web_base_url=web_url,
        api_base_url=api_url,
        rate_limits=rate_limits or RateLimits.unlimited(),
        notification_delay=TEST_NOTIFICATION_DELAY,
    )
    config = replace(config, **overrides)
    server = SandboxServer(
        config,
        web_socket=web_socket,
        api_socket=api_socket,
        server_cert=pki.server_cert,
        server_key=pki.server_key,
        state=SandboxState(config, clock=clock) if clock is not None else None,
    )
    loop = asyncio.new_event_loop()
    failure: list[BaseException] = []

    def serve() -> None:
        asyncio.set_event_loop(loop)
        try:
            loop.run_until_complete(server.serve())
        except BaseException as exc:  # reported to the test thread below
            failure.append(exc)
            server.started.set()
        finally:
            loop.close()

    thread = threading.Thread(target=serve, name="sandbox", daemon=True)
    thread.start()
    if not server.started.wait(30) or failure:
        raise RuntimeError(f"the sandbox did not start: {failure!r}")
    running = RunningSandbox(
        web_url=web_url,
        api_url=api_url,
        admin_token=config.admin_token,
        client_id=client_id,
        client_secret=secret,
        redirect_uri=redirect_uri,
        notification_uri=notification_uri,
        pki=pki,
        config=config,
        state=server.state,
    )
    try:
        yield running
    finally:
        for client in running._clients:
            client.close()
        loop.call_soon_threadsafe(server.stop)
        thread.join(30)
        web_socket.close()
        api_socket.close()


_REQUEST_ID = re.compile(r'name="request_id" value="([^"]+)"')
_CUSTOMER = re.compile(r'name="customer" value="([^"]+)"[^>]*>\s*[^<(]*\(([^)]+)\)')
_HISTORY = re.compile(r'name="history" value="(\d+)"')


def submit_consent(
    web: httpx.Client,
    authorize_url: str,
    *,
    profile: str = "electric-15min",
    history_days: int = 365,
    decision: str = "approve",
    share: str = "all",
) -> httpx.Response:
    """Do what a customer does on the consent page, through the page itself.

    GETs ``authorize_url`` (the full myAuthorization URL a third party redirected to), picks the
    customer whose profile is ``profile`` and the history choice nearest ``history_days`` from the
    page's own form, and what to share (``share``: ``"all"`` or ``"usage"``), and posts it.
    Returns the answer unfollowed: a 302 to the redirect URI, or the page's 400. ``web`` must
    trust the sandbox CA (``RunningSandbox.web_client()`` does).
    """
    page = web.get(authorize_url, follow_redirects=False)
    if page.status_code != 200:
        return page
    text = page.text
    request_id = _REQUEST_ID.search(text)
    customers = {profile_name: value for value, profile_name in _CUSTOMER.findall(text)}
    histories = [int(v) for v in _HISTORY.findall(text)]
    if request_id is None or profile not in customers or not histories:
        raise ValueError(f"the consent page offers no customer with profile {profile!r}")
    history = min(histories, key=lambda seconds: abs(seconds - history_days * 86400))
    action = httpx.URL(authorize_url).copy_with(query=None)
    return web.post(
        action,
        data={
            "request_id": html.unescape(request_id.group(1)),
            "decision": decision,
            "customer": html.unescape(customers[profile]),
            "history": str(history),
            "share": share,
        },
        follow_redirects=False,
    )

"""The consent page in a real headless browser (Debian's chromium through playwright)."""

from __future__ import annotations

import http.server
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import ClassVar
from urllib.parse import parse_qs, urlsplit

import pytest
from playwright.async_api import Browser
from scwadd_sandbox.testing import RunningSandbox, start_sandbox

pytestmark = [pytest.mark.anyio, pytest.mark.browser]


class _Callback(http.server.BaseHTTPRequestHandler):
    """The third party's redirect target: records the query and says so."""

    queries: ClassVar[list[dict[str, list[str]]]] = []

    def do_GET(self) -> None:
        url = urlsplit(self.path)
        if url.path == "/OAuthCallback":  # not the browser's favicon request
            type(self).queries.append(parse_qs(url.query))
        body = b"<html><body><h1>Callback received</h1></body></html>"
        self.send_response(200)
        self.send_header("Content-Type", "text/html")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: object) -> None:  # codes stay out of logs
        pass


@pytest.fixture
def sandbox_with_callback(pki_dir: Path) -> Iterator[tuple[RunningSandbox, type[_Callback]]]:
    handler = type("Callback", (_Callback,), {"queries": []})
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    redirect = f"http://127.0.0.1:{server.server_address[1]}/OAuthCallback"
    try:
        with start_sandbox(pki_dir, redirect_uri=redirect) as sandbox:
            yield sandbox, handler
    finally:
        server.shutdown()
        server.server_close()


def _authorize_url(sandbox: RunningSandbox, state: str) -> str:
    return (
        f"{sandbox.authorize_url}?client_id={sandbox.client_id}"
        f"&redirect_uri={sandbox.redirect_uri}&response_type=code&state={state}&login=guest"
    )


async def test_customer_approves_and_cancels_in_chromium(
    chromium: Browser, sandbox_with_callback: tuple[RunningSandbox, type[_Callback]]
) -> None:
    sandbox, callback = sandbox_with_callback
    # The dev CA is not in chromium's store; the TLS itself is still the sandbox's.
    context = await chromium.new_context(ignore_https_errors=True)
    page = await context.new_page()
    await page.goto(_authorize_url(sandbox, "browser-1"))
    assert await page.get_by_role("heading", name="Share your energy data").is_visible()
    await page.get_by_label("Casey Nakamura (solar)").check()
    await page.get_by_label("2 years").check()
    await page.get_by_role("button", name="Approve").click()
    await page.wait_for_url("**/OAuthCallback?**")
    assert await page.get_by_role("heading", name="Callback received").is_visible()

    await page.goto(_authorize_url(sandbox, "browser-2"))
    await page.get_by_role("button", name="Cancel").click()
    await page.wait_for_url("**/OAuthCallback?**")
    approved, cancelled = callback.queries
    assert approved["state"] == ["browser-1"] and len(approved["code"][0]) > 20
    assert cancelled == {"error": ["access_denied"], "state": ["browser-2"]}
    [record] = sandbox.state.authorizations.values()
    assert record.customer.profile == "solar"
    assert record.history_seconds == 2 * 365 * 86400

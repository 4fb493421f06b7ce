"""The consent page in a real headless browser (Debian's chromium through playwright)."""

from __future__ import annotations

import http.server
import shutil
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import ClassVar
from urllib.parse import parse_qs, urlsplit

import pytest
from scwadd_sandbox.testing import RunningSandbox, start_sandbox

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]

pytestmark = [
    pytest.mark.browser,
    pytest.mark.skipif(
        shutil.which(CHROMIUM) is None, reason="needs Debian chromium (make browser)"
    ),
]


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


def test_customer_approves_and_cancels_in_chromium(
    sandbox_with_callback: tuple[RunningSandbox, type[_Callback]],
) -> None:
    playwright_api = pytest.importorskip("playwright.sync_api")
    sandbox, callback = sandbox_with_callback
    with playwright_api.sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        try:
            # The dev CA is not in chromium's store; the TLS itself is still the sandbox's.
            context = browser.new_context(ignore_https_errors=True)
            page = context.new_page()
            page.goto(_authorize_url(sandbox, "browser-1"))
            assert page.get_by_role("heading", name="Share your energy data").is_visible()
            page.get_by_label("Casey Nakamura (solar)").check()
            page.get_by_label("2 years").check()
            page.get_by_role("button", name="Approve").click()
            page.wait_for_url("**/OAuthCallback?**")
            assert page.get_by_role("heading", name="Callback received").is_visible()

            page.goto(_authorize_url(sandbox, "browser-2"))
            page.get_by_role("button", name="Cancel").click()
            page.wait_for_url("**/OAuthCallback?**")
        finally:
            browser.close()
    approved, cancelled = callback.queries
    assert approved["state"] == ["browser-1"] and len(approved["code"][0]) > 20
    assert cancelled == {"error": ["access_denied"], "state": ["browser-2"]}
    [record] = sandbox.state.authorizations.values()
    assert record.customer.profile == "solar"
    assert record.history_seconds == 2 * 365 * 86400

"""A customer's whole visit in headless chromium: landing page → the sandbox's consent page →
our callback → the status page, which follows the job live to its last sentence."""

from __future__ import annotations

import pytest
from auth_support import auth_settings, grant_events, running_auth
from scwadd_core.bus import Bus
from scwadd_core.events import ExportCompleted, GrantRevoked, JobProgress

pytestmark = [pytest.mark.anyio, pytest.mark.browser]


async def test_landing_consent_callback_and_live_status_page(
    chromium, sandbox, nats_server, sqlite_url, auth_port
):
    settings = auth_settings(sandbox, nats_server, sqlite_url, auth_port)
    async with running_auth(settings) as auth:
        # The sandbox's browser face uses the generated dev CA, which chromium does not know.
        context = await chromium.new_context(ignore_https_errors=True)
        page = await context.new_page()
        await page.goto(auth.url + "/")
        assert "revoke our access" in await page.content()
        await page.get_by_role("button", name="Continue to PG&E").click()
        await page.wait_for_url(sandbox.web_url + "/**")
        assert "Share your energy data" in await page.content()

        cookies = {c["name"]: c for c in await context.cookies(auth.url)}
        cookie = cookies["scwadd_oauth_browser"]
        assert cookie["httpOnly"] and cookie["sameSite"] == "Lax"

        await page.get_by_role("button", name="Approve").click()
        await page.wait_for_url(auth.url + "/status/*")
        message = page.locator("#message")
        assert await message.get_attribute("data-phase") == "waiting"

        (event,) = await grant_events(nats_server)
        bus = await Bus.connect(nats_server, name="test")
        try:
            # What fetcher and exporter would say, on the real bus.
            job = event.job_id
            await bus.publish(JobProgress(job_id=job, phase="fetching", message="Reading"))
            await page.wait_for_selector("#message[data-phase=fetching]")
            await bus.publish(
                ExportCompleted(
                    job_id=job, csv_object="a.csv", manifest_object="a.manifest.json", rows=9
                )
            )
            await bus.publish(GrantRevoked(job_id=job, outcome="revoked"))
            await bus.publish(JobProgress(job_id=job, phase="done", message="Done"))
        finally:
            await bus.close()
        await page.wait_for_selector("#message[data-phase=done]")
        assert await message.inner_text() == "Your data was delivered and access was revoked."
        assert await message.get_attribute("data-finished") == "true"

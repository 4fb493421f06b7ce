"""A customer's whole visit in headless chromium: landing page → the sandbox's consent page →
our callback → the status page, which follows the job live to its last sentence; the pages at
1280 and 390 px with axe-core's checks, the keyboard and the strict CSP.

Set ``SCWADD_SCREENSHOTS=docs/screenshots`` to write the screenshots the README links to.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from auth_support import auth_settings, grant_events, running_auth
from browser_support import WATCH_CSP, axe_violations, tab_reaches
from playwright.async_api import Browser, BrowserContext, Page
from scwadd_core.bus import Bus
from scwadd_core.events import ExportCompleted, GrantRevoked, JobProgress

pytestmark = [pytest.mark.anyio, pytest.mark.browser]

WIDTHS = (1280, 390)
OPERATOR = {
    "OPERATOR_NAME": "Sunrise Solar Co.",
    "OPERATOR_PURPOSE": "to size the solar panels and battery you asked us to quote",
    "PRIVACY_CONTACT": "privacy@sunrise-solar.example",
    "PRIVACY_POLICY_URL": "https://sunrise-solar.example/privacy",
    "EXPORT_RETENTION_DAYS": 14,
}


def screenshots(tmp_path: Path) -> Path:
    shots = Path(os.environ.get("SCWADD_SCREENSHOTS") or tmp_path)
    shots.mkdir(parents=True, exist_ok=True)
    return shots


async def new_context(chromium: Browser, width: int) -> BrowserContext:
    # The sandbox's browser face uses the generated dev CA, which chromium does not know.
    context = await chromium.new_context(
        ignore_https_errors=True, viewport={"width": width, "height": 900}
    )
    context.set_default_timeout(60_000)
    await context.add_init_script(WATCH_CSP)
    return context


async def consent(page: Page, auth_url: str, sandbox_url: str, history: str | None = None) -> None:
    """Landing page → the sandbox's consent page (approve, ``history`` chosen) → status page."""
    await page.goto(auth_url + "/")
    await page.get_by_role("button", name="Continue to PG&E").click()
    await page.wait_for_url(sandbox_url + "/**")
    if history is not None:
        await page.get_by_label(history).check()
    await page.get_by_role("button", name="Approve").click()
    await page.wait_for_url(auth_url + "/status/*")


async def test_landing_consent_callback_and_live_status_page(
    chromium, sandbox, nats_server, sqlite_url, auth_port
):
    settings = auth_settings(sandbox, nats_server, sqlite_url, auth_port)
    async with running_auth(settings) as auth:
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
        assert await page.locator("#note").is_visible()

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
        # The work has ended: nothing "continues" any more.
        assert not await page.locator("#note").is_visible()
        await context.close()


async def test_landing_page_says_who_why_how_long_and_whom_to_ask(
    chromium, sandbox, nats_server, sqlite_url, auth_port, tmp_path
):
    settings = auth_settings(sandbox, nats_server, sqlite_url, auth_port, **OPERATOR)
    shots = screenshots(tmp_path)
    async with running_auth(settings) as auth:
        for width in WIDTHS:
            context = await new_context(chromium, width)
            page = await context.new_page()
            response = await page.goto(auth.url + "/")
            assert response is not None and response.status == 200
            text = " ".join((await page.locator("main").inner_text()).split())
            assert "Share your PG&E energy usage with Sunrise Solar Co." in text
            assert (
                "Sunrise Solar Co. receives it, to size the solar panels and battery you asked "
                "us to quote." in text
            )
            assert "every service point" in text and "gas used" in text
            assert "sent back to the grid" in text and "last 12 months" in text
            assert "only if you choose to share them" in text
            assert "Your file is kept for 14 days, then deleted" in text
            assert "Contact Sunrise Solar Co.: privacy@sunrise-solar.example." in text
            policy = page.get_by_role("link", name="Read Sunrise Solar Co.'s privacy notice")
            assert await policy.get_attribute("href") == "https://sunrise-solar.example/privacy"
            headings = await page.locator("h1, h2").all_inner_texts()
            assert headings[1:] == [
                "Who receives your data, and why",
                "What we read",
                "How long we keep it",
                "Privacy and contact",
            ]
            await page.screenshot(path=str(shots / f"landing-{width}.png"), full_page=True)
            assert await axe_violations(page) == []
            assert await page.evaluate("window.__csp") == []
            # The start button is reached and pressed with the keyboard alone.
            assert await tab_reaches(page, "Continue to PG&E")
            await page.keyboard.press("Enter")
            await page.wait_for_url(sandbox.web_url + "/**")
            await context.close()


async def test_done_page_names_period_meters_and_the_shorter_history_and_a_failed_page_its_step(
    chromium, sandbox, nats_server, sqlite_url, auth_port, tmp_path
):
    settings = auth_settings(sandbox, nats_server, sqlite_url, auth_port)
    shots = screenshots(tmp_path)
    async with running_auth(settings) as auth:
        context = await new_context(chromium, 1280)
        page = await context.new_page()
        # The customer shares 3 months on PG&E's page, where we ask for 12.
        await consent(page, auth.url, sandbox.web_url, history="3 months")
        done_url = page.url
        await consent(page, auth.url, sandbox.web_url)
        failed_url = page.url
        await context.close()

        first, second = sorted(await grant_events(nats_server), key=lambda e: e.occurred_at)
        assert "HistoryLength=7776000" in first.scope
        bus = await Bus.connect(nats_server, name="test")
        try:
            await bus.publish(
                ExportCompleted(
                    job_id=first.job_id,
                    csv_object="a.csv",
                    manifest_object="a.manifest.json",
                    rows=8640,
                    period_start="2026-09-01T07:00:00Z",
                    period_end="2026-11-30T08:00:00Z",
                    requested_start="2025-11-30T08:00:00Z",
                    requested_end="2026-11-30T08:00:00Z",
                    usage_points=[
                        {"id": "1234567890", "service": "electricity", "received": True},
                        {"id": "2234567891", "service": "gas"},
                    ],
                )
            )
            await bus.publish(GrantRevoked(job_id=first.job_id, outcome="revoked"))
            job = second.job_id
            await bus.publish(JobProgress(job_id=job, phase="fetching", message="Reading"))
            await bus.publish(
                JobProgress(
                    job_id=job,
                    phase="failed",
                    message="PG&E did not send the usage data after 6 attempts.",
                )
            )
            await bus.publish(GrantRevoked(job_id=job, outcome="revoked"))
        finally:
            await bus.close()

        for width in WIDTHS:
            context = await new_context(chromium, width)
            page = await context.new_page()
            await page.goto(done_url)
            await page.wait_for_selector("#message[data-phase=done]")
            main = " ".join((await page.locator("main").inner_text()).split())
            assert "From 1 September 2026 to 29 November 2026." in main
            assert (
                "Your file covers 3 months, not the 12 months we asked for: on PG&E's page you "
                "chose to share 3 months of history." in main
            )
            assert await page.locator("#meters li").all_inner_texts() == [
                "Electricity, service point 1234567890: energy used and energy sent to the grid",
                "Gas, service point 2234567891: gas used",
            ]
            assert "continues" not in main
            await page.screenshot(path=str(shots / f"status-done-{width}.png"), full_page=True)
            assert await axe_violations(page) == []

            await page.goto(failed_url)
            await page.wait_for_selector("#message[data-phase=failed]")
            main = " ".join((await page.locator("main").inner_text()).split())
            assert "PG&E did not send the usage data after 6 attempts." in main
            assert "Access to your data has been revoked." in main
            assert "The step that did not work: Reading your data from PG&E." in main
            steps = page.locator("#steps li")
            assert await steps.evaluate_all("(items) => items.map((li) => li.className)") == [
                "complete",
                "stopped",
                "",
                "",
            ]
            assert "continues" not in main
            assert not await page.locator("#covered").is_visible()
            await page.screenshot(path=str(shots / f"status-failed-{width}.png"), full_page=True)
            assert await axe_violations(page) == []
            assert await page.evaluate("window.__csp") == []
            assert await tab_reaches(page, "Start again")
            await page.keyboard.press("Enter")
            await page.wait_for_url(auth.url + "/")
            await context.close()


async def test_the_accessibility_check_does_catch_a_missing_label_and_heading(chromium):
    """The empty lists above mean something: the same check flags a bare page."""
    page = await chromium.new_page()
    await page.set_content("<html><body><input type=text><p>x</p></body></html>")
    found = {line.split(" ")[0] for line in await axe_violations(page)}
    assert {"label", "page-has-heading-one", "landmark-one-main", "html-has-lang"} <= found
    await page.close()

"""The console in Debian's headless chromium: a year of 15-minute data charted under the strict
CSP (no violation), keyboard reachable, no axe-core violation; screenshots at 1280 and 390 px.

Set ``SCWADD_SCREENSHOTS=docs/screenshots`` to write the screenshots the README links to.
"""

from __future__ import annotations

import os
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import pytest
from browser_support import WATCH_CSP, axe_violations
from console_support import publish_exported_job, publish_failed_job
from files_support import OPERATOR, ConsoleServer
from playwright.async_api import Browser
from test_console import wait_for_jobs

pytestmark = [pytest.mark.anyio, pytest.mark.browser]


async def test_console_in_chromium(
    chromium: Browser, console_server: ConsoleServer, tmp_path: Path
) -> None:
    import httpx

    bus, url = console_server.bus, console_server.url
    now = datetime.now(UTC)
    await publish_exported_job(
        bus,
        "job-year-0001",
        "SUB-YEAR",
        first=date(2025, 1, 1),
        days=365,
        promised_days=365,
        consented=now - timedelta(hours=4),
    )
    await publish_exported_job(
        bus,
        "job-short-0002",
        "SUB-3MONTHS",
        first=date(2025, 10, 1),
        days=92,
        promised_days=365,
        consented=now - timedelta(hours=3),
        gas=False,
    )
    await publish_exported_job(
        bus,
        "job-flag-0003",
        "SUB-FLAGGED",
        first=date(2025, 5, 1),
        days=14,
        promised_days=14,
        consented=now - timedelta(hours=2),
        revoked="failed",
        reason="the utility kept failing (HTTP 503) after 6 attempts",
    )
    await publish_failed_job(bus, "job-fail-0004", "SUB-FAILED", "the utility refused access")
    async with httpx.AsyncClient(timeout=60) as client:
        await wait_for_jobs(client, url, 4)

    shots = Path(os.environ.get("SCWADD_SCREENSHOTS") or tmp_path)
    shots.mkdir(parents=True, exist_ok=True)
    for width in (1280, 390):
        context = await chromium.new_context(
            http_credentials={"username": OPERATOR[0], "password": OPERATOR[1]},
            viewport={"width": width, "height": 900},
        )
        # A loaded CI machine parses plotly.js's 4.8 MB slowly: generous deadlines, no timing.
        context.set_default_timeout(180_000)
        context.set_default_navigation_timeout(180_000)
        await context.add_init_script(WATCH_CSP)
        page = await context.new_page()

        response = await page.goto(url + "/console/")
        assert response is not None and response.status == 200
        needs = page.locator("section.needs-action")
        assert "SUB-FLAGGED" in await needs.inner_text()
        assert "HTTP 503" in await needs.inner_text()
        assert await page.locator("#jobs tbody tr").count() == 4
        # The keyboard reaches the search box and the "Revoke again" button.
        reached = set()
        for _ in range(60):
            await page.keyboard.press("Tab")
            reached.add(
                await page.evaluate(
                    "document.activeElement.textContent || document.activeElement.id"
                )
            )
        assert "Revoke again" in reached and "f-q" in reached
        await page.screenshot(path=str(shots / f"console-{width}.png"), full_page=True)
        assert await axe_violations(page) == []

        await page.get_by_label("search").fill("3months")
        await page.get_by_role("button", name="Show").click()
        assert await page.locator("#jobs tbody tr").count() == 1
        assert "shorter" in await page.locator("#jobs").inner_text()

        await page.goto(url + "/console/jobs/job-year-0001")
        charts = page.locator("#charts")
        await page.wait_for_selector("#charts[data-state=rendered]", timeout=180_000)
        render_ms = int(await charts.get_attribute("data-render-ms") or -1)
        draw_ms = int(await charts.get_attribute("data-draw-ms") or -1)
        since_navigation = int(await charts.get_attribute("data-since-navigation-ms") or -1)
        print(
            f"\n{width}px: a year of 15-minute data: three charts drawn in {draw_ms} ms, "
            f"{render_ms} ms with the series' fetch, {since_navigation} ms from navigation; "
            f"daily, heat map, profile: {await charts.get_attribute('data-chart-ms')} ms"
        )
        heat = await page.evaluate(
            "(() => { const g = document.getElementById('chart-heatmap'); const t = g.data[0];"
            " return [t.z.length, t.z[0].length, t.z.flat().filter((v) => v !== null).length]; })()"
        )
        assert heat[0] == 96 and heat[1] == 365 and heat[2] >= 35_000  # 35,040 less the gap
        assert await page.locator("#chart-heatmap image").count() >= 1
        daily = await page.evaluate(
            "document.getElementById('chart-daily').data.map((t) => [t.yaxis || 'y', t.x.length])"
        )
        assert daily == [["y", 365], ["y", 365], ["y2", 365]]  # gas on its own axis
        assert await page.locator("#chart-daily .scatterlayer .trace path.js-line").count() == 3
        assert await page.locator("#chart-profile .scatterlayer .trace").count() == 12
        await page.screenshot(path=str(shots / f"export-{width}.png"), full_page=True)
        assert await axe_violations(page) == []
        # The strict CSP holds: no script, no inline <style>. plotly.js alone sets a few style
        # attributes through setAttribute (colorbar fills get style="", a probe of
        # image-rendering); they are refused without visible effect.
        violations = await page.evaluate("window.__csp")
        assert [
            v
            for v in violations
            if not (v.startswith("style-src-attr") and "/console/static/plotly.min.js:" in v)
        ] == []
        await context.close()


async def test_the_plotly_stylesheet_is_what_plotly_would_inject(chromium: Browser) -> None:
    """static/plotly.css holds plotly.js's global rules so the CSP needs no inline style; this
    fails when a new plotly.js brings other rules (regenerate the file from this test's list)."""
    from scwadd_files.console import static_path

    page = await chromium.new_page()
    await page.set_content("<html><head></head><body></body></html>")
    await page.add_script_tag(path=str(static_path("plotly.min.js")))
    injected = await page.evaluate(
        "Array.from(document.getElementById('plotly.js-style-global').sheet.cssRules)"
        ".map((rule) => rule.cssText)"
    )
    await page.set_content(
        "<html><head><style>"
        + static_path("plotly.css").read_text()
        + "</style></head><body></body></html>"
    )
    shipped = await page.evaluate(
        "Array.from(document.styleSheets[0].cssRules).map((rule) => rule.cssText)"
    )
    assert injected and shipped == injected

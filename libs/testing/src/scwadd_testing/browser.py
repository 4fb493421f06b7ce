"""Debian's headless chromium, driven by playwright: the one launch every page test uses.

Never a downloaded browser: playwright is pointed at the system's ``/usr/bin/chromium``
(``make browser`` installs it).
"""

from __future__ import annotations

import shutil
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from playwright.async_api import Browser

CHROMIUM = "/usr/bin/chromium"
# Nothing but the pages under test: no background calls out, no updater, no sync, no GPU.
CHROMIUM_ARGS = (
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
)


def chromium_unavailable_reason() -> str | None:
    """None when Debian's chromium is installed, else the reason a page test is not run."""
    if shutil.which(CHROMIUM) is None:
        return f"needs Debian chromium at {CHROMIUM} (make browser): not run"
    return None


@asynccontextmanager
async def launch_chromium() -> AsyncIterator[Browser]:
    """A headless chromium for the block, closed afterwards (also when the block fails)."""
    # Imported here so that loading the test plugin does not load playwright everywhere.
    from playwright.async_api import async_playwright

    async with async_playwright() as playwright:
        browser = await playwright.chromium.launch(
            executable_path=CHROMIUM, args=list(CHROMIUM_ARGS)
        )
        try:
            yield browser
        finally:
            await browser.close()

"""Checks every page test runs in chromium: axe-core's rules, and the strict CSP watched."""

from __future__ import annotations

from axe_playwright_python.async_playwright import Axe
from playwright.async_api import Page

# Add with ``context.add_init_script``; ``window.__csp`` then lists every CSP violation.
WATCH_CSP = """
window.__csp = [];
document.addEventListener("securitypolicyviolation", (e) => {
  window.__csp.push(
    [e.violatedDirective, e.blockedURI, e.sourceFile + ":" + e.lineNumber, e.sample].join(" ")
  );
});
"""


async def axe_violations(page: Page) -> list[str]:
    """axe-core's violations on ``page`` (labels, headings, landmarks, contrast...), as
    ``"id (impact): help"`` lines; empty when the page passes."""
    results = await Axe().run(page)
    return [f"{v['id']} ({v['impact']}): {v['help']}" for v in results.response["violations"]]


async def tab_reaches(page: Page, text: str, presses: int = 40) -> bool:
    """Whether pressing Tab (from the top of the page) focuses an element whose text is
    ``text``; the element then has the focus."""
    await page.evaluate("document.activeElement && document.activeElement.blur()")
    for _ in range(presses):
        await page.keyboard.press("Tab")
        focused = await page.evaluate("(document.activeElement.textContent || '').trim()")
        if focused == text:
            return True
    return False

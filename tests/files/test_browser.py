"""The operator's listing in a real headless browser (Debian's chromium through playwright)."""

from __future__ import annotations

from pathlib import Path

import pytest
from files_support import CSV_BODY, CSV_NAME, MANIFEST_NAME, OPERATOR, FilesServer
from playwright.async_api import Browser
from playwright.async_api import Error as PlaywrightError

pytestmark = [pytest.mark.anyio, pytest.mark.browser]


async def test_operator_lists_and_downloads_in_chromium(
    chromium: Browser, files_server: FilesServer, tmp_path: Path
) -> None:
    # Headless chromium has no sign-in prompt: without credentials the 401 challenge
    # ends the navigation with an error; with wrong ones it shows the 401 answer.
    anonymous = await chromium.new_context()
    page = await anonymous.new_page()
    with pytest.raises(PlaywrightError, match="ERR_INVALID_AUTH_CREDENTIALS"):
        await page.goto(files_server.url + "/output/")
    await anonymous.close()
    wrong = await chromium.new_context(
        http_credentials={"username": OPERATOR[0], "password": "wrong"}
    )
    page = await wrong.new_page()
    response = await page.goto(files_server.url + "/output/")
    assert response is not None and response.status == 401
    assert CSV_NAME not in await page.content()
    await wrong.close()

    context = await chromium.new_context(
        http_credentials={"username": OPERATOR[0], "password": OPERATOR[1]},
        accept_downloads=True,
    )
    page = await context.new_page()
    response = await page.goto(files_server.url + "/output/")
    assert response is not None and response.status == 200
    assert await page.title() == "SCWADD exports"
    names = await page.locator("tbody tr td:first-child a").all_inner_texts()
    assert sorted(names) == sorted([CSV_NAME, MANIFEST_NAME])
    assert "Signed in as operator" in await page.locator("body").inner_text()

    async with page.expect_download() as download_info:
        await page.get_by_role("link", name=CSV_NAME).click()
    download = await download_info.value
    assert download.suggested_filename == CSV_NAME
    saved = tmp_path / "saved.csv"
    await download.save_as(saved)
    assert saved.read_bytes() == CSV_BODY

    await page.get_by_role("link", name="This list as JSON").click()
    assert CSV_NAME in await page.locator("body").inner_text()
    await context.close()

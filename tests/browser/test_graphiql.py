"""GraphiQL at `/graphql` in a real browser (Debian's chromium): its files come
from PicShare itself, it runs under the page's Content-Security-Policy with no
console error, and a signed-in browser's query (a POST with the session
cookie and the CSRF header) answers in its result pane."""

from __future__ import annotations

from pathlib import Path

from tests.browser.test_browser import (
    CHROMIUM,
    CHROMIUM_ARGS,
    Browsing,
    _require_browser,
    _server,
)

QUERY = "{ me { username } }"


async def test_graphiql_runs_a_query_for_a_signed_in_browser(
    tmp_path: Path, database_url: str
) -> None:
    _require_browser()
    from playwright.async_api import async_playwright, expect

    async with _server(tmp_path, database_url) as base, async_playwright() as pw:
        browser = await pw.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        try:
            b = Browsing(browser, base, tmp_path)
            page = await b.person("graphiql_gail")
            outside: list[str] = []
            page.on(
                "request",
                lambda r: None if r.url.startswith((base, "data:")) else outside.append(r.url),
            )
            # GraphiQL opens with the query it last had (its own storage key).
            await page.context.add_init_script(f"localStorage.setItem('graphiql:query', {QUERY!r})")
            response = await page.goto(f"{base}/graphql")
            assert response is not None and response.status == 200
            assert "font-src 'self' data:" in response.headers["content-security-policy"]
            await page.locator(".graphiql-container").wait_for()
            await page.locator(".graphiql-execute-button").click()
            await expect(page.locator(".result-window")).to_contain_text("graphiql_gail")
            assert outside == []
            assert b.errors == []
        finally:
            await browser.close()

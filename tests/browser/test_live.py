"""/notifications updates live: a follow made elsewhere appears without a reload."""

from __future__ import annotations

from pathlib import Path

import aiohttp

from tests.browser.test_browser import CHROMIUM, CHROMIUM_ARGS, _require_browser
from tests.servers import picshare_process


async def test_notifications_page_updates_live(tmp_path: Path, database_url: str) -> None:
    _require_browser()
    from playwright.async_api import async_playwright

    env = {"PICSHARE_DATABASE_URL": database_url}
    async with (
        picshare_process(tmp_path / "data", env, tmp_path / "server.log") as server,
        async_playwright() as pw,
        aiohttp.ClientSession() as session,
    ):
        browser = await pw.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        try:
            page = await browser.new_page()
            page.set_default_timeout(15_000)
            await page.goto(f"{server.base}/signup")
            await page.fill("input[name=username]", "watcher")
            await page.fill("input[name=email]", "watcher@example.com")
            await page.fill("input[name=password]", "correct horse battery")
            await page.click("form[action='/signup'] button[type=submit]")
            await page.wait_for_url(f"{server.base}/")
            await page.goto(f"{server.base}/notifications")
            await page.wait_for_timeout(500)  # the socket connects
            body = {"username": "follower", "email": "f@example.com", "password": "correct horse"}
            async with session.post(f"{server.base}/api/v1/auth/signup", json=body) as resp:
                token = (await resp.json())["token"]
            async with session.put(
                f"{server.base}/api/v1/users/watcher/follow",
                headers={"Authorization": f"Bearer {token}"},
            ) as resp:
                assert resp.status == 200
            item = page.locator("ul.notifications li a", has_text="follower started following you")
            await item.wait_for(timeout=3_000)  # no reload: it came over /ws
            assert await page.locator("a.bell .badge").inner_text() == "1"
            await page.screenshot(path=str(tmp_path / "live-notifications.png"))
        finally:
            await browser.close()

"""The pages in a real browser: Playwright drives Debian's chromium against a
real `run.py serve` process.

Two people sign up through the form; one uploads a photo; the other follows,
sees it in the home feed, likes it and comments; the first sees the like, the
comment and the notifications. A third person does the same with JavaScript
off, through plain forms. Screenshots of the main pages (and the photo page
at phone size) are kept under the test's temporary directory.

Without chromium or the playwright package the test is skipped, except under
`PICSHARE_REQUIRE_SERVICES=1` (CI), where it fails.
"""

from __future__ import annotations

import asyncio
import contextlib
import importlib.util
import os
import re
import signal
import socket
import subprocess
import sys
from collections.abc import AsyncIterator
from pathlib import Path
from typing import IO, TYPE_CHECKING

import aiohttp
import pytest

import tests.imaging as imaging
from tests.harness import REQUIRE_SERVICES

if TYPE_CHECKING:
    from playwright.async_api import Browser, BrowserContext, ConsoleMessage, Page, Route

ROOT = Path(__file__).resolve().parent.parent.parent
CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
PASSWORD = "correct horse battery"
TIMEOUT_MS = 30_000


def _require_browser() -> None:
    missing = None
    if importlib.util.find_spec("playwright") is None:
        missing = "the playwright package is not installed (requirements-dev.txt)"
    elif not os.access(CHROMIUM, os.X_OK):
        missing = f"{CHROMIUM} is missing (deploy/system-packages.sh installs chromium)"
    if missing:
        if REQUIRE_SERVICES:
            pytest.fail(f"PICSHARE_REQUIRE_SERVICES=1 but {missing}")
        pytest.skip(missing)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _start(data_dir: Path, database_url: str, port: int, log: IO[bytes]) -> subprocess.Popen[bytes]:
    env = {
        **os.environ,
        "PICSHARE_DATABASE_URL": database_url,
        "PICSHARE_MEDIA_WORKERS": "1",
        "PICSHARE_JOBS_POLL_INTERVAL": "0.2",
        "PICSHARE_SECRET_KEY": "browser-test-secret-key",
    }
    command = [sys.executable, str(ROOT / "run.py"), "serve", "--port", str(port)]
    return subprocess.Popen(
        [*command, "--data-dir", str(data_dir)],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=log,
        # Its own process group, so its media workers are reaped with it.
        start_new_session=True,
    )


@contextlib.asynccontextmanager
async def _server(tmp_path: Path, database_url: str) -> AsyncIterator[str]:
    data_dir = tmp_path / "data"
    data_dir.mkdir()
    port = _free_port()
    base = f"http://127.0.0.1:{port}"
    log_path = tmp_path / "server.log"
    with log_path.open("wb") as log:
        server = _start(data_dir, database_url, port, log)
        try:
            async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=10)) as session:
                async with asyncio.timeout(60):
                    while True:
                        with contextlib.suppress(aiohttp.ClientError):
                            async with session.get(f"{base}/healthz") as resp:
                                if resp.status == 200:
                                    break
                        assert server.poll() is None, log_path.read_text()
                        await asyncio.sleep(0.2)
            yield base
        except BaseException:
            print(log_path.read_text()[-5000:])  # shown by pytest when the test fails
            raise
        finally:
            server.send_signal(signal.SIGINT)
            try:
                server.wait(20)
            except subprocess.TimeoutExpired:
                server.kill()
                server.wait()
            with contextlib.suppress(ProcessLookupError):
                os.killpg(server.pid, signal.SIGKILL)


class Browsing:
    """Pages opened in the test, with the console errors they log (a CSP
    violation, a failing script or a missing file all show up there)."""

    def __init__(self, browser: Browser, base: str, shots: Path) -> None:
        self.browser = browser
        self.base = base
        self.shots = shots
        self.errors: list[str] = []

    async def page(self, context: BrowserContext) -> Page:
        page = await context.new_page()
        page.set_default_timeout(TIMEOUT_MS)
        page.on("console", self._console)
        page.on("pageerror", lambda exc: self.errors.append(str(exc)))
        return page

    def _console(self, message: ConsoleMessage) -> None:
        if message.type == "error":
            self.errors.append(f"{message.text} {message.location}")

    async def person(self, username: str, *, javascript: bool = True) -> Page:
        """A new browser profile that signs up through the form."""
        context = await self.browser.new_context(
            java_script_enabled=javascript, viewport={"width": 1200, "height": 900}
        )
        page = await self.page(context)
        await page.goto(f"{self.base}/signup")
        await page.fill("input[name=username]", username)
        await page.fill("input[name=email]", f"{username}@example.com")
        await page.fill("input[name=password]", PASSWORD)
        await page.get_by_role("button", name="Sign up").click()
        await page.wait_for_url(f"{self.base}/")
        await page.locator(f'nav a[href="/u/{username}"]').wait_for()
        return page

    async def shot(self, page: Page, name: str) -> None:
        await page.screenshot(path=self.shots / f"{name}.png", full_page=True)


async def test_sign_up_upload_follow_like_comment_in_a_real_browser(
    tmp_path: Path, database_url: str
) -> None:
    _require_browser()
    from playwright.async_api import async_playwright, expect

    shots = tmp_path / "screenshots"
    shots.mkdir()
    photo_file = tmp_path / "sunset.jpg"
    photo_file.write_bytes(imaging.photo_jpeg_bytes(1600, 1067, seed=7))

    async with _server(tmp_path, database_url) as base, async_playwright() as pw:
        browser = await pw.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        try:
            b = Browsing(browser, base, shots)
            sam = await b.person("sunset_sam")
            bob = await b.person("bob")

            # Sam uploads through the form; the photo page reloads until it is ready.
            await sam.goto(f"{base}/upload")
            await sam.set_input_files("input[name=file]", str(photo_file))
            await sam.fill("textarea[name=caption]", "Sunset over the sea <b>not bold</b>")
            await sam.fill("input[name=tags]", "#sunset, beach")
            await sam.get_by_role("button", name="Share").click()
            await sam.wait_for_url(re.compile(r"/p/\d+$"))
            photo_id = sam.url.rsplit("/", 1)[1]
            photo_url = f"{base}/p/{photo_id}"
            await sam.locator("article.photo img").wait_for(timeout=60_000)
            await expect(sam.locator(".caption")).to_have_text(
                "Sunset over the sea <b>not bold</b>"
            )

            # Bob's feed is empty until he follows Sam (at once, with JavaScript).
            await bob.goto(f"{base}/")
            await expect(bob.locator("h1")).to_have_text("Your feed is empty")
            await expect(bob.locator(f"#p-{photo_id}")).to_have_count(0)
            await bob.goto(f"{base}/u/sunset_sam")
            await bob.evaluate("window.stayed = true")
            follow = bob.locator("form.follow-form button")
            await expect(follow).to_have_text("Follow")
            await follow.click()
            await expect(follow).to_have_text("Unfollow")
            await expect(bob.locator("[data-followers]")).to_have_text("1")
            await expect(bob.locator("[data-followers-word]")).to_have_text("follower")
            assert await bob.evaluate("window.stayed") is True  # no page load
            await b.shot(bob, "profile")

            # The feed changed: Sam's photo is there; Bob likes it in place.
            await bob.goto(f"{base}/")
            card = bob.locator(f"#p-{photo_id}")
            await expect(card).to_be_visible()
            img = card.locator("img")
            assert await img.get_attribute("srcset")
            assert await img.get_attribute("width") and await img.get_attribute("height")
            assert await img.get_attribute("loading") == "lazy"
            await bob.evaluate("window.stayed = true")
            await card.locator("form.like-form button").click()
            await expect(card.locator("form.like-form button")).to_have_text("♥ Liked")
            await expect(card.locator(".likes")).to_have_text("1 like")
            assert await bob.evaluate("window.stayed") is True
            await b.shot(bob, "home")

            # Bob comments on the photo page (a plain form, POST-redirect-GET).
            comment = "Lovely! <script>alert('x')</script>"
            await bob.goto(photo_url)
            await bob.fill("textarea[name=text]", comment)
            await bob.get_by_role("button", name="Post").click()
            await expect(bob.locator(".comment .text")).to_have_text(comment)

            # Sam sees the like, the comment and three notifications.
            await sam.goto(photo_url)
            await expect(sam.locator(".likes")).to_have_text("1 like")
            await expect(sam.locator(".comment .text")).to_have_text(comment)
            await expect(sam.locator("nav .badge")).to_have_text("3")
            await b.shot(sam, "photo")
            await sam.goto(f"{base}/notifications")
            items = sam.locator("ul.notifications li")
            await expect(items).to_have_count(3)
            await expect(items.nth(0)).to_contain_text("bob commented: Lovely! <script>")
            await expect(items.nth(1)).to_contain_text("bob liked your photo")
            await expect(items.nth(2)).to_contain_text("bob started following you")
            await b.shot(sam, "notifications")
            await sam.get_by_role("button", name="Mark all read").click()
            await expect(sam.locator("nav .badge")).to_have_count(0)
            await expect(sam.locator("li.unread")).to_have_count(0)

            # Settings: the display name and bio show on the profile, escaped.
            await sam.goto(f"{base}/settings")
            await sam.fill("input[name=display_name]", "Sam <Sunset>")
            await sam.fill("textarea[name=bio]", "Chasing light.\nEvery evening.")
            await sam.get_by_role("button", name="Save").click()
            await expect(sam.locator(".saved")).to_have_text("Saved.")
            await b.shot(sam, "settings")
            await sam.goto(f"{base}/u/sunset_sam")
            await expect(sam.locator(".profile h1")).to_have_text("Sam <Sunset>")

            # Search finds the person, the tag and the caption.
            await bob.goto(f"{base}/search?q=sunset")
            await expect(bob.locator('.people a[href="/u/sunset_sam"]')).to_be_visible()
            await expect(bob.locator('.chips a[href="/tags/sunset"]')).to_be_visible()
            await expect(bob.locator(f'.grid a[href="/p/{photo_id}"]')).to_be_visible()
            await b.shot(bob, "search")

            # Without JavaScript: follow and like are plain forms that reload the page.
            carol = await b.person("carol", javascript=False)
            await carol.goto(f"{base}/u/sunset_sam")
            await carol.locator("form.follow-form button").click()
            await carol.wait_for_load_state()
            await expect(carol.locator("form.follow-form button")).to_have_text("Unfollow")
            await expect(carol.locator("[data-followers]")).to_have_text("2")
            await carol.goto(f"{base}/")
            await carol.locator(f"#p-{photo_id} form.like-form button").click()
            await carol.wait_for_url(f"{base}/#p-{photo_id}")
            card = carol.locator(f"#p-{photo_id}")
            await expect(card.locator("form.like-form button")).to_have_text("♥ Liked")
            await expect(card.locator(".likes")).to_have_text("2 likes")

            # The photo page on a phone.
            phone = await browser.new_context(
                viewport={"width": 390, "height": 844},
                is_mobile=True,
                has_touch=True,
                storage_state=await bob.context.storage_state(),
            )
            small = await b.page(phone)
            await small.goto(photo_url)
            await expect(small.locator(".likes")).to_have_text("2 likes")
            width = await small.evaluate("document.documentElement.scrollWidth")
            assert width <= 390, f"the page scrolls sideways on a phone ({width}px)"
            await b.shot(small, "photo-phone")
            assert b.errors == [], b.errors

            # When the API call fails, the form is submitted the ordinary way.
            async def api_down(route: Route) -> None:
                await route.fulfill(status=503, body="down")

            await bob.route("**/api/v1/photos/*/like", api_down)
            await bob.goto(photo_url)
            await bob.locator("form.like-form button").click()
            await bob.wait_for_url(f"{photo_url}#p-{photo_id}")
            await expect(bob.locator("form.like-form button")).to_have_text("♡ Like")
            await expect(bob.locator(".likes")).to_have_text("1 like")
        finally:
            await browser.close()
    for name in ("home", "photo", "profile", "notifications", "search", "settings"):
        assert (shots / f"{name}.png").stat().st_size > 0
    assert (shots / "photo-phone.png").stat().st_size > 0

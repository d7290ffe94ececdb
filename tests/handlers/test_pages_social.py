"""The social pages over plain HTTP: feed, photo, profile, tags, search,
notifications and settings, with their forms (CSRF, POST-redirect-GET, who
may do what) and the escaping of everything a user wrote."""

from __future__ import annotations

import re
from typing import Any

import pytest
from aiohttp import ClientResponse
from aiohttp.test_utils import TestClient

import tests.imaging as imaging
from picshare import keys
from tests.conftest import bearer, signup, upload, upload_ready, wait_ready
from tests.handlers.test_pages import HTML, csrf_of

Client = TestClient[Any, Any]
SCRIPT = "<script>alert(1)</script>"
ESCAPED = "&lt;script&gt;alert(1)&lt;/script&gt;"


async def login(client: Client, username: str) -> None:
    """Become `username` in this client's browser (a fresh cookie jar, the log-in form)."""
    client.session.cookie_jar.clear()
    token = await csrf_of(client, "/login")
    resp = await client.post(
        "/login",
        data={"csrf_token": token, "username": username, "password": "correct horse"},
        allow_redirects=False,
    )
    assert resp.status == 303, await resp.text()


async def page(client: Client, path: str, status: int = 200) -> str:
    resp = await client.get(path, headers=HTML)
    text = await resp.text()
    assert resp.status == status, text
    return text


async def submit(
    client: Client, path: str, data: dict[str, str] | None = None, *, csrf: bool = True
) -> ClientResponse:
    """POST a page form the way a browser does: with the page's CSRF token, no redirects."""
    fields = dict(data or {})
    if csrf:
        fields["csrf_token"] = await csrf_of(client, "/login")
    return await client.post(path, data=fields, headers=HTML, allow_redirects=False)


async def count(client: Client, sql: str, *args: Any) -> int:
    """`sql`'s one value summed over every shard (a shard with no row adds 0)."""
    total = 0
    for db in client.app[keys.DATABASES].physical:
        total += int(await db.primary.pool.fetchval(sql, *args) or 0)
    return total


async def photo_of(client: Client, username: str, **upload: Any) -> tuple[str, dict[str, Any]]:
    token = await signup(client, username)
    if upload:
        resp = await client.patch("/api/v1/me", json=upload, headers=bearer(token))
        assert resp.status == 200
    photo = await upload_ready(client, token, imaging.jpeg_bytes(96, 64))
    return token, photo


async def test_home_is_newest_for_anonymous_and_the_feed_once_following(client: Client) -> None:
    _, photo = await photo_of(client, "alice")
    await signup(client, "bob")
    anonymous = await page(client, "/")
    assert "Newest photos" in anonymous and f'href="/p/{photo["id"]}"' in anonymous
    await login(client, "bob")
    empty = await page(client, "/")
    assert "Your feed is empty" in empty and f'href="/p/{photo["id"]}"' in empty
    assert f'id="p-{photo["id"]}"' not in empty  # in the newest grid, not as a feed card
    resp = await submit(client, "/u/alice/follow")
    assert resp.status == 303 and resp.headers["Location"] == "/u/alice"
    feed = await page(client, "/")
    assert "Your feed" in feed and "Your feed is empty" not in feed
    assert f'id="p-{photo["id"]}"' in feed
    # Renditions in srcset, the size set, lazy loading, the blurhash colour.
    img = re.search(r"<img [^>]*>", feed)
    assert img is not None
    tag = img.group(0)
    assert 'srcset="' in tag and " 640w" in tag and 'width="' in tag and 'height="' in tag
    assert 'loading="lazy"' in tag and "background-color: #" in tag
    newest = await page(client, "/?view=new")
    assert "Newest photos" in newest and f'href="/p/{photo["id"]}"' in newest


async def test_header_links_and_progressive_script(client: Client) -> None:
    await signup(client, "carol")
    await login(client, "carol")
    home = await page(client, "/")
    for href in ("/", "/search", "/upload", "/notifications", "/u/carol", "/settings"):
        assert f'href="{href}"' in home, href
    assert 'action="/logout"' in home
    meta = re.search(r'<meta name="csrf-token" content="([^"]+)">', home)
    assert meta and meta.group(1) == await csrf_of(client, "/")
    script = re.search(r'<script src="(/static/app\.js[^"]*)" defer></script>', home)
    assert script, "app.js is a file (the CSP forbids inline scripts)"
    assert not re.search(r"<script(?![^>]*\bsrc=)", home)
    assert not re.search(r"\son[a-z]+=", home)  # no inline event handlers
    js = await client.get(script.group(1))
    assert js.status == 200 and "X-CSRF-Token" in await js.text()
    assert (
        "default-src 'self'"
        in (await client.get("/", headers=HTML)).headers["Content-Security-Policy"]
    )


async def test_like_and_unlike_forms_redirect_back(client: Client) -> None:
    _, photo = await photo_of(client, "alice")
    pid = photo["id"]
    await signup(client, "bob")
    await login(client, "bob")
    resp = await submit(client, f"/p/{pid}/like", csrf=False)
    assert resp.status == 403
    assert await count(client, "SELECT count(*) FROM likes") == 0
    resp = await submit(client, f"/p/{pid}/like", {"next": "/?view=new"})
    assert resp.status == 303 and resp.headers["Location"] == f"/?view=new#p-{pid}"
    text = await page(client, f"/p/{pid}")
    assert f'action="/p/{pid}/unlike"' in text and "1 like<" in text
    assert 'aria-pressed="true"' in text
    resp = await submit(client, f"/p/{pid}/like", {"next": "//evil.example/"})
    assert resp.headers["Location"] == f"/#p-{pid}"  # never off-site
    assert await count(client, "SELECT like_count FROM photos WHERE id = $1", int(pid)) == 1
    resp = await submit(client, f"/p/{pid}/unlike")
    assert resp.status == 303 and resp.headers["Location"] == f"/p/{pid}#p-{pid}"
    text = await page(client, f"/p/{pid}")
    assert f'action="/p/{pid}/like"' in text and "0 likes" in text
    assert (await submit(client, "/p/123/like")).status == 404
    # Signed out: the form sends you to log in, then back.
    client.session.cookie_jar.clear()
    resp = await submit(client, f"/p/{pid}/like")
    assert resp.status == 303
    assert resp.headers["Location"] == f"/login?next=/p/{pid}"
    assert "Log in to like" in await page(client, f"/p/{pid}")


async def test_comments_post_escape_and_delete_by_author_or_owner_only(client: Client) -> None:
    _, photo = await photo_of(client, "alice", display_name=SCRIPT)
    pid = photo["id"]
    await signup(client, "bob")
    await signup(client, "carol")
    await login(client, "bob")
    resp = await submit(client, f"/p/{pid}/comments", {"text": "nice"}, csrf=False)
    assert resp.status == 403
    assert await count(client, "SELECT count(*) FROM comments") == 0
    resp = await submit(client, f"/p/{pid}/comments", {"text": f"wow {SCRIPT}"})
    assert resp.status == 303 and resp.headers["Location"] == f"/p/{pid}#comments"
    text = await page(client, f"/p/{pid}")
    assert f"wow {ESCAPED}" in text and SCRIPT not in text
    assert "1 comment<" in text
    comment_id = await count(client, "SELECT id FROM comments")
    assert f'action="/comments/{comment_id}/delete"' in text  # bob wrote it
    # An empty comment: the page again, with the error by its field, and 400.
    resp = await submit(client, f"/p/{pid}/comments", {"text": "   "})
    assert resp.status == 400
    error_page = await resp.text()
    assert "<strong>text</strong>" in error_page and 'class="error"' in error_page
    # Someone else cannot delete it (403), and the comment stays.
    await login(client, "carol")
    assert f'action="/comments/{comment_id}/delete"' not in await page(client, f"/p/{pid}")
    resp = await submit(client, f"/comments/{comment_id}/delete", {"next": f"/p/{pid}"})
    assert resp.status == 403
    assert "403" in await resp.text()
    assert await count(client, "SELECT count(*) FROM comments") == 1
    # The photo's owner can.
    await login(client, "alice")
    assert f'action="/comments/{comment_id}/delete"' in await page(client, f"/p/{pid}")
    resp = await submit(client, f"/comments/{comment_id}/delete", csrf=False)
    assert resp.status == 403
    resp = await submit(client, f"/comments/{comment_id}/delete", {"next": f"/p/{pid}"})
    assert resp.status == 303 and resp.headers["Location"] == f"/p/{pid}"
    assert await count(client, "SELECT count(*) FROM comments") == 0


async def test_delete_photo_form_is_for_the_owner(client: Client) -> None:
    _, photo = await photo_of(client, "alice")
    pid = photo["id"]
    await signup(client, "bob")
    await login(client, "bob")
    assert f'action="/p/{pid}/delete"' not in await page(client, f"/p/{pid}")
    assert (await submit(client, f"/p/{pid}/delete")).status == 403
    await login(client, "alice")
    assert f'action="/p/{pid}/delete"' in await page(client, f"/p/{pid}")
    assert (await submit(client, f"/p/{pid}/delete", csrf=False)).status == 403
    resp = await submit(client, f"/p/{pid}/delete")
    assert resp.status == 303 and resp.headers["Location"] == "/u/alice"
    await page(client, f"/p/{pid}", status=404)


async def test_profile_follow_unfollow_and_escaped_profile_text(client: Client) -> None:
    _, photo = await photo_of(client, "alice", display_name=f"Al {SCRIPT}", bio=f"bio {SCRIPT}")
    await signup(client, "bob")
    anonymous = await page(client, "/u/alice")
    assert f"Al {ESCAPED}" in anonymous and f"bio {ESCAPED}" in anonymous
    assert SCRIPT not in anonymous
    assert f'href="/p/{photo["id"]}"' in anonymous and "Log in to follow" in anonymous
    await page(client, "/u/nobody_here", status=404)
    await login(client, "bob")
    text = await page(client, "/u/alice")
    assert 'action="/u/alice/follow"' in text and 'data-state="none"' in text
    assert (await submit(client, "/u/alice/follow", csrf=False)).status == 403
    assert await count(client, "SELECT count(*) FROM follows") == 0
    resp = await submit(client, "/u/alice/follow")
    assert resp.status == 303
    text = await page(client, "/u/alice")
    assert 'action="/u/alice/unfollow"' in text and ">Unfollow<" in text
    assert re.search(r"<strong data-followers>1</strong> <span data-followers-word>follower<", text)
    # Following yourself: the profile again with the error, 400.
    await login(client, "alice")
    mine = await page(client, "/u/alice")
    assert 'href="/settings"' in mine and 'action="/u/alice/follow"' not in mine
    resp = await submit(client, "/u/alice/follow")
    assert resp.status == 400 and "cannot follow yourself" in await resp.text()
    await login(client, "bob")
    resp = await submit(client, "/u/alice/unfollow")
    assert resp.status == 303
    assert await count(client, "SELECT count(*) FROM follows") == 0


async def test_private_profile_for_stranger_requester_and_follower(client: Client) -> None:
    _, photo = await photo_of(client, "alice", private=True)
    pid = photo["id"]
    await signup(client, "bob")
    await signup(client, "carol")
    await signup(client, "dave")
    await login(client, "bob")
    text = await page(client, "/u/alice")  # the profile exists: not a 404
    assert "This account is private" in text and f"/p/{pid}" not in text
    assert ">Request to follow<" in text and "1</strong> photo" in text
    await page(client, f"/p/{pid}", status=404)
    assert (await submit(client, "/u/alice/follow")).status == 303
    text = await page(client, "/u/alice")
    assert ">Cancel request<" in text and "waiting for @alice" in text
    await login(client, "dave")
    assert (await submit(client, "/u/alice/follow")).status == 303
    # Carol cannot answer alice's requests, however she words the address.
    await login(client, "carol")
    assert "Follow requests" not in await page(client, "/u/alice")
    for path in ("/u/alice/requests/bob/approve", "/u/ALICE/requests/bob/approve"):
        assert (await submit(client, path)).status == 403
    assert (await submit(client, "/u/carol/requests/bob/approve")).status == 404
    assert await count(client, "SELECT count(*) FROM follows") == 0
    # Alice sees both requests, approves bob and declines dave.
    await login(client, "alice")
    mine = await page(client, "/u/alice")
    assert "Follow requests" in mine
    assert 'action="/u/alice/requests/bob/approve"' in mine
    assert 'action="/u/alice/requests/dave/decline"' in mine
    assert (await submit(client, "/u/alice/requests/bob/approve", csrf=False)).status == 403
    resp = await submit(client, "/u/alice/requests/bob/approve")
    assert resp.status == 303 and resp.headers["Location"] == "/u/alice"
    assert (await submit(client, "/u/alice/requests/dave/decline")).status == 303
    assert "Follow requests" not in await page(client, "/u/alice")
    await login(client, "bob")
    text = await page(client, "/u/alice")
    assert f'href="/p/{pid}"' in text and "This account is private" not in text
    assert ">Unfollow<" in text
    await page(client, f"/p/{pid}")
    await login(client, "dave")
    text = await page(client, "/u/alice")
    assert "This account is private" in text and ">Request to follow<" in text


async def test_settings_form_saves_validates_and_needs_csrf(client: Client) -> None:
    resp = await client.get("/settings", headers=HTML, allow_redirects=False)
    assert resp.status == 303 and resp.headers["Location"] == "/login?next=/settings"
    await signup(client, "erin")
    await login(client, "erin")
    form = await page(client, "/settings")
    assert 'name="display_name"' in form and 'name="bio"' in form and 'name="private"' in form
    fields = {"display_name": "Erin <b>E</b>", "bio": f"line one\r\n{SCRIPT}", "private": "on"}
    resp = await submit(client, "/settings", fields, csrf=False)
    assert resp.status == 403
    resp = await submit(client, "/settings", fields)
    assert resp.status == 303 and resp.headers["Location"] == "/settings?saved=1"
    saved = await page(client, "/settings?saved=1")
    assert "Saved." in saved and "Erin &lt;b&gt;E&lt;/b&gt;" in saved and ESCAPED in saved
    assert re.search(r'name="private" checked', saved)
    me = await (await client.get("/api/v1/users/erin")).json()
    assert me["display_name"] == "Erin <b>E</b>" and me["private"] is True
    assert me["bio"] == f"line one\n{SCRIPT}"  # a browser's CRLF, stored as LF
    # Unticked: public again. Too long a name: the form again, with the field named.
    assert (await submit(client, "/settings", {"display_name": "Erin", "bio": ""})).status == 303
    assert (await (await client.get("/api/v1/users/erin")).json())["private"] is False
    resp = await submit(client, "/settings", {"display_name": "x" * 65, "bio": "kept"})
    assert resp.status == 400
    text = await resp.text()
    assert "<strong>display_name</strong>" in text and ">kept</textarea>" in text
    assert (await (await client.get("/api/v1/users/erin")).json())["display_name"] == "Erin"


async def test_tag_and_search_pages(client: Client) -> None:
    token = await signup(client, "sunny")
    resp = await upload(client, token, imaging.jpeg_bytes(64, 48), caption="Sunset #Beach")
    assert resp.status == 201
    photo = await wait_ready(client, token, (await resp.json())["id"])
    text = await page(client, "/tags/beach")
    assert "#beach" in text and f'href="/p/{photo["id"]}"' in text
    assert "No photos with" in await page(client, "/tags/nothing")
    assert 'name="q"' in await page(client, "/search")
    text = await page(client, "/search?q=sun")
    assert 'href="/u/sunny"' in text and f'href="/p/{photo["id"]}"' in text
    text = await page(client, "/search?q=%23beach")
    assert 'href="/tags/beach"' in text
    text = await page(client, f"/search?q={SCRIPT}")
    assert ESCAPED in text and SCRIPT not in text
    resp = await client.get("/search?q=" + "x" * 101, headers=HTML)
    assert resp.status == 400 and "<strong>q</strong>" in await resp.text()
    photo_page = await page(client, f"/p/{photo['id']}")
    assert 'href="/tags/beach"' in photo_page


async def test_notifications_page_badge_links_and_mark_read(client: Client) -> None:
    _, photo = await photo_of(client, "alice")
    pid = photo["id"]
    resp = await client.get("/notifications", headers=HTML, allow_redirects=False)
    assert resp.status == 303 and resp.headers["Location"].startswith("/login?next=")
    await signup(client, "bob")
    await login(client, "bob")
    await submit(client, "/u/alice/follow")
    await submit(client, f"/p/{pid}/like")
    await submit(client, f"/p/{pid}/comments", {"text": f"so {SCRIPT}"})
    await login(client, "alice")
    home = await page(client, "/")
    assert re.search(r'class="badge"[^>]*>3<', home)
    text = await page(client, "/notifications")
    positions = [text.index(s) for s in ("bob commented", "bob liked", "bob started following")]
    assert positions == sorted(positions)  # newest first
    assert f'<a href="/p/{pid}">bob liked your photo</a>' in text
    assert '<a href="/u/bob">bob started following you</a>' in text
    assert f"so {ESCAPED}" in text and SCRIPT not in text
    assert len(re.findall(r'<li class="[a-z_]+ unread">', text)) == 3
    assert (await submit(client, "/notifications/read", csrf=False)).status == 403
    assert await count(client, "SELECT count(*) FROM notifications WHERE read_at IS NULL") == 3
    up_to = re.search(r'name="up_to" value="(\d+)"', text)
    assert up_to
    resp = await submit(client, "/notifications/read", {"up_to": up_to.group(1)})
    assert resp.status == 303 and resp.headers["Location"] == "/notifications"
    text = await page(client, "/notifications")
    assert 'class="badge"' not in text and "Mark all read" not in text
    assert "bob liked your photo" in text


async def test_older_links_page_through_profile_feed_comments_and_notifications(
    client: Client, monkeypatch: pytest.MonkeyPatch
) -> None:
    import handlers.pages
    import handlers.pages_browse
    import handlers.pages_photo
    import handlers.pages_profile

    monkeypatch.setattr(handlers.pages, "FEED_SIZE", 2)
    monkeypatch.setattr(handlers.pages_profile, "PAGE_SIZE", 2)
    monkeypatch.setattr(handlers.pages_photo, "COMMENTS_PAGE", 2)
    monkeypatch.setattr(handlers.pages_browse, "NOTIFICATIONS_PAGE", 2)
    token = await signup(client, "maker")
    await signup(client, "fan")
    ids = [(await upload_ready(client, token, imaging.jpeg_bytes(32, 32)))["id"] for _ in range(3)]
    await login(client, "maker")

    async def walk(path: str, pattern: str) -> list[str]:
        seen: list[str] = []
        while True:
            text = await page(client, path)
            seen += re.findall(pattern, text)
            older = re.search(r'<a rel="next" href="([^"]+)"', text)
            if older is None:
                return seen
            path = older.group(1).replace("&amp;", "&")
            assert "cursor=" in path

    grid = await walk("/u/maker", r'<li><a href="/p/(\d+)">')
    assert grid == ids[::-1]
    feed = await walk("/", r'<article class="card-photo" id="p-(\d+)">')
    assert feed == ids[::-1]
    for i in range(3):
        await submit(client, f"/p/{ids[0]}/comments", {"text": f"comment {i}"})
    comments = await walk(f"/p/{ids[0]}", r'<span class="text">(comment \d)</span>')
    assert comments == ["comment 2", "comment 1", "comment 0"]
    await login(client, "fan")
    for pid in ids:
        await submit(client, f"/p/{pid}/like")
    await login(client, "maker")
    liked = await walk("/notifications", r'<a href="/p/(\d+)">fan liked')
    assert liked == ids[::-1]

"""The COMMENTS table group in a database of its own
(`PICSHARE_DATABASE_GROUP_COMMENTS_URL`), a fresh empty one: a comment is
written and listed there (one photo's page, a feed's first comments), the
photo's comment_count and the owner's notification follow by a job and
converge, a deletion and an author's new display name reach it, a deleted
photo's comments go by a job; nothing is written where the photos live."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from aiohttp.test_utils import TestClient

from picshare import keys
from picshare.app import create_app
from picshare.jobs import JobRunner
from storage.table_groups import EVERY_DATABASE, TABLES
from tests import imaging
from tests.conftest import AiohttpClient, bearer, signup, upload_ready
from tests.groups_apart import count, empty_database, settings_apart, until
from tests.harness import PostgresForTests, tables_of

Client = TestClient[Any, Any]


@pytest.fixture
async def comments_url(postgres: PostgresForTests) -> AsyncIterator[str]:
    async with empty_database(postgres, "comments") as url:
        yield url


@pytest.fixture
async def client(
    tmp_path: Path,
    database_url: str,
    comments_url: str,
    media_pool: Any,
    aiohttp_client: AiohttpClient,
) -> Client:
    """An app whose comments live in `comments_url`."""
    settings = settings_apart(tmp_path / "data", database_url, "comments", comments_url)
    made: Client = await aiohttp_client(create_app(settings, media_pool=media_pool))
    return made


FEED_COMMENTS = (
    "{ feed(first: 5) { edges { node { commentCount "
    "comments(first: 3) { edges { node { text user { displayName } } } } } } } }"
)


async def test_comments_in_their_own_database(client: Client, comments_url: str) -> None:
    shards = client.app[keys.DATABASES]
    assert shards.comments is not None and shards.comments not in shards.physical
    star, fan = await signup(client, "star"), await signup(client, "fan")
    assert (await client.put("/api/v1/users/star/follow", headers=bearer(fan))).status == 200
    photo = await upload_ready(client, star, imaging.jpeg_bytes(32, 32))
    path = f"/api/v1/photos/{photo['id']}"

    made = await client.post(f"{path}/comments", json={"text": "lovely"}, headers=bearer(fan))
    assert made.status == 201, await made.text()
    first = await made.json()
    second = await client.post(f"{path}/comments", json={"text": "again"}, headers=bearer(fan))
    assert second.status == 201

    async def listed() -> list[str]:
        resp = await client.get(f"{path}/comments", headers=bearer(star))
        assert resp.status == 200
        return [c["text"] for c in (await resp.json())["items"]]

    async def counted() -> int:
        resp = await client.get(path, headers=bearer(star))
        return int((await resp.json())["comment_count"])

    async def kinds() -> list[str]:
        resp = await client.get("/api/v1/notifications", headers=bearer(star))
        return [n["kind"] for n in (await resp.json())["items"]]

    assert await listed() == ["again", "lovely"]  # at once: the comments' own database
    assert await until(counted, 2) == 2  # by the count jobs
    assert await until(kinds, ["comment", "comment", "follow"])

    # A new display name reaches the comments' copies (a job).
    renamed = await client.patch("/api/v1/me", json={"display_name": "Fan"}, headers=bearer(fan))
    assert renamed.status == 200

    async def feed() -> list[Any]:
        resp = await client.post("/graphql", json={"query": FEED_COMMENTS}, headers=bearer(fan))
        body = await resp.json()
        assert "errors" not in body, body
        node = body["data"]["feed"]["edges"][0]["node"]
        return [
            node["commentCount"],
            [e["node"]["user"]["displayName"] for e in node["comments"]["edges"]],
        ]

    assert await until(feed, [2, ["Fan", "Fan"]])

    # Deleting one: the count and its notification follow.
    gone = await client.delete(f"/api/v1/comments/{first['id']}", headers=bearer(star))
    assert gone.status == 204
    assert await listed() == ["again"]
    assert await until(counted, 1) == 1
    assert await until(kinds, ["comment", "follow"])

    assert await tables_of(comments_url) == TABLES["comments"] | EVERY_DATABASE
    for db in shards.physical:
        async with db.read() as conn:
            assert await conn.fetchval("SELECT count(*) FROM comments") == 0

    # The photo deleted: its comments go too, by a job.
    assert (await client.delete(path, headers=bearer(star))).status == 204

    async def left() -> int:
        return await count(comments_url, "SELECT count(*) FROM comments")

    assert await until(left, 0) == 0


@pytest.mark.one_pass
async def test_a_failed_comment_leaves_nothing(
    client: Client, comments_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    star = await signup(client, "star")
    await signup(client, "fan")
    photo = await upload_ready(client, star, imaging.jpeg_bytes(32, 32))
    fan = await client.app[keys.CACHED_READS].user_by_name("fan")
    assert fan is not None

    async def failing(*_args: Any, **_kwargs: Any) -> int:
        raise RuntimeError("the comment's job could not be enqueued")

    # The comment and its count job are one transaction: neither stays.
    monkeypatch.setattr(JobRunner, "enqueue", failing)
    with pytest.raises(RuntimeError):
        await client.app[keys.SOCIAL].add_comment(int(photo["id"]), fan, "lost")
    monkeypatch.undo()
    assert await count(comments_url, "SELECT count(*) FROM comments") == 0
    assert await count(comments_url, "SELECT count(*) FROM jobs") == 0

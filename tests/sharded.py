"""Test helpers that put rows where the app would (its users' shards), so a test
that writes or reads SQL directly runs alike on one database and on several
(`PICSHARE_TEST_SHARDS=2`)."""

from __future__ import annotations

import asyncio
from typing import Any

import asyncpg
from aiohttp import web

from picshare import keys
from storage.ids import shard_of

# A ready photo (tests that need no renditions): $1 owner, $2 caption, $3 tags.
# Its id comes from the owner's logical shard, as PhotoService makes it.
INSERT_PHOTO = (
    "INSERT INTO photos (id, owner_id, caption, tags, mime, width, height, bytes, upload_key, "
    "status) VALUES (picshare_next_id($4), $1, $2, $3, 'image/jpeg', 10, 10, 1, "
    "'uploads/' || repeat('0', 64), 'ready') RETURNING id"
)


def pool_of_user(app: web.Application, user_id: int) -> asyncpg.Pool:
    """The primary pool of the shard holding this user's rows (or this id's)."""
    pool: asyncpg.Pool = app[keys.DATABASES].of_user(user_id).primary.pool
    return pool


def pool_of_username(app: web.Application, username: str) -> asyncpg.Pool:
    pool: asyncpg.Pool = app[keys.DATABASES].of_username(username).primary.pool
    return pool


async def user_id(app: web.Application, username: str) -> int:
    return int(
        await pool_of_username(app, username).fetchval(
            "SELECT id FROM users WHERE username = $1", username
        )
    )


async def insert_photo(
    app: web.Application, owner_id: int, caption: str = "", tags: list[str] | None = None
) -> int:
    """A ready photo of `owner_id`, on the owner's shard, indexed for search
    (as the `search` consumer would once its events came); its id."""
    async with pool_of_user(app, owner_id).acquire() as conn:
        photo_id = int(
            await conn.fetchval(INSERT_PHOTO, owner_id, caption, tags or [], shard_of(owner_id))
        )
    await app[keys.SEARCH_INDEX].index_photo(photo_id)
    return photo_id


async def wait_for(
    probe: Any, *, timeout: float = 15.0, interval: float = 0.02, what: str = "a condition"
) -> float:
    """Poll `await probe()` until it is truthy; the seconds it took."""
    loop = asyncio.get_running_loop()
    start = loop.time()
    while not await probe():
        if loop.time() - start > timeout:
            raise AssertionError(f"{what} not met after {timeout}s")
        await asyncio.sleep(interval)
    return loop.time() - start


async def follows_settled(app: web.Application, follower_id: int, followee_id: int) -> bool:
    """Both sides of the follow say the same (a row on each, or none): the
    mirror has caught up."""
    sql = "SELECT id FROM follows WHERE follower_id = $1 AND followee_id = $2"
    mine = await pool_of_user(app, follower_id).fetchval(sql, follower_id, followee_id)
    theirs = await pool_of_user(app, followee_id).fetchval(sql, follower_id, followee_id)
    return bool(mine == theirs)


async def sum_everywhere(app: web.Application, sql: str, *args: Any) -> int:
    """`sql`'s single value summed over every shard (NULL, where a shard has
    no such row, counts 0): a count of all rows, or one row's value."""
    total = 0
    for db in app[keys.DATABASES].physical:
        value = await db.primary.pool.fetchval(sql, *args)
        total += int(value or 0)
    return total


async def jobs_settled(app: web.Application, timeout: float = 30.0) -> None:
    """Every shard's jobs done (or parked): what they were to do is done."""
    sql = "SELECT count(*) FROM jobs WHERE status IN ('queued', 'running')"
    async with asyncio.timeout(timeout):
        for db in app[keys.DATABASES].physical:
            while await db.primary.pool.fetchval(sql):
                await asyncio.sleep(0.05)

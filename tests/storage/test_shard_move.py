"""Moving a logical shard between two real clusters (storage/shard_move.py)
while writers keep writing: nothing lost, nothing twice, only that logical
shard's writes pause, and an interrupted move finishes when run again."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import pytest

from picshare.config import Settings
from picshare.database import open_shards
from storage import shard_move, webhooks_repo
from storage.db import Connection
from storage.ids import shard_of
from storage.router import PRIMARY, Databases, ShardMoving
from storage.shard_map import save_move
from storage.shard_move import MovedTable, move
from storage.shards import Shards
from tests.conftest import sharded_settings

# Its own databases, or nothing in it depends on where rows live: the
# sharded pass (PICSHARE_TEST_SHARDS) would run it the same way again.
pytestmark = pytest.mark.one_pass

MOVED = 5  # on the first database (0-511 of 1024)
STAYS = 6  # its neighbour there: must never pause
FAR = 700  # on the second database


def sharded(tmp_path: Path, dsns: list[str]) -> Settings:
    return sharded_settings(tmp_path / "data", dsns, {"shard_map_poll": 0.1})


async def _user(shards: Shards, logical: int, name: str) -> int:
    async with shards.of_logical(logical).write() as conn:
        user_id: int = await conn.fetchval(
            "INSERT INTO users (id, username, email, password_hash) "
            "VALUES (picshare_next_id($1), $2, $2 || '@example.com', 'x') RETURNING id",
            logical,
            name,
        )
    return user_id


async def _photo(shards: Shards, owner: int) -> int:
    async with shards.of_id(owner).write() as conn:
        photo_id: int = await conn.fetchval(
            "INSERT INTO photos (id, owner_id, caption, tags, status, mime, width, height, bytes, "
            "upload_key) VALUES (picshare_next_id($2), $1, 'a #sea day', '{sea}', 'ready', "
            "'image/jpeg', 10, 10, 100, 'uploads/x') RETURNING id",
            owner,
            shard_of(owner),
        )
    return photo_id


async def _follow(shards: Shards, follower: int, followee: int) -> None:
    """One row on each side's database (once when they share one)."""
    async with shards.of_id(follower).write() as conn:
        follow_id = await conn.fetchval(
            "INSERT INTO follows (id, follower_id, followee_id) VALUES "
            "(picshare_next_id($3), $1, $2) RETURNING id",
            follower,
            followee,
            shard_of(follower),
        )
    if shards.of_id(followee) is not shards.of_id(follower):
        async with shards.of_id(followee).write() as conn:
            await conn.execute(
                "INSERT INTO follows (id, follower_id, followee_id) VALUES ($1, $2, $3)",
                follow_id,
                follower,
                followee,
            )


async def _rows(db: Databases, sql: str, *args: object) -> list[tuple[Any, ...]]:
    async with db.read(PRIMARY) as conn:
        return [tuple(r) for r in await conn.fetch(sql, *args)]


class Writer:
    """Likes on one photo from a stream of user ids, as another process would
    write them: its own map, read again when a write is refused or every 0.1 s."""

    def __init__(self, shards: Shards, photo_id: int) -> None:
        self.shards = shards
        self.photo_id = photo_id
        self.done: list[int] = []
        self.refused = 0
        self.longest_pause = 0.0

    async def run(self, stop: asyncio.Event) -> None:
        n = 0
        paused_since: float | None = None
        loop = asyncio.get_running_loop()
        while not stop.is_set():
            n += 1
            try:
                async with self.shards.of_id(self.photo_id).write() as conn:
                    await conn.execute(
                        "INSERT INTO likes (photo_id, user_id) VALUES ($1, $2)", self.photo_id, n
                    )
            except ShardMoving:
                self.refused += 1
                paused_since = paused_since or loop.time()
                await self.shards.reload_map()
                await asyncio.sleep(0.02)
                n -= 1  # the same like again: it was not written
                continue
            if paused_since is not None:
                self.longest_pause = max(self.longest_pause, loop.time() - paused_since)
                paused_since = None
            self.done.append(n)
            await asyncio.sleep(0.002)


async def test_a_move_under_write_load_loses_and_duplicates_nothing(
    tmp_path: Path, shard_dsns: list[str]
) -> None:
    settings = sharded(tmp_path, shard_dsns)
    async with open_shards(settings) as shards, open_shards(settings) as other_process:
        first, second = shards.physical
        mover = await _user(shards, MOVED, "mover")
        neighbour = await _user(shards, STAYS, "neighbour")
        far = await _user(shards, FAR, "faraway")
        photo = await _photo(shards, mover)
        neighbours_photo = await _photo(shards, neighbour)
        await _follow(shards, mover, neighbour)  # both on the first: one row
        await _follow(shards, far, mover)  # a row on each database
        async with shards.of_id(mover).transaction() as conn:
            hook = await webhooks_repo.add_endpoint(
                conn, user_id=mover, url="https://example.com/h", events=["a"], secret="whsec_"
            )
            await webhooks_repo.add_message(
                conn, endpoint_id=hook.id, event_id=1, event_type="a", body="{}"
            )
            await webhooks_repo.log_delivery(
                conn,
                endpoint_id=hook.id,
                event_id=1,
                event_type="a",
                attempt=1,
                status=500,
                duration_ms=1,
                error="",
                next_delay=5.0,
                keep=10,
            )
        moving, staying = Writer(other_process, photo), Writer(other_process, neighbours_photo)
        stop = asyncio.Event()
        writers = [asyncio.create_task(w.run(stop)) for w in (moving, staying)]
        await asyncio.sleep(0.3)
        report = await move(shards, MOVED, 1, grace=0.5)
        await asyncio.sleep(0.3)
        stop.set()
        await asyncio.gather(*writers)

        assert report.rows > 0 and report.pause_seconds < 1.0
        assert shards.map.physical_of(MOVED) == 1
        await other_process.reload_map()
        assert other_process.map.physical_of(MOVED) == 1
        # Every like the writer was told was written is on the new database, once.
        likes = await _rows(second, "SELECT user_id FROM likes WHERE photo_id = $1", photo)
        assert sorted(u for (u,) in likes) == moving.done
        assert len(moving.done) > 20 and moving.refused > 0
        assert await _rows(first, "SELECT 1 FROM likes WHERE photo_id = $1", photo) == []
        assert await _rows(first, "SELECT 1 FROM photos WHERE id = $1", photo) == []
        assert await _rows(first, "SELECT 1 FROM users WHERE id = $1", mover) == []
        assert await _rows(second, "SELECT username FROM users WHERE id = $1", mover) == [
            ("mover",)
        ]
        # The mover's webhooks moved with the mover.
        for table, column in (
            ("webhook_endpoints", "id"),
            ("webhook_messages", "endpoint_id"),
            ("webhook_deliveries", "endpoint_id"),
        ):
            found = f"SELECT 1 FROM {table} WHERE {column} = $1"
            assert len(await _rows(second, found, hook.id)) == 1, table
            assert await _rows(first, found, hook.id) == [], table
        # The neighbour never paused, and its likes stayed where they were.
        assert staying.refused == 0
        neighbours = await _rows(
            first, "SELECT user_id FROM likes WHERE photo_id = $1", neighbours_photo
        )
        assert sorted(u for (u,) in neighbours) == staying.done
        # Follows: the neighbour keeps its row, the mover has its own now; the
        # far user's two rows became one on the shared database.
        pair = "SELECT 1 FROM follows WHERE follower_id = $1 AND followee_id = $2"
        assert len(await _rows(first, pair, mover, neighbour)) == 1
        assert len(await _rows(second, pair, mover, neighbour)) == 1
        assert await _rows(first, pair, far, mover) == []
        assert len(await _rows(second, pair, far, mover)) == 1
        # Tag counts follow the photos; the fence is gone.
        assert await _rows(second, "SELECT photo_count FROM tags WHERE tag = 'sea'") == [(1,)]
        assert await _rows(first, "SELECT photo_count FROM tags WHERE tag = 'sea'") == [(1,)]
        assert await _rows(first, "SELECT * FROM shard_fences") == []
        # The move is over: running it again changes nothing.
        again = await move(shards, MOVED, 1, grace=0.0)
        assert again.resumed_from == "done"


class Crash(Exception):
    """The move's process dying at that point (what it leaves is what a crash leaves)."""


@pytest.mark.parametrize("where", ["copying", "grace"])
async def test_an_interrupted_move_finishes_when_run_again(
    tmp_path: Path, shard_dsns: list[str], where: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    settings = sharded(tmp_path, shard_dsns)
    async with open_shards(settings) as shards:
        mover = await _user(shards, MOVED, "mover")
        photos = [await _photo(shards, mover) for _ in range(3)]

        def crash_in_copy(table: str, rows: int) -> None:
            if table == "photos":
                raise Crash

        real_sleep = asyncio.sleep

        async def crash_in_grace(delay: float) -> None:
            if delay == 0.25:
                raise Crash
            await real_sleep(delay)

        if where == "copying":
            with pytest.raises(Crash):
                await move(shards, MOVED, 1, grace=0.0, progress=crash_in_copy)
        else:
            monkeypatch.setattr(asyncio, "sleep", crash_in_grace)
            with pytest.raises(Crash):
                await move(shards, MOVED, 1, grace=0.25)
            monkeypatch.undo()
        finished = await move(shards, MOVED, 1, grace=0.0)
        assert finished.resumed_from == ("copying" if where == "copying" else "switched")
        first, second = shards.physical
        found = await _rows(second, "SELECT id FROM photos ORDER BY id")
        assert [p for (p,) in found] == sorted(photos)
        assert await _rows(first, "SELECT id FROM photos") == []
        assert await _rows(first, "SELECT * FROM shard_fences") == []
        async with shards.catalog.read(PRIMARY) as conn:
            assert await conn.fetchval("SELECT physical FROM shard_map WHERE logical = $1", MOVED)
            assert await conn.fetchval("SELECT count(*) FROM shard_moves") == 0


async def test_a_map_read_during_the_switch_is_never_half_old(
    tmp_path: Path, shard_dsns: list[str]
) -> None:
    """Another process reads the map while the move's switch commits. Read in
    two statements, it once got the old placement with the new version: every
    later reload then saw "no change", and after the clean-up its writes to the
    moved shard went to the source (the bench's likes_photo_id_fkey failure).
    The switch is held open here until the reader waits on it, then committed."""
    settings = sharded(tmp_path, shard_dsns)
    async with open_shards(settings) as shards, open_shards(settings) as other_process:
        catalog = shards.catalog
        async with catalog.transaction() as switch:
            # What `_switch` does, with the catalog row's table held so that a
            # reader's statement on it waits for this commit.
            await switch.execute("LOCK TABLE shard_catalog IN ACCESS EXCLUSIVE MODE")
            version = await save_move(switch, MOVED, 1)
            reader = asyncio.create_task(other_process.reload_map())
            async with catalog.write() as watch:
                async with asyncio.timeout(5):
                    while not await watch.fetchval(
                        "SELECT count(*) FROM pg_locks WHERE NOT granted "
                        "AND relation = 'shard_catalog'::regclass"
                    ):
                        await asyncio.sleep(0.005)
        assert await asyncio.wait_for(reader, 5)
        assert other_process.map.version == version
        assert other_process.map.physical_of(MOVED) == 1


async def test_the_copy_reads_every_table_in_one_snapshot(
    tmp_path: Path, shard_dsns: list[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """A photo uploaded after the photos were copied, and liked before the
    likes were: copied table by table in snapshots of their own, the like
    reached the target without its photo (likes_photo_id_fkey) and the move
    failed. In one snapshot both are left to the catch-up."""
    settings = sharded(tmp_path, shard_dsns)
    async with open_shards(settings) as shards:
        mover = await _user(shards, MOVED, "mover")
        await _photo(shards, mover)
        late: list[int] = []
        real_sync = shard_move.sync_table

        async def upload_and_like_before_the_likes(
            source: Connection, target: Connection, table: MovedTable, *args: Any, **kw: Any
        ) -> int:
            if table.name == "likes" and not late:  # the first copy only
                photo = await _photo(shards, mover)
                async with shards.of_id(photo).write() as conn:
                    await conn.execute(
                        "INSERT INTO likes (photo_id, user_id) VALUES ($1, $2)", photo, mover
                    )
                late.append(photo)
            return await real_sync(source, target, table, *args, **kw)

        monkeypatch.setattr(shard_move, "sync_table", upload_and_like_before_the_likes)
        await move(shards, MOVED, 1, grace=0.0)
        assert late
        second = shards.physical[1]
        assert await _rows(second, "SELECT user_id FROM likes WHERE photo_id = $1", late[0]) == [
            (mover,)
        ]
        assert len(await _rows(second, "SELECT 1 FROM photos WHERE owner_id = $1", mover)) == 2

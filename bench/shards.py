"""Shards at volume: the home feed and photo-by-ID on 1, 2 and 4 shards, and a
logical shard moved under write load.

For each shard count, fresh databases on the machine's PostgreSQL
(PICSHARE_BENCH_DATABASE_URL, default 127.0.0.1:5432) are seeded with
`run.py seed` (20k users, 200k photos, 1M likes; `--quick`: a tenth) and a
real `run.py serve` is started on them (PICSHARE_SHARDS). Latency is
measured over HTTP, one request at a time: the feed of the user who follows
1,000 accounts, and GET /api/v1/photos/{id} of photos not yet cached (so
each read is routed to its shard), after as many other photos have warmed
the server's connections to every shard. All shards share one server and its two
cores here: the figures show what routing and scatter-gather cost, not what
more machines would add.

Then, on the 2-shard site, the most populous logical shard of the first
database is moved to the second while a writer (another process's view:
its own map, read again when a write is refused) keeps liking its photos:
rows per second of the move, the pause the move holds (fence to switch) and
the longest gap the writer saw between two acknowledged writes.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import random
import tempfile
import time
import uuid
from collections.abc import AsyncIterator
from pathlib import Path

import aiohttp
import asyncpg

from bench._common import (
    DATABASE_SERVICE_URL,
    Options,
    Row,
    percentile,
    picshare_server,
    say,
    seed_site,
    with_db,
)
from bench.social import _http_latencies, _login
from picshare.config import load_settings
from picshare.database import open_shards
from storage.router import PRIMARY, ShardMoving
from storage.shard_move import move
from storage.shards import Shards


@contextlib.asynccontextmanager
async def _databases(count: int) -> AsyncIterator[list[str]]:
    names = [f"picshare_bench_shard_{uuid.uuid4().hex[:8]}" for _ in range(count)]
    admin = await asyncpg.connect(DATABASE_SERVICE_URL, timeout=5)
    try:
        for name in names:
            await admin.execute(f'CREATE DATABASE "{name}"')
        yield [with_db(DATABASE_SERVICE_URL, name) for name in names]
    finally:
        for name in names:
            await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        await admin.close()


async def _heaviest_and_photos(dsns: list[str], n: int) -> tuple[str, list[int]]:
    heavy: tuple[int, str] = (-1, "")
    photo_ids: list[int] = []
    for dsn in dsns:
        conn = await asyncpg.connect(dsn)
        try:
            row = await conn.fetchrow(
                "SELECT username, following_count FROM users ORDER BY following_count DESC LIMIT 1"
            )
            if row is not None and row["following_count"] > heavy[0]:
                heavy = (row["following_count"], row["username"])
            photo_ids += [
                r[0]
                for r in await conn.fetch(
                    "SELECT p.id FROM photos p JOIN users u ON u.id = p.owner_id "
                    "WHERE NOT u.private ORDER BY random() LIMIT $1",
                    n,
                )
            ]
        finally:
            await conn.close()
    random.Random(7).shuffle(photo_ids)
    return heavy[1], photo_ids[:n]


async def _latencies_of(
    session: aiohttp.ClientSession, base: str, paths: list[str], headers: dict[str, str]
) -> list[float]:
    out = []
    for path in paths:
        started = time.perf_counter()
        async with session.get(base + path, headers=headers) as resp:
            await resp.read()
            if resp.status != 200:
                raise RuntimeError(f"{path} answered {resp.status}")
        out.append(time.perf_counter() - started)
    return out


def _ms(values: list[float]) -> str:
    return f"{percentile(values, 50) * 1000:.2f} ms / {percentile(values, 99) * 1000:.2f} ms"


async def _move_under_load(tmp: Path, dsns: list[str]) -> list[Row]:
    settings = load_settings(
        overrides={
            "server": {"data_dir": str(tmp / "move-data")},
            "database": {"url": "", "shards": tuple(dsns), "shard_map_poll": 0.2},
        }
    )
    async with open_shards(settings) as shards, open_shards(settings) as writer_view:
        logical, photo = await _busiest_logical(shards)
        gaps: list[float] = []
        stop = asyncio.Event()
        writer = asyncio.create_task(_write_likes(writer_view, photo, stop, gaps))
        await asyncio.sleep(1.0)
        report = await move(shards, logical, 1, grace=0.6)
        await asyncio.sleep(0.5)
        stop.set()
        writes = await writer
    return [
        (
            f"move logical shard {logical} ({report.rows:,} rows)",
            f"{report.rows / max(report.seconds - 0.6, 1e-6):,.0f} rows/s, "
            f"{report.seconds:.2f} s with the 0.6 s grace",
        ),
        (
            "  write pause held by the move (fence to switch)",
            f"{report.pause_seconds * 1000:.0f} ms",
        ),
        (
            "  longest gap a writer saw (map read again every 0.2 s)",
            f"{max(gaps) * 1000:.0f} ms over {writes:,} writes",
        ),
    ]


async def _busiest_logical(shards: Shards) -> tuple[int, int]:
    """The logical shard of the first database with the most photos, and one of them."""
    async with shards.physical[0].read(PRIMARY) as conn:
        row = await conn.fetchrow(
            "SELECT ((id >> 10) & 8191)::int AS logical, max(id) AS photo FROM photos "
            "GROUP BY 1 ORDER BY count(*) DESC LIMIT 1"
        )
    assert row is not None
    return int(row["logical"]), int(row["photo"])


async def _write_likes(shards: Shards, photo: int, stop: asyncio.Event, gaps: list[float]) -> int:
    loop = asyncio.get_running_loop()
    last = loop.time()
    user = -1  # user ids the seed never makes: every like is new
    done = 0
    while not stop.is_set():
        try:
            async with shards.of_id(photo).write() as conn:
                await conn.execute(
                    "INSERT INTO likes (photo_id, user_id) VALUES ($1, $2)", photo, user
                )
        except ShardMoving:
            await shards.reload_map()
            await asyncio.sleep(0.01)
            continue
        now = loop.time()
        gaps.append(now - last)
        last = now
        user -= 1
        done += 1
        await asyncio.sleep(0.002)
    return done


async def run(opts: Options) -> list[Row]:
    scale = 10 if opts.quick else 1
    users, photos, likes = 20_000 // scale, 200_000 // scale, 1_000_000 // scale
    n = 50 if opts.quick else 300
    rows: list[Row] = []
    with tempfile.TemporaryDirectory(prefix="picshare-bench-shards-") as tmp_name:
        tmp = Path(tmp_name)
        for count in (1, 2, 4):
            async with _databases(count) as dsns:
                data = tmp / f"data-{count}"
                env = {**os.environ, "PICSHARE_SHARDS": ",".join(dsns), "PICSHARE_DATABASE_URL": ""}
                seconds = await seed_site(data, env, users=users, photos=photos, likes=likes)
                rows.append(
                    (
                        f"{count} shard(s): seed {photos:,} photos, {likes:,} likes",
                        f"{seconds:.1f} s",
                    )
                )
                heavy, sample = await _heaviest_and_photos(dsns, 2 * n)
                # Half warm the server's connections to every shard (their
                # prepared statements and PostgreSQL's per-backend caches,
                # which four shards have four times of): what is measured on
                # the other half is the routing, not a cold start per shard.
                warm_ids, photo_ids = sample[:n], sample[n:]
                server, base = picshare_server(
                    data,
                    env={
                        "PICSHARE_SHARDS": ",".join(dsns),
                        "PICSHARE_DATABASE_URL": "",
                        "PICSHARE_SERVER_ACCESS_LOG": "false",
                    },
                )
                async with server, aiohttp.ClientSession() as session:
                    headers = await _login(session, base, heavy)
                    feed = await _http_latencies(session, f"{base}/api/v1/feed", headers, n)
                    await _latencies_of(
                        session, base, [f"/api/v1/photos/{p}" for p in warm_ids], headers
                    )
                    by_id = await _latencies_of(
                        session, base, [f"/api/v1/photos/{p}" for p in photo_ids], headers
                    )
                rows.append((f"{count} shard(s): feed (1,000 followed) p50 / p99", _ms(feed)))
                rows.append((f"{count} shard(s): photo by ID, uncached, p50 / p99", _ms(by_id)))
                if count == 2:
                    say("  moving a logical shard under write load")
                    rows += await _move_under_load(tmp, dsns)
    return rows

"""Shards at volume: the home feed and photo-by-ID on 1, 2 and 4 shards, and a
logical shard moved under write load.

For each shard count, fresh databases on the machine's PostgreSQL
(PICSHARE_BENCH_DATABASE_URL, default 127.0.0.1:5432) are seeded with
`run.py seed` (20k users, 200k photos, 1M likes; `--quick`: a tenth; the seed
is fixed, so every site holds the same users, photos and likes, placed by
its shard count) and a real `run.py serve` is started on each: on the
1-shard site twice, so the difference between two servers of the same
configuration says what noise is. The feed is the one of the user who
follows 1,000 accounts. Photo-by-ID reads GET /api/v1/photos/{id} of public
photos never read before by that server (each goes to its shard) as that
user, over HTTP, one request at a time:

- warmed first, with four requests at a time, so that every shard's pool has
  opened the connections a request can meet (one busy with a job poll means
  another) and each has prepared the statements and filled PostgreSQL's
  per-backend caches: what is measured is the routing, not a cold start;
- then measured in rounds: each round gives every server a batch of ten
  reads, in an order shuffled per round, so drift and bursts of other work
  on this shared machine (a round lasts a fraction of a second) land on all
  of them alike; the client's own garbage collector is off while it measures;
- each answer's Server-Timing gives the database uses per request (the
  token's database first, then how many on the photo's shard) and the server's
  own time, which tells the server's tail from the client's.

`PICSHARE_BENCH_BASELINE=<another checkout>` adds servers run from that
checkout's code on the 1- and 4-shard sites, measured in the same rounds: a
before and after on the same data. All servers share this machine's two
cores: the figures show what routing costs, not what more machines add.

Then, on the 2-shard site, the most populous logical shard of the first
database is moved to the second while a writer (another process's view:
its own map, read again when a write is refused) keeps liking its photos:
rows per second of the move, the pause the move holds (fence to switch) and
the longest gap the writer saw between two acknowledged writes.
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import os
import random
import re
import tempfile
import time
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path

import aiohttp
import asyncpg

from bench._common import (
    DATABASE_SERVICE_URL,
    ROOT,
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


_DB_USE = re.compile(r'db;desc="([^"]+)"')
_TOTAL = re.compile(r"total;dur=([0-9.]+)")


@dataclass
class _Server:
    """One server measured for photo-by-ID: its own photos, never read by it before."""

    label: str
    base: str
    session: aiohttp.ClientSession
    headers: dict[str, str]
    photos: list[int]
    latencies: list[float] = field(default_factory=list)
    server_ms: list[float] = field(default_factory=list)
    db_uses: list[int] = field(default_factory=list)
    on_photo_shard: list[int] = field(default_factory=list)

    def next_paths(self, n: int) -> list[str]:
        taken, self.photos = self.photos[:n], self.photos[n:]
        if len(taken) < n:
            raise RuntimeError(f"{self.label}: out of unread photos")
        return [f"/api/v1/photos/{p}" for p in taken]

    async def read(self, path: str, *, keep: bool) -> None:
        started = time.perf_counter()
        async with self.session.get(self.base + path, headers=self.headers) as resp:
            await resp.read()
            if resp.status != 200:
                raise RuntimeError(f"{self.label}: {path} answered {resp.status}")
            timing = resp.headers.get("Server-Timing", "")
        elapsed = time.perf_counter() - started
        if not keep:
            return
        self.latencies.append(elapsed)
        uses = _DB_USE.findall(timing)
        self.db_uses.append(len(uses))
        # The token's database first, then the photo's: the last one named.
        self.on_photo_shard.append(uses[1:].count(uses[-1]) if len(uses) > 1 else 0)
        total = _TOTAL.search(timing)
        if total is not None:
            self.server_ms.append(float(total.group(1)))


async def _warm(server: _Server, n: int, concurrency: int = 4) -> None:
    paths = server.next_paths(n)

    async def worker(mine: list[str]) -> None:
        for path in mine:
            await server.read(path, keep=False)

    await asyncio.gather(*(worker(paths[i::concurrency]) for i in range(concurrency)))


async def _measure_rounds(servers: list[_Server], rounds: int, batch: int) -> None:
    order = random.Random(11)
    gc.collect()
    gc.disable()
    try:
        for _ in range(rounds):
            for server in order.sample(servers, len(servers)):
                for path in server.next_paths(batch):
                    await server.read(path, keep=True)
    finally:
        gc.enable()


def _ms(values: list[float], scale: float = 1000) -> str:
    return f"{percentile(values, 50) * scale:.2f} ms / {percentile(values, 99) * scale:.2f} ms"


def _photo_rows(server: _Server) -> list[Row]:
    n = len(server.latencies)
    return [
        (f"{server.label}: photo by ID, uncached, p50 / p99 ({n:,} reads)", _ms(server.latencies)),
        (
            f"  {server.label}: the server's own time (Server-Timing total)",
            _ms(server.server_ms, 1),
        ),
        (
            f"  {server.label}: p50 / p99 of the first and of the second half of the rounds",
            f"{_ms(server.latencies[: n // 2])}; {_ms(server.latencies[n // 2 :])}",
        ),
        (
            f"  {server.label}: database uses per request (on the photo's shard)",
            f"{sum(server.db_uses) / n:.2f} ({sum(server.on_photo_shard) / n:.2f})",
        ),
    ]


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
    warm, rounds, batch = (100, 30, 10) if opts.quick else (600, 300, 10)
    baseline = os.environ.get("PICSHARE_BENCH_BASELINE")
    # (label, shard count, checkout) of every server photo-by-ID is measured on.
    configs: list[tuple[str, int, Path]] = [
        ("1 shard", 1, ROOT),
        ("1 shard, second server", 1, ROOT),
        ("2 shards", 2, ROOT),
        ("4 shards", 4, ROOT),
    ]
    if baseline:
        configs += [
            ("baseline, 1 shard", 1, Path(baseline)),
            ("baseline, 4 shards", 4, Path(baseline)),
        ]
    per_server = warm + rounds * batch
    rows: list[Row] = []
    with tempfile.TemporaryDirectory(prefix="picshare-bench-shards-") as tmp_name:
        tmp = Path(tmp_name)
        async with contextlib.AsyncExitStack() as stack:
            sites: dict[int, list[str]] = {}
            samples: dict[int, tuple[str, list[int]]] = {}
            for count in (1, 2, 4):
                dsns = sites[count] = await stack.enter_async_context(_databases(count))
                env = {**os.environ, "PICSHARE_SHARDS": ",".join(dsns), "PICSHARE_DATABASE_URL": ""}
                seconds = await seed_site(
                    tmp / f"data-{count}", env, users=users, photos=photos, likes=likes
                )
                rows.append(
                    (
                        f"{count} shard(s): seed {photos:,} photos, {likes:,} likes",
                        f"{seconds:.1f} s",
                    )
                )
                on_site = sum(1 for c in configs if c[1] == count)
                samples[count] = await _heaviest_and_photos(dsns, on_site * per_server)

            serving = await stack.enter_async_context(contextlib.AsyncExitStack())
            servers: list[_Server] = []
            for index, (label, count, root) in enumerate(configs):
                process, base = picshare_server(
                    tmp / f"serve-{index}",
                    env={
                        "PICSHARE_SHARDS": ",".join(sites[count]),
                        "PICSHARE_DATABASE_URL": "",
                        "PICSHARE_SERVER_ACCESS_LOG": "false",
                    },
                    root=root,
                )
                await serving.enter_async_context(process)
                session = await serving.enter_async_context(aiohttp.ClientSession())
                heavy, pool = samples[count]
                samples[count] = (heavy, pool[per_server:])
                headers = await _login(session, base, heavy)
                servers.append(_Server(label, base, session, headers, pool[:per_server]))

            say("  feed, one server per shard count")
            for server, (label, count, root) in zip(servers, configs, strict=True):
                if root != ROOT or label.endswith("second server"):
                    continue
                feed = await _http_latencies(
                    server.session, f"{server.base}/api/v1/feed", server.headers, n
                )
                rows.append((f"{count} shard(s): feed (1,000 followed) p50 / p99", _ms(feed)))

            say(f"  photo by ID: {warm} warming reads, then {rounds} rounds of {batch} per server")
            for server in servers:
                await _warm(server, warm)
            await _measure_rounds(servers, rounds, batch)
            for server in servers:
                rows += _photo_rows(server)
            await serving.aclose()  # the move below has the 2-shard site to itself

            say("  moving a logical shard under write load")
            rows += await _move_under_load(tmp, sites[2])
    return rows

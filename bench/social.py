"""The social read paths at volume: feed, profile, tag page and search latency,
each beside the plain EXPLAIN ANALYZE time of the same SQL with the same values.

Seeds 20k users, 200k photos and 1M likes (`--quick`: a tenth) with
`run.py seed` into a fresh database: the machine's PostgreSQL when reachable
(PICSHARE_BENCH_DATABASE_URL, default 127.0.0.1:5432), else an embedded one.
Latency is measured over HTTP against a real `run.py serve` (access log off),
one request at a time; the ratio HTTP p50 / EXPLAIN p50 is the app's overhead.
"""

from __future__ import annotations

import contextlib
import json
import os
import statistics
import tempfile
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiohttp
import asyncpg

from bench._common import Options, Row, fresh_database, percentile, picshare_server, seed_site
from picshare.seed import SEED_PASSWORD
from storage import photos_repo, search_repo

BIG = 2**62


async def _http_latencies(
    session: aiohttp.ClientSession, url: str, headers: dict[str, str], n: int
) -> list[float]:
    for _ in range(5):  # warm the connection, the prepared statements and the cache
        async with session.get(url, headers=headers) as resp:
            await resp.read()
    out = []
    for _ in range(n):
        start = time.perf_counter()
        async with session.get(url, headers=headers) as resp:
            await resp.read()
            if resp.status != 200:
                raise RuntimeError(f"{url} answered {resp.status}")
        out.append(time.perf_counter() - start)
    return out


async def _explain_ms(
    conn: asyncpg.Connection, sql: str, args: tuple[Any, ...], n: int
) -> list[float]:
    out = []
    for _ in range(n):
        raw = await conn.fetchval(f"EXPLAIN (ANALYZE, FORMAT JSON) {sql}", *args)
        plan = (json.loads(raw) if isinstance(raw, str) else raw)[0]
        out.append(
            float(plan["Execution Time"]) / 1000 + float(plan.get("Planning Time", 0)) / 1000
        )
    return out


async def _login(session: aiohttp.ClientSession, base: str, username: str) -> dict[str, str]:
    body = {"username": username, "password": SEED_PASSWORD}
    async with session.post(f"{base}/api/v1/auth/login", json=body) as resp:
        token = (await resp.json())["token"]
    return {"Authorization": f"Bearer {token}"}


@contextlib.asynccontextmanager
async def seeded_site(
    name: str, *, users: int, photos: int, likes: int
) -> AsyncIterator[tuple[str, Path, dict[str, str], float]]:
    """A fresh database seeded by `run.py seed`: its DSN, the data folder,
    the environment of a `run.py` process on it, and the seconds seeding took."""
    with tempfile.TemporaryDirectory(prefix=f"picshare-bench-{name}-") as tmp_name:
        tmp = Path(tmp_name)
        async with fresh_database(tmp) as dsn:
            data = tmp / "data"
            env = {**os.environ, "PICSHARE_DATABASE_URL": dsn}
            seconds = await seed_site(data, env, users=users, photos=photos, likes=likes)
            yield dsn, data, env, seconds


async def run(opts: Options) -> list[Row]:
    scale = 10 if opts.quick else 1
    users, photos, likes = 20_000 // scale, 200_000 // scale, 1_000_000 // scale
    n = 50 if opts.quick else 300
    rows: list[Row] = []
    async with seeded_site("social", users=users, photos=photos, likes=likes) as site:
        dsn, data, _env, seconds = site
        rows.append(
            (
                f"seed {users:,} users, {photos:,} photos, {likes:,} likes (COPY)",
                f"{seconds:.1f} s",
            )
        )
        conn = await asyncpg.connect(dsn)
        try:
            heavy = await conn.fetchrow(
                "SELECT id, username, following_count FROM users "
                "ORDER BY following_count DESC LIMIT 1"
            )
            typical = await conn.fetchrow(
                "SELECT id, username, following_count FROM users "
                "WHERE following_count BETWEEN 20 AND 40 LIMIT 1"
            )
            owner = await conn.fetchrow(
                "SELECT id, username, photo_count FROM users WHERE NOT private "
                "ORDER BY photo_count DESC LIMIT 1"
            )
            assert heavy is not None
            assert typical is not None
            assert owner is not None
            rows.append(("feed user follows", f"{heavy['following_count']:,} accounts"))
            server, base = picshare_server(
                data, env={"PICSHARE_DATABASE_URL": dsn, "PICSHARE_SERVER_ACCESS_LOG": "false"}
            )
            async with server, aiohttp.ClientSession() as session:
                headers = await _login(session, base, heavy["username"])
                typical_headers = await _login(session, base, typical["username"])
                cases = [
                    (
                        "feed (1,000 followed)",
                        "/api/v1/feed",
                        photos_repo.HOME_FEED_DENSE_SQL,
                        (heavy["id"], BIG, 21),
                        headers,
                    ),
                    (
                        f"feed ({typical['following_count']} followed)",
                        "/api/v1/feed",
                        photos_repo.HOME_FEED_SQL,
                        (typical["id"], BIG, 21),
                        typical_headers,
                    ),
                    (
                        f"profile ({owner['photo_count']} photos)",
                        f"/api/v1/users/{owner['username']}/photos",
                        photos_repo.BY_OWNER_SQL,
                        (heavy["id"], owner["id"], BIG, 21, None),
                        headers,
                    ),
                    (
                        "tag page #travel",
                        "/api/v1/tags/travel/photos",
                        photos_repo.TAGGED_SQL,
                        (heavy["id"], "travel", BIG, 21),
                        headers,
                    ),
                    (
                        "search photos 'harbour'",
                        "/api/v1/search?q=harbour",
                        search_repo.RECENT_PHOTOS_SQL,
                        (heavy["id"], "harbour:*", 10, 50, 1_000),
                        headers,
                    ),
                ]
                for label, path, sql, args, auth in cases:
                    http = await _http_latencies(session, base + path, auth, n)
                    plain = await _explain_ms(conn, sql, args, min(n, 100))
                    p50, p99 = percentile(http, 50), percentile(http, 99)
                    e50 = statistics.median(plain)
                    rows.append(
                        (
                            f"{label}  HTTP p50 / p99",
                            f"{p50 * 1000:.2f} ms / {p99 * 1000:.2f} ms",
                        )
                    )
                    rows.append(
                        (
                            f"{label}  EXPLAIN ANALYZE p50",
                            f"{e50 * 1000:.2f} ms  (HTTP/SQL {p50 / e50:.1f}x)",
                        )
                    )
        finally:
            await conn.close()
    return rows

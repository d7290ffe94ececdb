"""Photo detail over HTTP with a cache hit versus a cache miss, per cache backend.

A miss is forced with a 1 ms photo TTL; everything else is the same server,
data and load. Redis is the machine's (PICSHARE_BENCH_REDIS_URL, default
127.0.0.1:6379/10); without one, only the in-process rows are printed.
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

import aiohttp
import redis.asyncio as redis_asyncio
from redis.exceptions import RedisError

from bench._common import Options, Row, photo_like, picshare_server, save_jpeg, say, signup
from bench.loadgen import choose_tool
from bench.requests import _load_all, _upload_photos

REDIS_URL = os.environ.get("PICSHARE_BENCH_REDIS_URL", "redis://127.0.0.1:6379/10")


async def _redis_usable() -> bool:
    client = redis_asyncio.Redis.from_url(REDIS_URL, socket_timeout=1, socket_connect_timeout=1)
    try:
        await client.flushdb()
    except (RedisError, OSError):
        return False
    finally:
        await client.aclose()
    return True


async def run(opts: Options) -> list[Row]:
    tool = choose_tool(opts.loadgen)
    duration = 1.0 if opts.quick else 5.0
    rows: list[Row] = []
    backends = {"in-process": ""}
    if await _redis_usable():
        backends["Redis"] = REDIS_URL
    else:
        say("  no Redis reachable: in-process cache only")
    with tempfile.TemporaryDirectory(prefix="picshare-bench-cache-") as tmp:
        data = Path(tmp) / "data"
        photo = save_jpeg(photo_like((800, 600), 1), Path(tmp) / "p.jpg")
        quiet = {"PICSHARE_SERVER_ACCESS_LOG": "false"}
        server, base = picshare_server(data, env=quiet)
        async with server, aiohttp.ClientSession() as session:
            token = await signup(session, base)
            (photo_id,) = await _upload_photos(session, base, token, [photo])
        for backend, url in backends.items():
            results = {}
            for case, ttl in (("hit", "60"), ("miss", "0.001")):
                env = {**quiet, "PICSHARE_REDIS_URL": url, "PICSHARE_CACHE_PHOTO_TTL": ttl}
                server, base = picshare_server(data, env=env)
                async with server:
                    target = {case: f"{base}/api/v1/photos/{photo_id}"}
                    results[case] = (await _load_all(server, target, tool, duration, str(data)))[
                        case
                    ]
            hit, miss = results["hit"].rps, results["miss"].rps
            rows.append((f"GET /api/v1/photos/{{id}}  {backend} cache hit", f"{hit:,.0f} req/s"))
            rows.append((f"GET /api/v1/photos/{{id}}  {backend} cache miss", f"{miss:,.0f} req/s"))
            rows.append((f"  {backend}: hit / miss", f"{hit / miss:.2f}"))
    rows.append(("load generator", f"{tool}, anonymous requests (no per-viewer query)"))
    return rows

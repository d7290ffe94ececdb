"""The gateway's added latency: a photo read through it against the same read
straight from the photos service, in the same run.

Real processes, as an operator starts them: `run.py serve --service photos`,
`--service auth` and `--service gateway --upstream ...` (the other services'
names point at the photos process: this bench asks none of their routes),
sharing one fresh database and Redis (PICSHARE_BENCH_REDIS_URL, else
127.0.0.1:6379/15, else a redis-server of our own). A user signs up and
uploads a photo through the gateway; then `GET /api/v1/photos/{id}` (public,
anonymous, cached after the first read) is sent one at a time on one
keep-alive connection, in alternating rounds: direct, via the gateway,
direct... so a burst of other work on the machine hits both alike. Each
request's latency is the client's wall time for the whole answer.

Reported: p50 and p99 of each, the difference (what the extra hop costs),
and the gateway process's CPU per proxied request (its own /proc times over
the gateway rounds).
"""

from __future__ import annotations

import asyncio
import contextlib
import io
import os
import secrets
import statistics
import tempfile
import time
from collections.abc import AsyncIterator
from pathlib import Path

import aiohttp
import psutil
from redis.asyncio import Redis
from redis.exceptions import RedisError

from bench._common import (
    PYTHON,
    ROOT,
    Options,
    Row,
    ServerProcess,
    free_port,
    fresh_database,
    percentile,
    say,
    wait_quiet,
)
from bench.ratelimit import _own_redis_server
from tests.imaging import jpeg_bytes

REDIS_URL = os.environ.get("PICSHARE_BENCH_REDIS_URL", "redis://127.0.0.1:6379/15")


def _server(data: Path, env: dict[str, str], name: str, *args: str) -> tuple[ServerProcess, str]:
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    command = [PYTHON, str(ROOT / "run.py"), "serve", "--host", "127.0.0.1"]
    command += ["--port", str(port), "--data-dir", str(data), "--service", name, *args]
    server = ServerProcess(
        command,
        health_url=f"{base}/healthz",
        log_path=data.parent / f"{name}-server.log",
        env={**os.environ, **env},
    )
    return server, base


@contextlib.asynccontextmanager
async def _redis_url() -> AsyncIterator[str]:
    client = Redis.from_url(REDIS_URL, socket_timeout=2, socket_connect_timeout=1)
    try:
        await client.ping()
        await client.flushdb()
    except (RedisError, OSError):
        async with _own_redis_server() as url:
            yield url
        return
    finally:
        await client.aclose()
    say(f"  Redis: {REDIS_URL}")
    yield REDIS_URL


async def _photo(session: aiohttp.ClientSession, base: str) -> str:
    body = {"username": "bench_gw", "email": "gw@example.com", "password": "correct horse"}
    async with session.post(f"{base}/api/v1/auth/signup", json=body) as resp:
        token = (await resp.json())["token"]
    headers = {"Authorization": f"Bearer {token}"}
    form = aiohttp.FormData()
    form.add_field("caption", "bench")
    form.add_field("file", io.BytesIO(jpeg_bytes(320, 240)), filename="a.jpg")
    async with session.post(f"{base}/api/v1/upload", data=form, headers=headers) as resp:
        if resp.status != 201:
            raise RuntimeError(f"upload answered {resp.status}: {await resp.text()}")
        photo_id = str((await resp.json())["id"])
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        async with session.get(f"{base}/api/v1/photos/{photo_id}") as resp:
            if resp.status == 200 and (await resp.json())["status"] == "ready":
                return photo_id
        await asyncio.sleep(0.1)
    raise RuntimeError("the photo never became ready")


async def _round(session: aiohttp.ClientSession, url: str, n: int) -> list[float]:
    times = []
    for _ in range(n):
        started = time.perf_counter()
        async with session.get(url) as resp:
            await resp.read()
            if resp.status != 200:
                raise RuntimeError(f"{url} answered {resp.status}")
        times.append(time.perf_counter() - started)
    return times


def _ms(seconds: float) -> str:
    return f"{seconds * 1000:.2f} ms"


async def run(opts: Options) -> list[Row]:
    rounds, per_round = (4, 100) if opts.quick else (10, 300)
    with tempfile.TemporaryDirectory(prefix="picshare-bench-gateway-") as tmp_name:
        tmp = Path(tmp_name)
        async with fresh_database(tmp) as dsn, _redis_url() as redis_url:
            data = tmp / "data"
            env = {
                "PICSHARE_DATABASE_URL": dsn,
                "PICSHARE_REDIS_URL": redis_url,
                "PICSHARE_SERVER_ACCESS_LOG": "false",
                "PICSHARE_SERVER_INTERNAL_SECRET": secrets.token_hex(16),
                "PICSHARE_MEDIA_WORKERS": "1",
            }
            photos, photos_base = _server(data, env, "photos")
            auth, auth_base = _server(data, env, "auth")
            upstreams = ["--upstream", f"auth={auth_base}"]
            for name in ("photos", "notifications", "search", "web"):
                upstreams += ["--upstream", f"{name}={photos_base}"]
            gateway, gateway_base = _server(data, env, "gateway", *upstreams)
            # Entered in turn: photos is up (it created the schema) before auth starts.
            async with photos, auth, gateway:
                return await _measure(
                    photos_base, gateway_base, (photos.pid, gateway.pid), rounds, per_round
                )


def _cpu(process: psutil.Process) -> float:
    times = process.cpu_times()
    return float(times.user + times.system)


async def _measure(
    direct: str, via: str, pids: tuple[int, int], rounds: int, per_round: int
) -> list[Row]:
    connector = aiohttp.TCPConnector(limit=1)
    async with aiohttp.ClientSession(connector=connector) as session:
        photo_id = await _photo(session, via)
    path = f"/api/v1/photos/{photo_id}"
    photos, gateway = (psutil.Process(pid) for pid in pids)
    straight: list[float] = []
    proxied: list[float] = []
    added_p50: list[float] = []  # per round: the machine's load varies between rounds
    cpu = {"gateway": 0.0, "photos direct": 0.0, "photos via": 0.0}
    await wait_quiet()
    # One connection to each: keep-alive both ways, as a browser or an app holds it.
    async with (
        aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=1)) as to_photos,
        aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=1)) as to_gateway,
    ):
        await _round(to_photos, f"{direct}{path}", 20)  # warm: connections, cache, statements
        await _round(to_gateway, f"{via}{path}", 20)
        for _ in range(rounds):
            before = _cpu(photos)
            one = await _round(to_photos, f"{direct}{path}", per_round)
            cpu["photos direct"] += _cpu(photos) - before
            before, before_gateway = _cpu(photos), _cpu(gateway)
            other = await _round(to_gateway, f"{via}{path}", per_round)
            cpu["photos via"] += _cpu(photos) - before
            cpu["gateway"] += _cpu(gateway) - before_gateway
            straight += one
            proxied += other
            added_p50.append(percentile(other, 50) - percentile(one, 50))
    d50, d99 = percentile(straight, 50), percentile(straight, 99)
    g50, g99 = percentile(proxied, 50), percentile(proxied, 99)
    n = len(proxied)
    say(f"  direct p50 {_ms(d50)} p99 {_ms(d99)}; via gateway p50 {_ms(g50)} p99 {_ms(g99)}")
    return [
        ("photo read, direct to photos: p50 / p99", f"{_ms(d50)} / {_ms(d99)}"),
        ("photo read, via the gateway: p50 / p99", f"{_ms(g50)} / {_ms(g99)}"),
        ("added by the gateway: p50 / p99", f"{_ms(g50 - d50)} / {_ms(g99 - d99)}"),
        ("added p50, median of the rounds' own", _ms(statistics.median(added_p50))),
        ("gateway CPU per proxied request", _ms(cpu["gateway"] / n)),
        (
            "photos CPU per request: direct / behind the gateway",
            f"{_ms(cpu['photos direct'] / n)} / {_ms(cpu['photos via'] / n)}",
        ),
        ("requests", f"{len(straight)} direct, {n} via, sequential, alternating rounds"),
    ]

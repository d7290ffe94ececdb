"""Request throughput: PicShare's photo endpoints against a bare aiohttp handler.

Measured the way a user runs it: PicShare is the real `run.py serve`
process on its default settings (access log on; only the rate limits are
raised, since one client address would otherwise be limited), loaded by
wrk in another process (bench/loadgen.py) with a fixed number of
keep-alive connections for a fixed time. The reference is a bare aiohttp
handler on uvloop in its own process (bench/bare_server.py) answering the
same paths with the very bytes PicShare answered. PicShare and the bare
server are loaded in turns, several rounds, and the ratio of each round is
kept, so that a burst of other work on the machine spoils one round, not
one side. ~30 ready photos are uploaded first; `GET /api/v1/photos/{id}`
is then a cache hit, `GET /api/v1/photos` the signed-out front page.
"""

from __future__ import annotations

import asyncio
import statistics
import tempfile
import time
from pathlib import Path

import aiohttp

from bench._common import (
    PYTHON,
    Options,
    Row,
    ServerProcess,
    free_port,
    photo_like,
    picshare_server,
    save_jpeg,
    say,
    signup,
)
from bench.loadgen import NOISE_LIMIT, LoadResult, choose_tool, measure

CONNECTIONS = 32
PHOTOS = 30
QUICK_PHOTOS = 6
ENDPOINTS = ("photo", "list")


async def _upload_photos(
    session: aiohttp.ClientSession, base: str, token: str, files: list[Path]
) -> list[str]:
    auth = {"Authorization": f"Bearer {token}"}
    # A few at a time: each upload is probed in a media worker (2 cores).
    gate = asyncio.Semaphore(4)

    async def one(path: Path) -> str:
        form = aiohttp.FormData()
        form.add_field("caption", f"bench photo {path.stem}")
        form.add_field("tags", "bench")
        data = await asyncio.to_thread(path.read_bytes)
        form.add_field("file", data, filename=path.name, content_type="image/jpeg")
        async with gate, session.post(f"{base}/api/v1/upload", data=form, headers=auth) as resp:
            if resp.status != 201:
                raise RuntimeError(f"upload answered {resp.status}: {await resp.text()}")
            return str((await resp.json())["id"])

    ids = await asyncio.gather(*(one(p) for p in files))
    deadline = time.monotonic() + 180
    pending = set(ids)
    while pending:
        for photo_id in sorted(pending):
            async with session.get(f"{base}/api/v1/photos/{photo_id}", headers=auth) as resp:
                status = (await resp.json()).get("status")
            if status == "ready":
                pending.discard(photo_id)
            elif status != "processing":
                raise RuntimeError(f"photo {photo_id} ended {status!r}, not ready")
        if pending and time.monotonic() > deadline:
            raise RuntimeError(f"{len(pending)} photos still processing after 180 s")
        await asyncio.sleep(0.2)
    return ids


async def _check(session: aiohttp.ClientSession, url: str) -> None:
    """A failing endpoint answers fast; never let an error page pass for throughput."""
    async with session.get(url) as resp:
        if resp.status != 200:
            raise RuntimeError(f"GET {url} answered {resp.status}: {(await resp.text())[:300]}")


async def _load_all(
    server: ServerProcess, urls: dict[str, str], tool: str, duration: float, related: str | None
) -> dict[str, LoadResult]:
    async with aiohttp.ClientSession() as session:
        for url in urls.values():
            await _check(session, url)
    return {name: await _load(server, url, tool, duration, related) for name, url in urls.items()}


async def run(opts: Options) -> list[Row]:
    tool = choose_tool(opts.loadgen)
    duration = 1.0 if opts.quick else 4.0
    rounds = 1 if opts.quick else 3
    count = QUICK_PHOTOS if opts.quick else PHOTOS
    say(f"  load: {tool}, {CONNECTIONS} connections, {duration:.0f} s per run, {rounds} rounds")
    with tempfile.TemporaryDirectory(prefix="picshare-bench-") as tmp:
        files = [
            save_jpeg(photo_like((1024, 768), i), Path(tmp) / f"p{i}.jpg") for i in range(count)
        ]
        data = Path(tmp) / "data"
        limits = {f"PICSHARE_RATELIMIT_{n}": "1000000/1s" for n in ("READS", "WRITES", "UPLOADS")}
        server, base = picshare_server(data, env=limits)
        async with server:
            async with aiohttp.ClientSession() as session:
                token = await signup(session, base)
                ids = await _upload_photos(session, base, token, files)
                say(f"  {len(ids)} photos ready")
                urls = {"photo": f"{base}/api/v1/photos/{ids[0]}", "list": f"{base}/api/v1/photos"}
                bodies = {name: await _body(session, url) for name, url in urls.items()}
            for name, body in bodies.items():
                (Path(tmp) / f"{name}.json").write_bytes(body)
            port = free_port()
            folder = Path(tmp)
            command = [PYTHON, "-m", "bench.bare_server", "--port", str(port)]
            command += ["--photo", str(folder / "photo.json"), "--list", str(folder / "list.json")]
            bare = ServerProcess(
                command,
                health_url=f"http://127.0.0.1:{port}/healthz",
                log_path=Path(tmp) / "bare.log",
            )
            bare_base = f"http://127.0.0.1:{port}/api/v1/photos"
            bare_urls = {"photo": f"{bare_base}/{ids[0]}", "list": bare_base}
            async with bare:
                measured: dict[str, list[tuple[LoadResult, LoadResult]]] = {
                    e: [] for e in ENDPOINTS
                }
                for _ in range(rounds):
                    for endpoint in ENDPOINTS:
                        ours = await _load(server, urls[endpoint], tool, duration, str(data))
                        theirs = await _load(bare, bare_urls[endpoint], tool, duration, None)
                        measured[endpoint].append((ours, theirs))
    return _rows(measured, tool, {k: len(v) for k, v in bodies.items()})


async def _body(session: aiohttp.ClientSession, url: str) -> bytes:
    """What PicShare answers (and checks it is a 200: an error page is fast)."""
    async with session.get(url) as resp:
        body = await resp.read()
        if resp.status != 200:
            raise RuntimeError(f"GET {url} answered {resp.status}: {body[:300]!r}")
        return body


async def _load(
    server: ServerProcess, url: str, tool: str, duration: float, related: str | None
) -> LoadResult:
    r = await measure(
        url,
        tool=tool,
        connections=CONNECTIONS,
        duration=duration,
        server_pid=server.pid,
        related=related,
    )
    errors = f", {r.errors} ERRORS" if r.errors else ""
    say(
        f"  {url}: {r.rps:,.0f} req/s ({r.requests} in {r.seconds:.1f} s{errors};"
        f" cores used: server {r.server_cores:.2f}, {r.others})"
    )
    return r


def _rows(
    measured: dict[str, list[tuple[LoadResult, LoadResult]]], tool: str, sizes: dict[str, int]
) -> list[Row]:
    paths = {"photo": "GET /api/v1/photos/{id}", "list": "GET /api/v1/photos (20 photos)"}
    aims = {"photo": 0.5, "list": 0.33}
    rows: list[Row] = [("load generator", f"{tool}, {CONNECTIONS} connections")]
    for endpoint, runs in measured.items():
        ratios = sorted(ours.rps / theirs.rps for ours, theirs in runs if theirs.rps)
        ours = statistics.median(r.rps for r, _ in runs)
        theirs = statistics.median(t.rps for _, t in runs)
        errors = sum(r.errors + t.errors for r, t in runs)
        noisy = max(max(r.foreign_cores, t.foreign_cores) for r, t in runs) > NOISE_LIMIT
        ratio = statistics.median(ratios)
        # CPU per request is steadier than req/s on a busy machine: shown beside it.
        cpu_ours = statistics.median(_cpu_us(r) for r, _ in runs)
        cpu_theirs = statistics.median(_cpu_us(t) for _, t in runs)
        note = f"aim >= {aims[endpoint]}: {'met' if ratio >= aims[endpoint] else 'MISSED'}"
        rows.append(
            (
                f"{paths[endpoint]}  PicShare / bare ({sizes[endpoint]} B body)",
                f"{ours:,.0f} / {theirs:,.0f} req/s = {ratio:.2f} "
                f"(rounds {', '.join(f'{x:.2f}' for x in ratios)}; {note})"
                + f"; server CPU per request {cpu_ours:.0f} / {cpu_theirs:.0f} us"
                + (f", {errors} ERRORS" if errors else "")
                + (", OTHER LOAD on the machine" if noisy else ""),
            )
        )
    return rows


def _cpu_us(r: LoadResult) -> float:
    return r.server_cores * r.seconds / r.requests * 1e6 if r.requests else 0.0

"""Request throughput: PicShare's photo endpoints against a bare aiohttp handler.

PicShare gets ~30 ready photos first, then GET /api/v1/photos/{id} and GET
/api/v1/photos are loaded with a fixed number of connections for a fixed
time; the bare server (bench/bare_server.py) answers the same paths with a
constant JSON. run.py always logs every request, so PicShare is measured
twice: as shipped, and with the access log off (server.access_log = false)
(the bare server has none), which is the like-for-like ratio.
"""

from __future__ import annotations

import asyncio
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
    results = {}
    for name, url in urls.items():
        r = results[name] = await measure(
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
    return results


async def run(opts: Options) -> list[Row]:
    tool = choose_tool(opts.loadgen)
    duration = 1.0 if opts.quick else 5.0
    count = QUICK_PHOTOS if opts.quick else PHOTOS
    say(f"  load: {tool}, {CONNECTIONS} connections, {duration:.0f} s per endpoint")
    with tempfile.TemporaryDirectory(prefix="picshare-bench-") as tmp:
        port = free_port()
        bare = ServerProcess(
            [PYTHON, "-m", "bench.bare_server", "--port", str(port)],
            health_url=f"http://127.0.0.1:{port}/healthz",
            log_path=Path(tmp) / "bare.log",
        )
        base = f"http://127.0.0.1:{port}/api/v1/photos"
        async with bare:
            urls = {"photo": f"{base}/1", "list": base}
            measured = {"bare": await _load_all(bare, urls, tool, duration, None)}

        files = [
            save_jpeg(photo_like((1024, 768), i), Path(tmp) / f"p{i}.jpg") for i in range(count)
        ]
        data = Path(tmp) / "data"
        server, base = picshare_server(data)
        async with server:
            async with aiohttp.ClientSession() as session:
                token = await signup(session, base)
                ids = await _upload_photos(session, base, token, files)
            say(f"  {len(ids)} photos ready")
            urls = {"photo": f"{base}/api/v1/photos/{ids[0]}", "list": f"{base}/api/v1/photos"}
            measured["picshare"] = await _load_all(server, urls, tool, duration, str(data))
        # Same data dir, so the photos are still there; only the access log differs.
        quiet, base = picshare_server(data, env={"PICSHARE_SERVER_ACCESS_LOG": "false"})
        async with quiet:
            urls = {"photo": f"{base}/api/v1/photos/{ids[0]}", "list": f"{base}/api/v1/photos"}
            measured["quiet"] = await _load_all(quiet, urls, tool, duration, str(data))
    return _rows(measured, tool)


def _rows(measured: dict[str, dict[str, LoadResult]], tool: str) -> list[Row]:
    paths = {"photo": "GET /api/v1/photos/{id}", "list": "GET /api/v1/photos"}
    labels = {"bare": "bare aiohttp", "picshare": "PicShare", "quiet": "PicShare, no access log"}
    rows: list[Row] = [("load generator", f"{tool}, {CONNECTIONS} connections")]
    for endpoint in ENDPOINTS:
        bare_rps = measured["bare"][endpoint].rps
        for server in ("bare", "picshare", "quiet"):
            r = measured[server][endpoint]
            errors = f" ({r.errors} ERRORS)" if r.errors else ""
            # Other work on the machine takes CPU from the server: flag it.
            noisy = f", OTHER LOAD {r.foreign_cores:.2f}" if r.foreign_cores > NOISE_LIMIT else ""
            value = f"{r.rps:,.0f} req/s{errors} (server {r.server_cores:.2f} cores{noisy})"
            rows.append((f"{paths[endpoint]}  {labels[server]}", value))
        for server in ("picshare", "quiet"):
            ratio = measured[server][endpoint].rps / bare_rps if bare_rps else 0.0
            rows.append((f"{paths[endpoint]}  {labels[server]} / bare", f"{ratio:.2f}"))
    return rows

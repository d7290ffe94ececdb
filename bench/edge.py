"""nginx in front: photo detail through nginx to `serve --workers 1` versus 2,
and a thumbnail from nginx's edge cache versus from PicShare itself.

Requests per second, p50 and p99 from wrk (`--latency`), 32 keep-alive
connections. Plain HTTP, so TLS costs stay out of the comparison. The
embedded database and the machine's Redis (PICSHARE_BENCH_REDIS_URL,
default 127.0.0.1:6379/10: several workers need it).
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import tempfile
from dataclasses import dataclass
from pathlib import Path

import aiohttp
import redis

from bench._common import (
    PYTHON,
    ROOT,
    Options,
    Row,
    ServerProcess,
    free_port,
    photo_like,
    save_jpeg,
    say,
    signup,
    wait_quiet,
)
from bench.requests import _upload_photos
from picshare.nginx_config import NginxOptions, render_nginx_config
from tests.nginx_harness import Nginx

REDIS_URL = os.environ.get("PICSHARE_BENCH_REDIS_URL", "redis://127.0.0.1:6379/10")
CONNECTIONS = 32
_UNITS = {"us": 1e-6, "ms": 1e-3, "s": 1.0}


@dataclass(frozen=True, slots=True)
class Latency:
    rps: float
    p50: float  # seconds
    p99: float
    errors: int

    def row(self) -> str:
        return (
            f"{self.rps:,.0f} req/s, p50 {self.p50 * 1000:.2f} ms, p99 {self.p99 * 1000:.2f} ms"
            + (f" ({self.errors} errors)" if self.errors else "")
        )


def wrk_latency(url: str, duration: float) -> Latency:
    """wrk with its latency distribution (one thread: the servers need the cores)."""
    seconds = max(1, round(duration))
    out = subprocess.run(
        ["wrk", "-t1", f"-c{CONNECTIONS}", f"-d{seconds}s", "--timeout", "5s", "--latency", url],
        capture_output=True,
        text=True,
        check=True,
        timeout=seconds + 30,
    ).stdout
    rps = re.search(r"Requests/sec:\s+([\d.]+)", out)
    p50 = re.search(r"\s50%\s+([\d.]+)(us|ms|s)", out)
    p99 = re.search(r"\s99%\s+([\d.]+)(us|ms|s)", out)
    if not (rps and p50 and p99):
        raise RuntimeError(f"cannot read wrk's output:\n{out}")
    errors = sum(
        int(n)
        for n in re.findall(r"Non-2xx or 3xx responses: (\d+)", out)
        + re.findall(r"(?:connect|read|write|timeout) (\d+)", out)
    )
    return Latency(
        float(rps[1]),
        float(p50[1]) * _UNITS[p50[2]],
        float(p99[1]) * _UNITS[p99[2]],
        errors,
    )


def _serve(data: Path, port: int, workers: int, env: dict[str, str]) -> ServerProcess:
    command = [PYTHON, str(ROOT / "run.py"), "serve", "--port", str(port)]
    command += ["--data-dir", str(data), "--workers", str(workers)]
    return ServerProcess(
        command,
        health_url=f"http://127.0.0.1:{port}/healthz",
        log_path=data.parent / f"serve-{workers}.log",
        env=env,
    )


def _nginx(folder: Path, backend: int, listen: int) -> Nginx:
    nginx = Nginx(folder, (listen,))
    options = NginxOptions(
        upstreams=(f"127.0.0.1:{backend}",), listen=listen, edge_cache=str(folder / "cache")
    )
    nginx.start(render_nginx_config(options))
    return nginx


async def run(opts: Options) -> list[Row]:
    if not shutil.which("nginx") or not shutil.which("wrk"):
        raise RuntimeError("needs nginx and wrk (deploy/system-packages.sh installs both)")
    try:
        redis.Redis.from_url(REDIS_URL, socket_timeout=1).flushdb()
    except (redis.RedisError, OSError) as exc:
        raise RuntimeError(f"--workers 2 needs Redis; none at {REDIS_URL}") from exc
    duration = 1.0 if opts.quick else 5.0
    rows: list[Row] = []
    with tempfile.TemporaryDirectory(prefix="picshare-bench-edge-") as tmp:
        data = Path(tmp) / "data"
        env = {
            **os.environ,
            "PICSHARE_REDIS_URL": REDIS_URL,
            "PICSHARE_SERVER_ACCESS_LOG": "false",
            "PICSHARE_DATABASE_URL": "",
        }
        port, listen = free_port(), free_port()
        photo = save_jpeg(photo_like((1024, 768), 7), Path(tmp) / "p.jpg")
        async with _serve(data, port, 1, env), aiohttp.ClientSession() as session:
            base = f"http://127.0.0.1:{port}"
            token = await signup(session, base)
            (photo_id,) = await _upload_photos(session, base, token, [photo])
            async with session.get(f"{base}/api/v1/photos/{photo_id}") as resp:
                thumb = str((await resp.json())["urls"]["thumb"])
        detail = f"/api/v1/photos/{photo_id}"
        for workers in (1, 2):
            async with _serve(data, port, workers, env):
                nginx = _nginx(Path(tmp) / f"nginx-{workers}", port, listen)
                try:
                    await wait_quiet()
                    result = wrk_latency(f"http://127.0.0.1:{listen}{detail}", duration)
                    rows.append((f"photo detail via nginx, {workers} worker(s)", result.row()))
                    if workers == 1:
                        await wait_quiet()
                        direct = wrk_latency(f"http://127.0.0.1:{port}{thumb}", duration)
                        wrk_latency(f"http://127.0.0.1:{listen}{thumb}", 1)  # fills the cache
                        await wait_quiet()
                        edge = wrk_latency(f"http://127.0.0.1:{listen}{thumb}", duration)
                        rows.append(("thumbnail from PicShare (direct)", direct.row()))
                        rows.append(("thumbnail from nginx's edge cache", edge.row()))
                finally:
                    nginx.stop()
                say(f"  {workers} worker(s) done")
    rows.append(("load generator", f"wrk, {CONNECTIONS} connections, {duration:.0f} s per run"))
    return rows

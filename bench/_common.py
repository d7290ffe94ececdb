"""Shared by the benchmarks: options, timing, free ports, photo-like images, server processes."""

from __future__ import annotations

import asyncio
import contextlib
import os
import random
import signal
import socket
import statistics
import subprocess
import sys
import time
import uuid
from collections.abc import AsyncIterator, Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType

import aiohttp
import asyncpg
from PIL import Image, ImageDraw

from storage.embedded import EmbeddedPostgres

ROOT = Path(__file__).resolve().parent.parent
# The project's own interpreter, so a server subprocess gets Pillow-SIMD even when
# the bench was started with another Python.
PYTHON = str(ROOT / ".venv" / "bin" / "python") if (ROOT / ".venv").is_dir() else sys.executable

Row = tuple[str, str]
# The photos the image benchmarks use: 12 MP and 24 MP, a phone's and a
# camera's; smaller with --quick.
PHOTO_SIZES = ((4000, 3000), (6000, 4000))
QUICK_PHOTO_SIZES = ((2000, 1500), (3000, 2000))


@dataclass(frozen=True, slots=True)
class Options:
    quick: bool = False
    loadgen: str = "auto"  # see bench.loadgen.TOOLS; 'auto' is wrk when installed, else python


def say(text: str) -> None:
    """Progress lines; flushed because the bench is often piped to a file."""
    print(text, flush=True)


def median_seconds(fns: Sequence[Callable[[], object]], runs: int) -> list[float]:
    """Median wall time of ``runs`` calls of each function, in the order given.

    The calls are interleaved (a, b, c, a, b, c...) so that a burst of other
    work on the machine slows all of them alike instead of one whole series;
    one untimed round first keeps one-off costs (plugin registration, the file
    entering the page cache) out of the figures.
    """
    for fn in fns:
        fn()
    times: list[list[float]] = [[] for _ in fns]
    for _ in range(runs):
        for fn, series in zip(fns, times, strict=True):
            start = time.perf_counter()
            fn()
            series.append(time.perf_counter() - start)
    return [statistics.median(series) for series in times]


def machine_busy() -> float:
    """CPU seconds all cores together spent not idle since boot (Linux /proc/stat)."""
    fields = [int(v) for v in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
    idle = fields[3] + fields[4]  # idle + iowait
    return (sum(fields[:8]) - idle) / os.sysconf("SC_CLK_TCK")


async def wait_quiet(limit: float = 0.3, max_wait: float = 30.0) -> None:
    """Wait (at most ``max_wait`` s) until the machine uses under ``limit`` cores.

    Developer machines run test suites now and then; starting a measurement
    in the middle of one halves the figures. After ``max_wait`` we go on and
    say so: the 'other' CPU shown with each load figure tells how much it hurt.
    """
    deadline = time.monotonic() + max_wait
    while True:
        before, start = machine_busy(), time.perf_counter()
        await asyncio.sleep(0.5)
        busy = (machine_busy() - before) / (time.perf_counter() - start)
        if busy < limit:
            return
        if time.monotonic() > deadline:
            say(f"  note: the machine stayed busy ({busy:.2f} cores) for {max_wait:.0f} s")
            return


def free_port() -> int:
    # The kernel picks an unused port; closing before the server binds it
    # leaves a tiny race, acceptable for a benchmark on a quiet machine.
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def photo_like(size: tuple[int, int], seed: int) -> Image.Image:
    """An RGB image with gradients, shapes and sensor-like noise.

    Plain noise would be unrealistically hard to compress and plain gradients
    trivially easy; the mix gives JPEG file sizes close to a camera's.
    """
    rng = random.Random(seed)
    width, height = size
    ramp = Image.linear_gradient("L")
    base = Image.merge(
        "RGB",
        (
            ramp.rotate(90).resize(size),
            ramp.resize(size),
            Image.radial_gradient("L").resize(size),
        ),
    )
    draw = ImageDraw.Draw(base)
    for _ in range(120):
        x, y = rng.randrange(width), rng.randrange(height)
        r = rng.randrange(max(2, width // 40), max(3, width // 6))
        colour = (rng.randrange(256), rng.randrange(256), rng.randrange(256))
        draw.ellipse((x - r, y - r, x + r, y + r), fill=colour)
    noise = Image.merge("RGB", [Image.effect_noise(size, 48) for _ in range(3)])
    return Image.blend(base, noise, 0.22)


def save_jpeg(image: Image.Image, path: Path, quality: int = 90) -> Path:
    image.save(path, format="JPEG", quality=quality)
    return path


class ServerProcess:
    """A server subprocess: started in its own session, ready once ``health_url`` answers 200.

    Output goes to a log file, never a pipe: an access log line per request
    would fill a pipe nobody reads and stall the server.
    """

    def __init__(
        self,
        argv: Sequence[str],
        *,
        health_url: str,
        log_path: Path,
        env: Mapping[str, str] | None = None,
        start_timeout: float = 120.0,
    ) -> None:
        self.argv = list(argv)
        self.health_url = health_url
        self.log_path = log_path
        self.env = dict(env if env is not None else os.environ)
        self.start_timeout = start_timeout
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def pid(self) -> int:
        assert self.proc is not None
        return self.proc.pid

    async def __aenter__(self) -> ServerProcess:
        await asyncio.to_thread(self._spawn)
        try:
            await self._wait_healthy()
        except BaseException:
            await asyncio.to_thread(self.stop)
            raise
        return self

    def _spawn(self) -> None:
        with self.log_path.open("ab") as log:
            self.proc = subprocess.Popen(
                self.argv,
                cwd=ROOT,
                env=self.env,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                # Its own session: a Ctrl-C on the bench does not reach it (we
                # stop it ourselves), and its process group holds its children.
                start_new_session=True,
            )

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await asyncio.to_thread(self.stop)

    async def _wait_healthy(self) -> None:
        assert self.proc is not None
        deadline = time.monotonic() + self.start_timeout
        timeout = aiohttp.ClientTimeout(total=2)
        async with aiohttp.ClientSession(timeout=timeout) as session:
            while time.monotonic() < deadline:
                if self.proc.poll() is not None:
                    raise RuntimeError(
                        f"server exited with {self.proc.returncode} before answering;"
                        f" its log:\n{self.log_tail()}"
                    )
                with contextlib.suppress(aiohttp.ClientError, TimeoutError):
                    async with session.get(self.health_url) as resp:
                        if resp.status == 200:
                            return
                await asyncio.sleep(0.2)
        raise RuntimeError(
            f"server did not answer {self.health_url} within {self.start_timeout:.0f}s;"
            f" its log:\n{self.log_tail()}"
        )

    def stop(self) -> None:
        """SIGINT (graceful: PicShare stops its database and workers), SIGKILL after 20 s."""
        proc = self.proc
        if proc is None or proc.poll() is not None:
            return
        proc.send_signal(signal.SIGINT)
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            # Hung: kill its process group (it leads it), so the embedded
            # PostgreSQL and the media workers it started go too.
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
            say(f"  warning: server {proc.pid} ignored SIGINT for 20 s and was killed")
            return
        if proc.returncode not in (0, -signal.SIGINT):
            # A clean stop is part of what is measured: say so when it was not.
            say(f"  warning: server exited with {proc.returncode}; its log:\n{self.log_tail()}")

    def log_tail(self, lines: int = 40) -> str:
        try:
            text = self.log_path.read_text(errors="replace")
        except OSError:
            return "(no log)"
        return "\n".join(text.splitlines()[-lines:])


def picshare_server(
    data_dir: Path,
    *,
    env: Mapping[str, str] | None = None,
    root: Path = ROOT,
) -> tuple[ServerProcess, str]:
    """PicShare started as an operator would (`run.py serve`), and its base URL;
    `root`: another checkout's (a baseline to compare with, on the same data)."""
    port = free_port()
    full_env = {**os.environ, **(env or {})}
    command = [PYTHON, str(root / "run.py"), "serve"]
    command += ["--host", "127.0.0.1", "--port", str(port), "--data-dir", str(data_dir)]
    base = f"http://127.0.0.1:{port}"
    server = ServerProcess(
        command,
        health_url=f"{base}/healthz",
        log_path=data_dir.parent / f"{data_dir.name}-server.log",
        env=full_env,
    )
    return server, base


async def signup(session: aiohttp.ClientSession, base: str, username: str = "bench") -> str:
    """A new account's bearer token."""
    body = {"username": username, "email": f"{username}@example.com", "password": "correct horse"}
    async with session.post(f"{base}/api/v1/auth/signup", json=body) as resp:
        if resp.status != 201:
            raise RuntimeError(f"signup answered {resp.status}: {await resp.text()}")
        data = await resp.json()
    return str(data["token"])


async def seed_site(
    data: Path, env: Mapping[str, str], *, users: int, photos: int, likes: int
) -> float:
    """`run.py seed` as an operator runs it (comments: a quarter of the photos); its seconds."""
    started = time.monotonic()
    command = [PYTHON, str(ROOT / "run.py"), "seed", "--data-dir", str(data)]
    command += ["--users", str(users), "--photos", str(photos), "--likes", str(likes)]
    command += ["--comments", str(photos // 4)]
    await asyncio.to_thread(
        subprocess.run,
        command,
        env=dict(env),
        check=True,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    return time.monotonic() - started


# The machine's PostgreSQL, where benchmarks make their fresh databases.
DATABASE_SERVICE_URL = os.environ.get(
    "PICSHARE_BENCH_DATABASE_URL", "postgresql://postgres@127.0.0.1:5432/postgres"
)


def with_db(dsn: str, name: str) -> str:
    head, sep, query = dsn.partition("?")
    return f"{head.rsplit('/', 1)[0]}/{name}{sep}{query}"


@contextlib.asynccontextmanager
async def fresh_database(tmp: Path) -> AsyncIterator[str]:
    """A new, empty database; dropped (or its embedded server stopped) afterwards."""
    name = f"picshare_bench_{uuid.uuid4().hex[:8]}"
    server: EmbeddedPostgres | None = None
    try:
        admin_dsn = DATABASE_SERVICE_URL
        admin = await asyncpg.connect(admin_dsn, timeout=5)
    except (OSError, asyncpg.PostgresError, TimeoutError):
        say("  no PostgreSQL service reachable: using an embedded one")
        server = EmbeddedPostgres(tmp / "pg")
        admin_dsn = await asyncio.to_thread(server.start)
        admin = await asyncpg.connect(admin_dsn, timeout=10)
    try:
        await admin.execute(f'CREATE DATABASE "{name}"')
        yield with_db(admin_dsn, name)
    finally:
        await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        await admin.close()
        if server is not None:
            await asyncio.to_thread(server.stop)


def percentile(values: list[float], p: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(p / 100 * (len(ordered) - 1)))]

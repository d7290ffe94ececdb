"""Fixed-concurrency, fixed-duration HTTP load: wrk when installed, else Python.

Three generators, all with N keep-alive connections for a fixed time:
- 'wrk': the C tool, if installed (one thread; the server needs the other core).
- 'python': raw asyncio protocols sending one canned GET at a time per
  connection. It costs the client a few microseconds per request, so on two
  cores it can still saturate a bare aiohttp server.
- 'aiohttp': aiohttp's client. Simpler, but its ~100 us per request make the
  client the bottleneck: a bare server then idles half the time and every
  ratio against it looks far better than it is.
The generators run in (or under) the bench process and share the CPU with the
server, so the CPU each side used is reported with each figure.
"""

from __future__ import annotations

import asyncio
import os
import re
import shutil
import subprocess
import time
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import cast
from urllib.parse import urlsplit

import aiohttp

from bench._common import machine_busy, wait_quiet

TOOLS = ("auto", "python", "aiohttp", "wrk")
_CONTENT_LENGTH = re.compile(rb"\r\ncontent-length:[ \t]*(\d+)", re.IGNORECASE)


@dataclass(frozen=True, slots=True)
class LoadResult:
    requests: int  # completed with a 2xx
    errors: int  # non-2xx, timeouts, connection errors
    seconds: float
    tool: str
    server_cores: float = 0.0  # CPU seconds per second of the server process
    foreign_cores: float = 0.0  # the same for processes that are no part of the bench
    others: str = ""  # a summary of the CPU used by the other participants

    @property
    def rps(self) -> float:
        return self.requests / self.seconds if self.seconds else 0.0


def choose_tool(wanted: str) -> str:
    if wanted == "auto":
        return "wrk" if shutil.which("wrk") else "python"
    if wanted == "wrk" and not shutil.which("wrk"):
        raise RuntimeError("--loadgen wrk: wrk is not installed")
    return wanted


# Other processes using more than this many cores spoil a measurement.
NOISE_LIMIT = 0.25
ATTEMPTS = 3


async def measure(
    url: str,
    *,
    tool: str,
    connections: int,
    duration: float,
    server_pid: int,
    related: str | None = None,
    headers: Mapping[str, str] | None = None,
) -> LoadResult:
    """Load ``url`` (with ``headers`` on every request) after a short unmeasured warm-up.

    A run during which unrelated processes took CPU is repeated (up to
    ATTEMPTS runs); the least disturbed one is kept. ``related``: a string in
    the command line of the server's helper processes (its data dir), so the
    embedded PostgreSQL, which daemonises and so is no child of the server, is
    counted with the workers rather than as a disturbance.
    """
    best: LoadResult | None = None
    for _ in range(ATTEMPTS):
        await wait_quiet()
        extra = dict(headers or {})
        await _raw_load(url, connections, min(0.5, duration / 2), extra)
        cpu = _CpuMeter(server_pid, related)
        if tool == "wrk":
            result = await asyncio.to_thread(_wrk_load, url, connections, duration, extra)
        elif tool == "aiohttp":
            result = await _aiohttp_load(url, connections, duration, extra)
        else:
            result = await _raw_load(url, connections, duration, extra)
        server, foreign, others = cpu.read()
        run = LoadResult(
            result.requests, result.errors, result.seconds, tool, server, foreign, others
        )
        if best is None or run.foreign_cores < best.foreign_cores:
            best = run
        if run.foreign_cores <= NOISE_LIMIT:
            break
    assert best is not None
    return best


class _Connection(asyncio.Protocol):
    """One keep-alive connection sending ``request`` again as soon as each response is in."""

    def __init__(self, request: bytes, deadline: float, done: asyncio.Future[None]) -> None:
        self.request = request
        self.deadline = deadline
        self.done = done
        self.ok = self.errors = 0
        self.buffer = bytearray()
        self.transport: asyncio.Transport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # uvloop's TCP transport is no asyncio.Transport subclass, but has its methods.
        self.transport = cast(asyncio.Transport, transport)
        self.transport.write(self.request)

    def data_received(self, data: bytes) -> None:
        self.buffer += data
        while (end := self.buffer.find(b"\r\n\r\n")) >= 0:
            head = bytes(self.buffer[:end])
            length = _CONTENT_LENGTH.search(head)
            if length is None:  # chunked or close-delimited: not for this generator
                self.errors += 1
                self._finish()
                return
            total = end + 4 + int(length.group(1))
            if len(self.buffer) < total:
                return
            del self.buffer[:total]
            if head[9:10] == b"2":  # "HTTP/1.1 200 OK"
                self.ok += 1
            else:
                self.errors += 1
            if time.perf_counter() >= self.deadline:
                self._finish()
                return
            assert self.transport is not None
            self.transport.write(self.request)

    def connection_lost(self, exc: Exception | None) -> None:
        if not self.done.done():
            self.errors += 1  # the server closed a keep-alive connection early
            self.done.set_result(None)

    def _finish(self) -> None:
        if not self.done.done():
            self.done.set_result(None)
        if self.transport is not None:
            self.transport.close()


async def _raw_load(
    url: str, connections: int, duration: float, headers: Mapping[str, str] | None = None
) -> LoadResult:
    parts = urlsplit(url)
    host, port = parts.hostname or "127.0.0.1", parts.port or 80
    target = parts.path + (f"?{parts.query}" if parts.query else "")
    lines = "".join(f"{k}: {v}\r\n" for k, v in (headers or {}).items())
    request = f"GET {target} HTTP/1.1\r\nHost: {parts.netloc}\r\n{lines}\r\n".encode()
    loop = asyncio.get_running_loop()
    start = time.perf_counter()
    deadline = start + duration
    protocols: list[_Connection] = []
    for _ in range(connections):
        _, protocol = await loop.create_connection(
            lambda: _Connection(request, deadline, loop.create_future()), host, port
        )
        protocols.append(protocol)
    try:
        # A stuck server must not hang the bench: give up 10 s past the deadline.
        await asyncio.wait_for(asyncio.gather(*(p.done for p in protocols)), duration + 10)
    finally:
        for p in protocols:
            if p.transport is not None:
                p.transport.close()
    elapsed = time.perf_counter() - start
    return LoadResult(
        sum(p.ok for p in protocols), sum(p.errors for p in protocols), elapsed, "python"
    )


async def _aiohttp_load(
    url: str, connections: int, duration: float, headers: Mapping[str, str] | None = None
) -> LoadResult:
    ok = errors = 0
    timeout = aiohttp.ClientTimeout(total=5)
    connector = aiohttp.TCPConnector(limit=connections)

    async def worker(session: aiohttp.ClientSession, deadline: float) -> None:
        nonlocal ok, errors
        while time.perf_counter() < deadline:
            try:
                async with session.get(url, headers=headers) as resp:
                    await resp.read()
                    if 200 <= resp.status < 300:
                        ok += 1
                    else:
                        errors += 1
            except (aiohttp.ClientError, TimeoutError):
                errors += 1

    async with aiohttp.ClientSession(
        connector=connector, timeout=timeout, cookie_jar=aiohttp.DummyCookieJar()
    ) as session:
        start = time.perf_counter()
        deadline = start + duration
        # Each request is bounded by the client timeout, so this ends by
        # deadline + 5 s at worst; wait_for is the belt to those braces.
        await asyncio.wait_for(
            asyncio.gather(*(worker(session, deadline) for _ in range(connections))),
            duration + 10,
        )
        elapsed = time.perf_counter() - start
    return LoadResult(ok, errors, elapsed, "aiohttp")


def _wrk_load(
    url: str, connections: int, duration: float, headers: Mapping[str, str] | None = None
) -> LoadResult:
    seconds = max(1, round(duration))
    given = [a for k, v in (headers or {}).items() for a in ("-H", f"{k}: {v}")]
    out = subprocess.run(
        ["wrk", "-t1", f"-c{connections}", f"-d{seconds}s", "--timeout", "5s", *given, url],
        capture_output=True,
        text=True,
        check=True,
        timeout=seconds + 30,
    ).stdout
    total = re.search(r"(\d+) requests in ([\d.]+)(m?s)", out)
    if total is None:
        raise RuntimeError(f"cannot read wrk's output:\n{out}")
    elapsed = float(total.group(2)) / (1000 if total.group(3) == "ms" else 1)
    bad = sum(
        int(n)
        for n in re.findall(r"Non-2xx or 3xx responses: (\d+)", out)
        + re.findall(r"(?:connect|read|write|timeout) (\d+)", out)
    )
    requests = int(total.group(1))
    return LoadResult(requests - bad, bad, elapsed, "wrk")


class _CpuMeter:
    """CPU seconds per wall second, read from /proc: of the server process, of its
    helpers (descendants, plus processes whose command line holds ``related``),
    of this bench process with its finished children (the load generator), and
    of everything else running on the machine."""

    def __init__(self, pid: int, related: str | None) -> None:
        self.pid = pid
        self.related = related
        self.start = time.perf_counter()
        self.own, self.helpers = self._process_times()
        self.bench = _self_cpu()
        self.busy = machine_busy()

    def _process_times(self) -> tuple[float, float]:
        stats = _proc_stats()
        own = stats.get(self.pid, (0, 0.0))[1]
        family = {self.pid}
        if self.related:
            family |= {pid for pid in stats if self.related in _cmdline(pid)}
        grew = True
        while grew:  # add descendants until none is left
            grew = False
            for pid, (ppid, _cpu) in stats.items():
                if pid not in family and ppid in family:
                    family.add(pid)
                    grew = True
        helpers = sum(stats.get(pid, (0, 0.0))[1] for pid in family - {self.pid})
        return own, helpers

    def read(self) -> tuple[float, float, str]:
        """Server cores, cores used by unrelated processes, and a summary."""
        own, helpers = self._process_times()
        wall = time.perf_counter() - self.start
        server = (own - self.own) / wall
        helper = (helpers - self.helpers) / wall
        client = (_self_cpu() - self.bench) / wall
        busy = (machine_busy() - self.busy) / wall
        foreign = max(0.0, busy - server - helper - client)
        text = f"db+workers {helper:.2f}, load generator {client:.2f}, other {foreign:.2f}"
        return server, foreign, text


def _self_cpu() -> float:
    """CPU seconds of this process and of its children already waited for (wrk)."""
    t = os.times()
    return t.user + t.system + t.children_user + t.children_system


def _proc_stats() -> dict[int, tuple[int, float]]:
    """pid -> (parent pid, user + system CPU seconds) of every process we can read."""
    tick = os.sysconf("SC_CLK_TCK")
    stats: dict[int, tuple[int, float]] = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            text = (entry / "stat").read_text()
        except OSError:
            continue  # exited meanwhile
        # The command name may hold spaces and parentheses: split after the last ')'.
        fields = text[text.rfind(")") + 2 :].split()
        stats[int(entry.name)] = (int(fields[1]), (int(fields[11]) + int(fields[12])) / tick)
    return stats


def _cmdline(pid: int) -> str:
    try:
        return (
            Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
        )
    except OSError:
        return ""

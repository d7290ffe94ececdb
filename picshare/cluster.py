"""`python run.py cluster`: the whole topology the story ends with, on one
machine, each part a real process:

    nginx -> gateway -> auth, photos x2, notifications, search, web
          -> PostgreSQL: two shards, each a primary with a streaming replica
          -> Redis, RabbitMQ, an S3 server (moto)

PostgreSQL runs embedded (this process starts and stops it, as `serve
--shards 2 --replicas 1` would). Redis and RabbitMQ are the machine's when
they answer (`PICSHARE_REDIS_URL`, `PICSHARE_AMQP_URL`, else their default
ports); a `redis-server` of its own is started when none answers, and events
go through the in-process relay when no broker does. The S3 server is
moto's (a development dependency); without it blobs stay local, in one
folder every process shares. It prints the URL and a table of what runs
where; Ctrl-C (or SIGTERM) stops everything it started, last started first.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import secrets
import shutil
import signal
import socket
import subprocess
import sys
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlsplit

import aiohttp

from picshare.config import Settings
from picshare.database import database_topology
from picshare.nginx_config import NginxOptions, render_nginx_config

ROOT = Path(__file__).resolve().parent.parent
# The services behind the gateway: one process each, but photos, the one
# that scales out, runs two (`--workers 2`: one port, the kernel balances).
SERVICES: tuple[str, ...] = ("auth", "photos", "notifications", "search", "web")
PROCESSES = {"photos": 2}
START_TIMEOUT = 90.0
MOTO_CREDENTIALS = {
    "AWS_ACCESS_KEY_ID": "picshare-cluster",
    "AWS_SECRET_ACCESS_KEY": "picshare-cluster-secret",
    "AWS_DEFAULT_REGION": "us-east-1",
}


class ClusterError(RuntimeError):
    """A part could not start: what and why (its log's tail)."""


@dataclass
class Part:
    role: str
    where: str
    proc: subprocess.Popen[bytes] | None = None  # None: the machine's, not ours
    log: Path | None = None


@dataclass
class Cluster:
    settings: Settings
    folder: Path
    port: int
    say: Callable[[str], None] = print
    parts: list[Part] = field(default_factory=list)

    async def run(self, stop: asyncio.Event) -> None:
        """Start everything, print where, wait for `stop`, stop everything."""
        self.folder.mkdir(parents=True, exist_ok=True)
        db_settings = self.settings.replace(
            server={"data_dir": str(self.folder / "pg")},
            database={"url": "", "shards": (), "embedded_shards": 2, "embedded_replicas": 1},
        )
        async with database_topology(db_settings) as topology:
            try:
                for k, urls in enumerate(topology.shards, start=1):
                    self.parts.append(Part(f"postgres shard {k} primary", _where(urls.primary)))
                    for r, dsn in enumerate(urls.replicas, start=1):
                        self.parts.append(Part(f"postgres shard {k} replica {r}", _where(dsn)))
                env = await self._backing_services()
                env |= {
                    "PICSHARE_SHARDS": ",".join(u.primary for u in topology.shards),
                    "PICSHARE_DATABASE_SHARD_REPLICAS": ",".join(
                        " ".join(u.replicas) for u in topology.shards
                    ),
                }
                await self._picshare(env)
                self.say(self.table())
                await stop.wait()
            finally:
                self.stop()

    async def _backing_services(self) -> dict[str, str]:
        """Redis, the broker and S3: their settings for every PicShare process."""
        env: dict[str, str] = {
            "PICSHARE_SECRET_KEY": _secret(self.folder / "secret_key"),
            "PICSHARE_SERVER_INTERNAL_SECRET": _secret(self.folder / "internal_secret"),
            "PICSHARE_DATA_DIR": str(self.folder / "data"),
            "PICSHARE_RATELIMIT_ENABLED": "true",
            # nginx and the gateway, on this machine, say who the client is.
            "PICSHARE_SERVER_TRUSTED_PROXIES": "127.0.0.1",
        }
        redis_url = self.settings.redis.url or "redis://127.0.0.1:6379/0"
        if _answers(redis_url, 6379):
            self.parts.append(Part("redis (the machine's)", _where(redis_url)))
        else:
            redis_url = self._start_redis()
        env["PICSHARE_REDIS_URL"] = redis_url
        amqp_url = self.settings.events.amqp_url or "amqp://guest:guest@127.0.0.1:5672/"
        if _answers(amqp_url, 5672):
            self.parts.append(Part("rabbitmq (the machine's)", _where(amqp_url)))
            env["PICSHARE_AMQP_URL"] = amqp_url
        else:
            self.parts.append(Part("events", "no broker answers: the in-process relay"))
        moto = moto_server()
        if moto is None:
            self.parts.append(
                Part("blobs", f"local, in {self.folder / 'data'} (moto not installed)")
            )
            return env
        endpoint = await self._start_moto(moto)
        env |= {
            **MOTO_CREDENTIALS,
            "PICSHARE_BLOBS_BACKEND": "s3",
            "PICSHARE_S3_BUCKET": "picshare",
            "PICSHARE_S3_ENDPOINT_URL": endpoint,
        }
        return env

    def _start_redis(self) -> str:
        binary = shutil.which("redis-server")
        if binary is None:
            raise ClusterError("no Redis answers and redis-server is not installed")
        port = free_port()
        self._spawn(
            "redis",
            f"127.0.0.1:{port}",
            [
                binary,
                "--bind",
                "127.0.0.1",
                "--port",
                str(port),
                "--save",
                "",
                "--appendonly",
                "no",
            ],
            {},
        )
        return f"redis://127.0.0.1:{port}/0"

    async def _start_moto(self, binary: str) -> str:
        port = free_port()
        endpoint = f"http://127.0.0.1:{port}"
        self._spawn("s3 (moto)", endpoint, [binary, "-H", "127.0.0.1", "-p", str(port)], {})
        await self._until_http(self.parts[-1], f"{endpoint}/")
        # The bucket: moto keeps nothing between runs.
        async with aiohttp.ClientSession() as session, session.put(f"{endpoint}/picshare") as resp:
            if resp.status >= 300:
                raise ClusterError(f"could not make the S3 bucket: {resp.status}")
        return endpoint

    async def _picshare(self, env: dict[str, str]) -> None:
        upstreams: list[str] = []
        for service in SERVICES:
            port = free_port()
            workers = PROCESSES.get(service, 1)
            self._spawn(
                service if workers == 1 else f"{service} x{workers}",
                f"http://127.0.0.1:{port}",
                _serve("--service", service, "--port", str(port), "--workers", str(workers)),
                # Every service runs jobs: each claims only its own kinds
                # (picshare/services.py), as it consumes only its own events.
                env,
            )
            upstreams += ["--upstream", f"{service}=http://127.0.0.1:{port}"]
        for part in self.parts:
            if part.role.split()[0] in SERVICES:
                await self._until_http(part, f"{part.where}/healthz")
        gateway_port = free_port()
        gateway = self._spawn(
            "gateway",
            f"http://127.0.0.1:{gateway_port}",
            _serve("--service", "gateway", "--port", str(gateway_port), *upstreams),
            env,
        )
        await self._until_http(gateway, f"{gateway.where}/healthz")
        await self._start_nginx(gateway_port)

    async def _start_nginx(self, gateway_port: int) -> None:
        binary = shutil.which("nginx")
        if binary is None:
            raise ClusterError("nginx is not installed (deploy/system-packages.sh installs it)")
        folder = self.folder / "nginx"
        (folder / "logs").mkdir(parents=True, exist_ok=True)
        conf = folder / "nginx.conf"
        conf.write_text(
            render_nginx_config(
                NginxOptions(
                    upstreams=(f"127.0.0.1:{gateway_port}",),
                    listen=self.port,
                    max_body_bytes=self.settings.uploads.max_bytes,
                )
            )
        )
        # As root, nginx's workers would become `nobody`; they stay who we are.
        user = " user root;" if os.geteuid() == 0 else ""
        part = self._spawn(
            "nginx",
            f"http://127.0.0.1:{self.port}",
            [
                *(binary, "-p", str(folder), "-c", str(conf)),
                *("-e", str(folder / "logs" / "error.log")),
                *("-g", f"daemon off; pid {folder / 'nginx.pid'};{user}"),
            ],
            {},
        )
        await self._until_http(part, f"{part.where}/healthz")

    def _spawn(self, role: str, where: str, argv: list[str], env: dict[str, str]) -> Part:
        logs = self.folder / "logs"
        logs.mkdir(parents=True, exist_ok=True)
        log = logs / f"{role.replace(' ', '-')}-{len(self.parts)}.log"
        with log.open("ab") as out:
            proc = subprocess.Popen(
                argv,
                env={**os.environ, **env},
                stdout=out,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        part = Part(role, where, proc, log)
        self.parts.append(part)
        return part

    async def _until_http(self, part: Part, url: str) -> None:
        """Until `url` answers (any status), or the part dies or takes too long."""
        timeout = aiohttp.ClientTimeout(total=2)
        async with aiohttp.ClientSession(timeout=timeout) as session:
            loop = asyncio.get_running_loop()
            deadline = loop.time() + START_TIMEOUT
            while loop.time() < deadline:
                if part.proc is not None and part.proc.poll() is not None:
                    raise ClusterError(f"{part.role} exited: {_tail(part.log)}")
                with contextlib.suppress(aiohttp.ClientError, TimeoutError):
                    async with session.get(url) as resp:
                        await resp.read()
                        return
                await asyncio.sleep(0.2)
        raise ClusterError(f"{part.role} did not answer at {url}: {_tail(part.log)}")

    def table(self) -> str:
        rows = [("what", "where", "pid")]
        rows += [(p.role, p.where, str(p.proc.pid) if p.proc else "–") for p in self.parts]
        widths = [max(len(r[i]) for r in rows) for i in range(3)]
        lines = ["  ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)) for r in rows]
        lines.insert(1, "  ".join("-" * w for w in widths))
        return "\n".join(
            [
                f"PicShare is up at http://127.0.0.1:{self.port}/ "
                f"(the running site: http://127.0.0.1:{self.port}/system)",
                "",
                *lines,
                "",
                f"logs: {self.folder / 'logs'}; Ctrl-C stops it all",
            ]
        )

    def stop(self) -> None:
        """Every process this started, last started first: SIGINT (a clean
        stop), then SIGKILL for what did not stop within 15 s."""
        for part in reversed(self.parts):
            proc = part.proc
            if proc is None or proc.poll() is not None:
                continue
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGINT)
            try:
                proc.wait(15)
            except subprocess.TimeoutExpired:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(proc.pid, signal.SIGKILL)
                proc.wait(5)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _serve(*args: str) -> list[str]:
    return [sys.executable, str(ROOT / "run.py"), "serve", *args]


def _where(dsn: str) -> str:
    """A DSN without its credentials: host and port, or the socket folder."""
    parts = urlsplit(dsn)
    if parts.hostname:
        return f"{parts.hostname}:{parts.port or ''}".rstrip(":")
    return parts.query.replace("host=", "socket ") or dsn


def _answers(url: str, default_port: int) -> bool:
    parts = urlsplit(url)
    address = (parts.hostname or "127.0.0.1", parts.port or default_port)
    try:
        with socket.create_connection(address, 1):
            return True
    except OSError:
        return False


def moto_server() -> str | None:
    """moto's S3 server: the one installed beside this Python, else on PATH
    (the tests' S3 harness finds it the same way)."""
    beside = Path(sys.executable).with_name("moto_server")
    return str(beside) if beside.exists() else shutil.which("moto_server")


def _secret(path: Path) -> str:
    """A secret every process of the cluster shares, kept across runs."""
    if not path.exists():
        path.write_text(secrets.token_urlsafe(32))
    return path.read_text().strip()


def _tail(log: Path | None) -> str:
    if log is None or not log.exists():
        return "(no log)"
    return log.read_text(errors="replace")[-1500:]

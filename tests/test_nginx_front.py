"""nginx in front of three real `run.py serve` processes, as `run.py nginx-config`
writes it: TLS with a self-signed certificate, balancing methods switched by
reload, `/ws` through the proxy, the edge cache of `/media/`.

Which process served a request is read from each process's own /metrics
(`picshare_http_requests_total` per route), never from nginx.
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import io
import re
import signal
import ssl
import subprocess
import sys
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiohttp
import pytest
import redis

from picshare.nginx_config import NginxOptions, render_nginx_config
from tests import imaging
from tests.harness import (
    SHARDS_OF,
    TEST_SHARDS,
    PostgresForTests,
    database_env,
    missing_service,
    with_database,
)
from tests.nginx_harness import Nginx, self_signed_certificate
from tests.servers import ServerProcess, free_port, spawn_serve, wait_listening

# Its own databases, or nothing in it depends on where rows live: the
# sharded pass (PICSHARE_TEST_SHARDS) would run it the same way again.
pytestmark = [
    pytest.mark.one_pass,
    # A connection a killed or reloaded backend left half-open may be
    # collected during any test here (asyncio then warns of an unclosed
    # transport): that is the test's own socket, not PicShare's.
    pytest.mark.filterwarnings("ignore::pytest.PytestUnraisableExceptionWarning"),
]

ROOT = Path(__file__).resolve().parent.parent
MAX_UPLOAD = 1_000_000
TIMEOUT = aiohttp.ClientTimeout(total=60)


@dataclass
class Edge:
    nginx: Nginx
    backends: list[ServerProcess]
    env: dict[str, str]
    data_dir: Path
    logs: Path
    https: str
    http: str
    cert: Path
    key: Path
    cache: Path

    def config(self, method: str) -> str:
        return render_nginx_config(
            NginxOptions(
                upstreams=tuple(b.base.removeprefix("http://") for b in self.backends),
                method=method,
                listen=int(self.https.rsplit(":", 1)[1]),
                redirect_port=int(self.http.rsplit(":", 1)[1]),
                tls_cert=str(self.cert),
                tls_key=str(self.key),
                edge_cache=str(self.cache),
                max_body_bytes=MAX_UPLOAD,
            )
        )

    def session(self) -> aiohttp.ClientSession:
        """A client trusting the test's certificate, one connection per request
        (so a reload's old nginx workers go away)."""
        context = ssl.create_default_context(cafile=str(self.cert))
        connector = aiohttp.TCPConnector(ssl=context, force_close=True)
        return aiohttp.ClientSession(timeout=TIMEOUT, connector=connector)

    def restart_backend(self, i: int) -> None:
        port = int(self.backends[i].base.rsplit(":", 1)[1])
        log = self.logs / f"backend-{i}.log"
        self.backends[i] = spawn_serve(self.data_dir, self.env, log, port=port)
        wait_listening(self.backends[i], log)


@pytest.fixture(autouse=True)
def _collect_own_sockets() -> Iterator[None]:
    """Collect this test's garbage before it ends, so a half-open client socket
    it left warns here (ignored above) and not in whichever test runs next."""
    yield
    gc.collect()


@pytest.fixture(scope="module")
def edge(
    tmp_path_factory: pytest.TempPathFactory,
    postgres: PostgresForTests,
    redis_service: str | None,
) -> Iterator[Edge]:
    if redis_service is None:
        missing_service("no Redis: processes behind nginx share notifications through it")
    redis.Redis.from_url(redis_service).flushdb()
    folder = tmp_path_factory.mktemp("edge")
    names = [asyncio.run(postgres.create_database()) for _ in range(TEST_SHARDS)]
    urls = tuple(with_database(postgres.admin_dsn, name) for name in names)
    if len(urls) > 1:
        SHARDS_OF[urls[0]] = urls
    env = {
        **database_env(urls[0]),
        "PICSHARE_REDIS_URL": redis_service,
        "PICSHARE_SERVER_TRUSTED_PROXIES": "127.0.0.1",
        "PICSHARE_RATELIMIT_ENABLED": "false",
        "PICSHARE_UPLOADS_MAX_BYTES": str(MAX_UPLOAD),
    }
    cert, key = self_signed_certificate(folder)
    https, http = free_port(), free_port()
    # One data dir: local blobs written by one process are read by the others.
    data_dir = folder / "data"
    backends = [spawn_serve(data_dir, env, folder / f"backend-{i}.log") for i in range(3)]
    nginx = Nginx(folder / "nginx", (https, http))
    setup = Edge(
        nginx,
        backends,
        env,
        data_dir,
        folder,
        f"https://127.0.0.1:{https}",
        f"http://127.0.0.1:{http}",
        cert,
        key,
        folder / "edge-cache",
    )
    try:
        for i, backend in enumerate(backends):
            wait_listening(backend, folder / f"backend-{i}.log")
        nginx.start(setup.config("round_robin"))
        yield setup
    finally:
        nginx.stop()
        for backend in setup.backends:
            backend.stop()
        SHARDS_OF.pop(urls[0], None)
        for name in names:
            asyncio.run(postgres.drop_database(name))
        gc.collect()  # as `_collect_own_sockets`, for the module's last test


async def _counts(route: str, backends: list[ServerProcess]) -> list[int]:
    """Requests each process has answered on `route`, from its own /metrics."""
    pattern = re.compile(
        r'^picshare_http_requests_total\{[^}]*route="' + re.escape(route) + r'"[^}]*\} (\S+)$',
        re.MULTILINE,
    )
    counts = []
    async with aiohttp.ClientSession(timeout=TIMEOUT) as session:
        for backend in backends:
            async with session.get(f"{backend.base}/metrics") as resp:
                text = await resp.text()
            counts.append(int(sum(float(m) for m in pattern.findall(text))))
    return counts


async def _spread(edge: Edge, n: int, alive: int = 3) -> list[int]:
    """Send `n` probes through nginx, one after another; where each landed
    (among the first `alive` processes)."""
    backends = edge.backends[:alive]
    before = await _counts("healthz", backends)
    async with edge.session() as session:
        for _ in range(n):
            async with session.get(f"{edge.https}/healthz") as resp:
                assert resp.status == 200, await resp.text()
    after = await _counts("healthz", backends)
    return [a - b for a, b in zip(after, before, strict=True)]


async def _signup(session: aiohttp.ClientSession, base: str, name: str) -> dict[str, str]:
    body = {"username": name, "email": f"{name}@example.com", "password": "correct horse"}
    async with session.post(f"{base}/api/v1/auth/signup", json=body) as resp:
        assert resp.status == 201, await resp.text()
        return {"Authorization": f"Bearer {(await resp.json())['token']}"}


@contextlib.asynccontextmanager
async def _socket(
    session: aiohttp.ClientSession, edge: Edge, auth: dict[str, str]
) -> AsyncIterator[aiohttp.ClientWebSocketResponse]:
    wss = edge.https.replace("https://", "wss://")
    async with session.ws_connect(f"{wss}/ws", headers={**auth, "Origin": edge.https}) as ws:
        await ws.send_json({"type": "ping"})
        assert (await ws.receive_json(timeout=10))["type"] == "pong"
        yield ws


def test_nginx_config_command_prints_a_config_nginx_accepts(edge: Edge, tmp_path: Path) -> None:
    conf = tmp_path / "nginx.conf"
    printed = subprocess.run(
        [
            *(sys.executable, str(ROOT / "run.py"), "nginx-config", "--method", "ip_hash"),
            *("--upstream", "127.0.0.1:8001", "--upstream", "127.0.0.1:8002"),
            *("--tls-cert", str(edge.cert), "--tls-key", str(edge.key)),
            *("--edge-cache", str(tmp_path / "cache")),
        ],
        capture_output=True,
        text=True,
        check=True,
        timeout=60,
    ).stdout
    assert "ip_hash;" in printed and "server 127.0.0.1:8002" in printed
    assert "client_max_body_size 52494336;" in printed  # PicShare's 50 MiB and the envelope
    conf.write_text(printed)
    (tmp_path / "logs").mkdir()
    checked = subprocess.run(
        ["nginx", "-t", "-p", str(tmp_path), "-c", str(conf), "-e", str(tmp_path / "error.log")],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert checked.returncode == 0, checked.stderr


async def test_round_robin_spreads_evenly(edge: Edge) -> None:
    edge.nginx.reload(edge.config("round_robin"))
    assert await _spread(edge, 30) == [10, 10, 10]


async def test_ip_hash_sticks_to_one_process(edge: Edge) -> None:
    edge.nginx.reload(edge.config("ip_hash"))
    assert sorted(await _spread(edge, 30)) == [0, 0, 30]


async def test_least_conn_favours_the_idle_process(edge: Edge) -> None:
    edge.nginx.reload(edge.config("least_conn"))
    async with edge.session() as session:
        auth = await _signup(session, edge.https, "busy")
        # Two open sockets keep two processes busy; every short request then
        # goes to the third (round robin would give each 4).
        async with _socket(session, edge, auth), _socket(session, edge, auth):
            spread = await _spread(edge, 12)
    assert sorted(spread) == [0, 0, 12]


async def test_ws_through_nginx_gets_a_notification_from_another_process(edge: Edge) -> None:
    edge.nginx.reload(edge.config("round_robin"))
    async with edge.session() as session:
        star = await _signup(session, edge.https, "star")
        fan = await _signup(session, edge.https, "fan")
        async with _socket(session, edge, star) as ws:
            # The follow lands on any process; the socket's process pushes it (Redis).
            async with session.put(f"{edge.https}/api/v1/users/star/follow", headers=fan) as resp:
                assert resp.status in (200, 204), await resp.text()
            message = await ws.receive_json(timeout=10)
    assert message["type"] == "notification" and message["kind"] == "follow"
    assert message["actor"]["username"] == "fan"


async def _ready_thumb(
    session: aiohttp.ClientSession, edge: Edge, auth: dict[str, str], color: imaging.RGB
) -> str:
    # Its own color: media are addressed by content, and the same bytes
    # posted publicly by anyone would make them public (and cacheable).
    form = aiohttp.FormData()
    form.add_field("file", imaging.jpeg_bytes(320, 240, color=color), filename="x.jpg")
    async with session.post(f"{edge.https}/api/v1/upload", data=form, headers=auth) as resp:
        assert resp.status == 201, await resp.text()
        photo_id = (await resp.json())["id"]
    async with asyncio.timeout(60):
        while True:
            async with session.get(f"{edge.https}/api/v1/photos/{photo_id}", headers=auth) as resp:
                photo: dict[str, Any] = await resp.json()
            if photo["status"] == "ready":
                thumb = str(photo["urls"]["thumb"])
                return thumb if thumb.startswith("http") else edge.https + thumb
            await asyncio.sleep(0.2)


async def _fetch_twice(
    session: aiohttp.ClientSession, edge: Edge, url: str, expected: int
) -> tuple[int, str]:
    """Fetch `url` twice through nginx: how many reached PicShare (once at
    least `expected` did, and a moment more), and the edge's verdict on the
    second."""
    before = sum(await _counts("media", edge.backends))
    verdicts = []
    for _ in range(2):
        async with session.get(url) as resp:
            assert resp.status == 200, await resp.text()
            assert resp.content_type == "image/jpeg"
            await resp.read()
            verdicts.append(resp.headers.get("X-Cache-Status", ""))
    # A streamed response is counted just after its last byte leaves.
    async with asyncio.timeout(10):
        while sum(await _counts("media", edge.backends)) - before < expected:
            await asyncio.sleep(0.05)
    await asyncio.sleep(0.3)
    return sum(await _counts("media", edge.backends)) - before, verdicts[1]


async def test_the_edge_cache_answers_a_second_thumbnail_itself(edge: Edge) -> None:
    async with edge.session() as session:
        auth = await _signup(session, edge.https, "public_poster")
        thumb = await _ready_thumb(session, edge, auth, (10, 120, 200))
        assert await _fetch_twice(session, edge, thumb, expected=1) == (1, "HIT")


async def test_private_media_is_never_cached_at_the_edge(edge: Edge) -> None:
    async with edge.session() as session:
        auth = await _signup(session, edge.https, "private_poster")
        async with session.patch(
            f"{edge.https}/api/v1/me", json={"private": True}, headers=auth
        ) as resp:
            assert resp.status == 200, await resp.text()
        thumb = await _ready_thumb(session, edge, auth, (200, 40, 90))
        assert "sig=" in thumb
        reached, verdict = await _fetch_twice(session, edge, thumb, expected=2)
    assert (reached, verdict) == (2, "MISS")


async def test_http_redirects_to_https_and_https_sends_hsts(edge: Edge) -> None:
    async with edge.session() as session:
        async with session.get(f"{edge.http}/p/123?x=1", allow_redirects=False) as resp:
            assert resp.status == 301
            assert resp.headers["Location"] == f"{edge.https}/p/123?x=1"
        async with session.get(f"{edge.https}/healthz") as resp:
            assert resp.status == 200
            assert resp.headers["Strict-Transport-Security"].startswith("max-age=63072000")
        # One id per request in both logs: the client's own, else nginx's.
        async with session.get(f"{edge.https}/healthz", headers={"X-Request-ID": "mine-1"}) as resp:
            assert resp.headers["X-Request-ID"] == "mine-1"
        async with session.get(f"{edge.https}/healthz") as resp:
            made = resp.headers["X-Request-ID"]
        assert re.fullmatch(r"[0-9a-f]{32}", made)  # nginx's $request_id
        # nginx logs a request after its answer has gone: wait for the line.
        log = edge.nginx.folder / "logs" / "access.log"
        for _ in range(100):
            if f"id={made}" in log.read_text():
                break
            await asyncio.sleep(0.05)
        assert f"id={made}" in log.read_text()
        # PicShare believes nginx's X-Forwarded-Proto: its cookies are Secure.
        async with session.get(f"{edge.https}/login") as resp:
            assert resp.status == 200
            cookies = resp.headers.getall("Set-Cookie", [])
            assert cookies and all("; Secure" in c for c in cookies), cookies


async def test_an_upload_over_the_limit_is_refused_as_problem_details(edge: Edge) -> None:
    async with edge.session() as session:
        auth = await _signup(session, edge.https, "big_poster")
        # Just over PicShare's limit: nginx lets it through, PicShare refuses it.
        before = sum(await _counts("api.upload", edge.backends))
        form = aiohttp.FormData()
        form.add_field("file", io.BytesIO(b"\xff" * (MAX_UPLOAD + 1000)), filename="x.jpg")
        async with session.post(f"{edge.https}/api/v1/upload", data=form, headers=auth) as resp:
            assert resp.status == 413
            assert resp.content_type == "application/problem+json"
        after = sum(await _counts("api.upload", edge.backends))
        assert after == before + 1
        # Beyond the multipart envelope: nginx refuses it, PicShare never sees it.
        form = aiohttp.FormData()
        form.add_field("file", io.BytesIO(b"\xff" * (2 * MAX_UPLOAD)), filename="x.jpg")
        async with session.post(f"{edge.https}/api/v1/upload", data=form, headers=auth) as resp:
            assert resp.status == 413
            assert resp.content_type == "application/problem+json"
            assert (await resp.json())["status"] == 413
    assert sum(await _counts("api.upload", edge.backends)) == after


async def test_a_killed_process_is_routed_around(edge: Edge) -> None:
    edge.nginx.reload(edge.config("round_robin"))
    dead = edge.backends[2]
    dead.stop(signal.SIGKILL)
    try:
        spread = await _spread(edge, 12, alive=2)  # each answered 200 (asserted inside)
        assert sum(spread) == 12
    finally:
        await asyncio.to_thread(edge.restart_backend, 2)

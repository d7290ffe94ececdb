"""The services and the gateway as real processes (`run.py serve --service`).

One topology for the module: auth, photos, notifications, search and web,
each its own `run.py serve --service NAME` process, sharing one database,
one Redis, one RabbitMQ exchange and one data directory, behind a
`run.py serve --service gateway`.
The tests walk the core journey through the gateway, then take services away
(in file order: the last tests stop and freeze processes).
"""

from __future__ import annotations

import asyncio
import contextlib
import io
import json
import os
import re
import signal
import socket
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aio_pika
import aiohttp
import asyncpg
import pytest
import redis

from picshare.domain_events import NOTIFICATIONS_CHANGED
from picshare.internal_token import HEADER, InternalTokens
from picshare.services import SERVICES
from tests.amqp_harness import AMQP_URL, module_exchange
from tests.harness import PostgresForTests, database_env, missing_service, module_database
from tests.imaging import jpeg_bytes
from tests.servers import ServerProcess, spawn_serve, wait_listening

pytestmark = pytest.mark.one_pass  # where rows land does not matter here

SECRET = "gateway-test-internal-secret"
TIMEOUT = aiohttp.ClientTimeout(total=30)
WEB_TIMEOUT = 2  # seconds: the web service's upstream timeout (504 test)
BREAKER_FAILURES = 3
BREAKER_COOLDOWN = 6  # seconds


SUBSCRIBE = "subscription { notifications { id kind actor { username } } }"


@dataclass
class Topology:
    gateway: ServerProcess
    services: dict[Any, ServerProcess]
    logs: Path
    env: dict[str, str]

    def log(self, name: str) -> str:
        return (self.logs / f"{name}.log").read_text()

    def restart(self, name: str) -> None:
        """Blocking: the service again, on its port (the gateway's upstream)."""
        port = int(self.services[name].base.rsplit(":", 1)[1])
        log = self.logs / f"{name}.log"
        server = spawn_serve(self.logs / "data", self.env, log, "--service", name, port=port)
        self.services[name] = server
        wait_listening(server, log)


def _distinct_ports(n: int) -> list[int]:
    """`n` free ports, all different (free_port twice may give one port twice)."""
    with contextlib.ExitStack() as stack:
        sockets = [stack.enter_context(socket.socket()) for _ in range(n)]
        for sock in sockets:
            sock.bind(("127.0.0.1", 0))
        return [int(sock.getsockname()[1]) for sock in sockets]


@pytest.fixture(scope="module")
def topology(
    tmp_path_factory: pytest.TempPathFactory,
    postgres: PostgresForTests,
    redis_service: str | None,
) -> Iterator[Topology]:
    if redis_service is None:
        missing_service("no Redis: the services share cache and live events through it")
    redis.Redis.from_url(redis_service).flushdb()
    folder = tmp_path_factory.mktemp("gateway")
    with module_database(postgres) as url, module_exchange() as exchange:
        yield from _topology(folder, url, redis_service, exchange)


def _topology(folder: Path, url: str, redis_service: str, exchange: str) -> Iterator[Topology]:
    env = {
        **database_env(url),
        "PICSHARE_REDIS_URL": redis_service,
        # With a broker: each service consumes its own events, and the
        # notifications service writes every notification (picshare/notify.py).
        "PICSHARE_AMQP_URL": AMQP_URL,
        "PICSHARE_EVENTS_EXCHANGE": exchange,
        "PICSHARE_SERVER_INTERNAL_SECRET": SECRET,
        "PICSHARE_SERVER_TRUSTED_PROXIES": "127.0.0.1",
        "PICSHARE_SERVER_ACCESS_LOG_FORMAT": "json",
        # Every sign-up here comes from one address.
        "PICSHARE_RATELIMIT_LOGIN": "100/60s",
    }
    data_dir = folder / "data"  # one: local blobs written by photos, read by all
    ports = _distinct_ports(len(SERVICES) + 1)
    services = {
        name: spawn_serve(data_dir, env, folder / f"{name}.log", "--service", name, port=port)
        for name, port in zip(SERVICES, ports, strict=False)
    }
    upstreams = [a for name, s in services.items() for a in ("--upstream", f"{name}={s.base}")]
    gateway_env = {
        **env,
        "PICSHARE_GATEWAY_TIMEOUTS": f"web={WEB_TIMEOUT}",
        "PICSHARE_GATEWAY_BREAKER_FAILURES": str(BREAKER_FAILURES),
        "PICSHARE_GATEWAY_BREAKER_COOLDOWN": str(BREAKER_COOLDOWN),
    }
    gateway = spawn_serve(
        data_dir,
        gateway_env,
        folder / "gateway.log",
        *("--service", "gateway", *upstreams),
        port=ports[-1],
    )
    try:
        for name, server in [*services.items(), ("gateway", gateway)]:
            wait_listening(server, folder / f"{name}.log")
            assert server.proc.poll() is None, (folder / f"{name}.log").read_text()[-2000:]
        yield Topology(gateway, services, folder, env)
    finally:
        for server in [gateway, *services.values()]:
            if server.proc.poll() is None:
                os.kill(server.proc.pid, signal.SIGCONT)
            server.stop()


@pytest.fixture
async def http() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession(timeout=TIMEOUT) as session:
        yield session


async def _signup(http: aiohttp.ClientSession, base: str, name: str) -> tuple[str, dict[str, Any]]:
    body = {"username": name, "email": f"{name}@example.com", "password": "correct horse"}
    async with http.post(f"{base}/api/v1/auth/signup", json=body) as resp:
        assert resp.status == 201, await resp.text()
        signed = await resp.json()
        return signed["token"], signed["user"]


def _bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


async def _upload(http: aiohttp.ClientSession, base: str, token: str, caption: str) -> str:
    form = aiohttp.FormData()
    form.add_field("caption", caption)
    form.add_field("tags", "gateway")
    form.add_field(
        "file", io.BytesIO(jpeg_bytes(64, 48)), filename="a.jpg", content_type="image/jpeg"
    )
    # As curl sends a large file: `Expect: 100-continue` first.
    url = f"{base}/api/v1/upload"
    async with http.post(url, data=form, headers=_bearer(token), expect100=True) as resp:
        assert resp.status == 201, await resp.text()
        photo_id: str = (await resp.json())["id"]
    for _ in range(300):
        async with http.get(f"{base}/api/v1/photos/{photo_id}", headers=_bearer(token)) as resp:
            assert resp.status == 200, await resp.text()
            if (await resp.json())["status"] == "ready":
                return photo_id
        await asyncio.sleep(0.1)
    raise AssertionError(f"photo {photo_id} never became ready")


async def _until_sockets(http: aiohttp.ClientSession, base: str, n: int) -> None:
    """Until the service's hub holds `n` sockets (a subscription counts as one)."""
    async with asyncio.timeout(10):
        while True:
            async with http.get(f"{base}/metrics") as resp:
                for line in (await resp.text()).splitlines():
                    if line.startswith("picshare_ws_connections ") and float(line.split()[1]) >= n:
                        return
            await asyncio.sleep(0.05)


async def _problem(resp: aiohttp.ClientResponse, status: int) -> dict[str, Any]:
    assert resp.status == status, await resp.text()
    assert resp.headers["Content-Type"].startswith("application/problem+json")
    body: dict[str, Any] = await resp.json(content_type=None)
    assert body["status"] == status
    return body


async def test_the_core_journey_through_the_gateway(
    topology: Topology, http: aiohttp.ClientSession
) -> None:
    base = topology.gateway.base
    alice, alice_user = await _signup(http, base, "gw_alice")
    bob, _ = await _signup(http, base, "gw_bob")
    photo_id = await _upload(http, base, alice, "sunset over the gateway")
    # The media streams back through the gateway, bytes intact.
    async with http.get(f"{base}/api/v1/photos/{photo_id}", headers=_bearer(alice)) as resp:
        thumb = (await resp.json())["urls"]["thumb"]
    async with http.get(f"{base}{thumb}") as resp:
        assert resp.status == 200
        assert (await resp.read())[:2] == b"\xff\xd8"

    ws_base = base.replace("http://", "ws://")
    async with (
        http.ws_connect(f"{ws_base}/ws", headers=_bearer(alice)) as ws,
        http.ws_connect(
            f"{ws_base}/graphql", headers=_bearer(alice), protocols=["graphql-transport-ws"]
        ) as gql,
    ):
        await ws.send_str(json.dumps({"type": "ping"}))
        assert json.loads((await ws.receive(timeout=10)).data) == {"type": "pong"}
        assert gql.protocol == "graphql-transport-ws"
        await gql.send_json({"type": "connection_init"})
        assert (await gql.receive_json(timeout=10))["type"] == "connection_ack"
        await gql.send_json({"id": "1", "type": "subscribe", "payload": {"query": SUBSCRIBE}})
        await _until_sockets(http, topology.services["notifications"].base, 2)
        async with http.put(f"{base}/api/v1/photos/{photo_id}/like", headers=_bearer(bob)) as r:
            assert r.status == 200, await r.text()
            assert (await r.json())["liked"] is True
        event = json.loads((await ws.receive(timeout=15)).data)
        assert event["type"] == "notification"
        assert event["kind"] == "like"
        assert event["actor"]["username"] == "gw_bob"
        message = await gql.receive_json(timeout=15)
        assert message["type"] == "next", message
        assert message["payload"]["data"]["notifications"]["kind"] == "like"

    async with http.get(f"{base}/api/v1/notifications", headers=_bearer(alice)) as resp:
        assert resp.status == 200
        assert [n["kind"] for n in (await resp.json())["items"]] == ["like"]
    async with http.get(f"{base}/api/v1/search", params={"q": "gw_alice"}) as resp:
        assert resp.status == 200, await resp.text()
        found = await resp.json()
        assert [u["username"] for u in found["users"]] == ["gw_alice"]
    async with http.get(f"{base}/api/v1/me", headers=_bearer(alice)) as resp:
        assert (await resp.json())["id"] == alice_user["id"]
    # A page from the web service, with its session cookie, through the gateway.
    async with http.get(f"{base}/u/gw_alice", headers={"Accept": "text/html"}) as resp:
        assert resp.status == 200
        assert "gw_alice" in await resp.text()
        assert "picshare_session" in resp.cookies or resp.headers.get("Set-Cookie")
    # What no route matches, the gateway answers itself (an error page for a browser).
    async with http.get(f"{base}/no/such/page", headers={"Accept": "text/html"}) as resp:
        assert resp.status == 404
        assert "/static/app.css?v=" in await resp.text()
    # Each route went to its own process: the like to photos, the list to notifications.
    await asyncio.sleep(0.3)  # the access logs flush every 0.1 s
    assert "/api/v1/photos/" in topology.log("photos")
    assert "/api/v1/notifications" in topology.log("notifications")
    assert "/api/v1/notifications" not in topology.log("photos")
    assert "/api/v1/search" in topology.log("search")


async def _comment_notes(db: asyncpg.Connection, user_id: str) -> int:
    # Comments' notifications, unlike follows' and likes', have no unique
    # key: only the consumer's record of the event keeps a repeat out.
    value = await db.fetchval(
        "SELECT count(*) FROM notifications WHERE user_id = $1 AND kind = 'comment'", int(user_id)
    )
    return int(value)


async def test_the_notifications_service_writes_notifications_from_events(
    topology: Topology, http: aiohttp.ClientSession
) -> None:
    """A comment (photos') succeeds with the notifications service down; its
    notification is written once that service is back, from the event, and
    a redelivery of the event writes nothing twice."""
    base = topology.gateway.base
    nora_token, nora = await _signup(http, base, "gw_nora")
    ned, _ = await _signup(http, base, "gw_ned")
    photo_id = await _upload(http, base, nora_token, "notes")
    db = await asyncpg.connect(topology.env["PICSHARE_DATABASE_URL"])
    try:
        topology.services["notifications"].stop()
        try:
            url = f"{base}/api/v1/photos/{photo_id}/comments"
            async with http.post(url, json={"text": "lovely"}, headers=_bearer(ned)) as r:
                assert r.status == 201, await r.text()
            # Not in the comment's transaction: the event waits in the queue.
            await asyncio.sleep(0.5)
            assert await _comment_notes(db, nora["id"]) == 0
        finally:
            await asyncio.to_thread(topology.restart, "notifications")
        async with asyncio.timeout(15):
            while await _comment_notes(db, nora["id"]) == 0:
                await asyncio.sleep(0.1)
        row = await db.fetchrow(
            "SELECT o.id, o.type, o.data, o.created_at FROM outbox o "
            "JOIN processed_events p ON p.event_id = o.id AND p.consumer = 'notifications' "
            "WHERE o.type = $1 AND o.data::text LIKE $2",
            NOTIFICATIONS_CHANGED,
            f'%"user_id": {nora["id"]}%',
        )
        assert row is not None  # the consumer recorded the event it wrote it from
        # The same event again, as the broker would redeliver it.
        connection = await aio_pika.connect(AMQP_URL, timeout=5)
        async with connection:
            channel = await connection.channel()
            queue = f"{topology.env['PICSHARE_EVENTS_EXCHANGE']}.notifications"
            body = {
                "id": str(row["id"]),
                "type": row["type"],
                "timestamp": row["created_at"].isoformat(),
                "data": json.loads(row["data"]),
            }
            await channel.default_exchange.publish(
                aio_pika.Message(json.dumps(body).encode(), message_id=str(row["id"])),
                routing_key=queue,
            )
            async with asyncio.timeout(10):
                while True:
                    declared = await channel.declare_queue(queue, passive=True)
                    if not declared.declaration_result.message_count:
                        break
                    await asyncio.sleep(0.1)
        await asyncio.sleep(0.5)  # taken: handled and acknowledged by now
        assert await _comment_notes(db, nora["id"]) == 1
    finally:
        await db.close()
    async with http.get(f"{base}/api/v1/notifications", headers=_bearer(nora_token)) as resp:
        assert resp.status == 200
        kinds = [n["kind"] for n in (await resp.json())["items"]]
        assert kinds == ["comment"]


async def test_idempotency_keys_and_rate_limits_are_the_gateways(
    topology: Topology, http: aiohttp.ClientSession
) -> None:
    base = topology.gateway.base
    token, _ = await _signup(http, base, "gw_erin")
    photo_id = await _upload(http, base, token, "once")
    headers = {**_bearer(token), "Idempotency-Key": "comment-1"}
    answers = []
    for _ in range(2):
        url = f"{base}/api/v1/photos/{photo_id}/comments"
        async with http.post(url, json={"text": "just once"}, headers=headers) as resp:
            assert resp.status == 201, await resp.text()
            answers.append((await resp.json(), resp.headers.get("Idempotent-Replayed")))
            assert resp.headers["RateLimit-Policy"]  # the gateway's limiter decided
    assert answers[0][0] == answers[1][0]
    assert [replayed for _, replayed in answers] == [None, "true"]
    async with http.get(f"{base}/api/v1/photos/{photo_id}/comments") as resp:
        assert [c["text"] for c in (await resp.json())["items"]] == ["just once"]


async def test_a_request_body_streams_through_the_gateway(
    topology: Topology, http: aiohttp.ClientSession
) -> None:
    """The service answers an upload whose first part is wrong while the rest
    of the body has not been sent: the gateway held none of it back."""
    token, _ = await _signup(http, topology.gateway.base, "gw_frank")
    answered = asyncio.Event()

    async def body() -> AsyncIterator[bytes]:
        yield b'--B\r\nContent-Disposition: form-data; name="bogus"\r\n\r\n' + b"x" * 4096
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(answered.wait(), 10)
        yield b"\r\n--B--\r\n"

    headers = {**_bearer(token), "Content-Type": "multipart/form-data; boundary=B"}
    started = asyncio.get_running_loop().time()
    url = f"{topology.gateway.base}/api/v1/upload"
    async with http.post(url, data=body(), headers=headers) as resp:
        waited = asyncio.get_running_loop().time() - started
        answered.set()
        problem = await _problem(resp, 400)
    assert problem["errors"][0]["field"] == "bogus"
    assert waited < 5, waited


async def test_a_browser_session_through_the_gateway(topology: Topology) -> None:
    """Sign up on the web service's form; the gateway then knows the session
    cookie, and holds cookie-authenticated API writes to the CSRF rule."""
    base = topology.gateway.base
    html = {"Accept": "text/html"}
    jar = aiohttp.CookieJar(unsafe=True)  # cookies for 127.0.0.1
    async with aiohttp.ClientSession(timeout=TIMEOUT, cookie_jar=jar) as browser:
        async with browser.get(f"{base}/signup", headers=html) as resp:
            match = re.search(r'name="csrf_token" value="([^"]+)"', await resp.text())
            assert match, "no CSRF token on the sign-up form"
        form = {
            "csrf_token": match[1],
            "username": "gw_grace",
            "email": "gw_grace@example.com",
            "password": "correct horse",
        }
        async with browser.post(
            f"{base}/signup", data=form, headers=html, allow_redirects=False
        ) as resp:
            assert resp.status == 303, await resp.text()
        async with browser.get(f"{base}/settings", headers=html) as resp:
            assert resp.status == 200
            page = await resp.text()
            assert "gw_grace" in page
            signed_in = re.search(r'name="csrf_token" value="([^"]+)"', page)
            assert signed_in, "no CSRF token on the settings page"
        async with browser.get(f"{base}/api/v1/me") as resp:
            assert (await resp.json())["username"] == "gw_grace"
        async with browser.patch(f"{base}/api/v1/me", json={"bio": "x"}) as resp:
            body = await _problem(resp, 403)
            assert body["errors"][0]["field"] == "X-CSRF-Token"
        async with browser.patch(
            f"{base}/api/v1/me", json={"bio": "hi"}, headers={"X-CSRF-Token": signed_in[1]}
        ) as resp:
            assert resp.status == 200, await resp.text()
            assert (await resp.json())["bio"] == "hi"


async def test_a_service_believes_only_the_gateways_token(
    topology: Topology, http: aiohttp.ClientSession
) -> None:
    token, user = await _signup(http, topology.gateway.base, "gw_carol")
    notifications = topology.services["notifications"].base
    path = "/api/v1/notifications"
    # The bearer token straight to the service: not believed (anonymous here).
    async with http.get(f"{notifications}{path}", headers=_bearer(token)) as resp:
        await _problem(resp, 401)
    forged = InternalTokens("not-the-shared-secret-at-all").sign(
        user_id=int(user["id"]), auth_kind="bearer", request_id="x", method="GET", path=path
    )
    async with http.get(f"{notifications}{path}", headers={HEADER: forged}) as resp:
        body = await _problem(resp, 401)
        assert "signature" in body["detail"]
    expired = InternalTokens(SECRET, ttl=-1).sign(
        user_id=int(user["id"]), auth_kind="bearer", request_id="x", method="GET", path=path
    )
    async with http.get(f"{notifications}{path}", headers={HEADER: expired}) as resp:
        assert "expired" in (await _problem(resp, 401))["detail"]
    other_path = InternalTokens(SECRET).sign(
        user_id=int(user["id"]), auth_kind="bearer", request_id="x", method="GET", path="/ws"
    )
    async with http.get(f"{notifications}{path}", headers={HEADER: other_path}) as resp:
        await _problem(resp, 401)
    # The gateway strips a token a client sends: a forged one changes nothing there.
    headers = {**_bearer(token), HEADER: forged}
    async with http.get(f"{topology.gateway.base}{path}", headers=headers) as resp:
        assert resp.status == 200, await resp.text()


async def test_the_request_id_is_carried_through_every_hop(
    topology: Topology, http: aiohttp.ClientSession
) -> None:
    token, _ = await _signup(http, topology.gateway.base, "gw_dave")
    rid = "trace-gw-0001"
    headers = {**_bearer(token), "X-Request-ID": rid}
    async with http.get(f"{topology.gateway.base}/api/v1/me", headers=headers) as resp:
        assert resp.status == 200
        assert resp.headers["X-Request-ID"] == rid
        # The service's timings, then the gateway's whole time.
        timing = resp.headers["Server-Timing"]
        assert "total;dur=" in timing and ", gateway;dur=" in timing
    # Without one, the gateway's id is the service's too.
    async with http.get(f"{topology.gateway.base}/api/v1/me", headers=_bearer(token)) as resp:
        made = resp.headers["X-Request-ID"]
    await asyncio.sleep(0.3)  # the access logs flush every 0.1 s
    for name in ("gateway", "auth"):
        ids = [
            json.loads(line)["request_id"]
            for line in topology.log(name).splitlines()
            if line.startswith("{")
        ]
        assert rid in ids and made in ids, name


async def test_readyz_reports_each_upstream(
    topology: Topology, http: aiohttp.ClientSession
) -> None:
    async with http.get(f"{topology.gateway.base}/readyz") as resp:
        assert resp.status == 200, await resp.text()
        checks = (await resp.json())["checks"]
        # Each service, and the gateway's own database and Redis.
        own = {"database": "ok", "redis": "ok"}
        assert checks == {**{f"upstream:{name}": "ok" for name in SERVICES}, **own}


async def test_a_frozen_service_times_out_as_504(
    topology: Topology, http: aiohttp.ClientSession
) -> None:
    web = topology.services["web"]
    os.kill(web.proc.pid, signal.SIGSTOP)
    try:
        async with http.get(f"{topology.gateway.base}/login") as resp:
            await _problem(resp, 504)
        # Other services answer meanwhile.
        async with http.get(f"{topology.gateway.base}/api/v1/photos") as resp:
            assert resp.status == 200
    finally:
        os.kill(web.proc.pid, signal.SIGCONT)
    async with http.get(f"{topology.gateway.base}/login") as resp:
        assert resp.status == 200


async def test_a_stopped_service_is_502_for_its_routes_only_then_the_breaker_opens(
    topology: Topology, http: aiohttp.ClientSession
) -> None:
    loop = asyncio.get_running_loop()
    topology.services["search"].stop()
    base = topology.gateway.base
    for i in range(BREAKER_FAILURES):
        rid = {"X-Request-ID": f"down-{i}"}
        async with http.get(f"{base}/api/v1/search", params={"q": "x"}, headers=rid) as resp:
            body = await _problem(resp, 502)
            assert "search" in body["detail"]
        async with http.get(f"{base}/api/v1/photos") as resp:
            assert resp.status == 200
    # The gateway's own log line says which request it was.
    assert "search unreachable" in topology.log("gateway")
    assert "request_id=down-0" in topology.log("gateway")
    opened = loop.time()
    # Open: refused at once, without trying, until the cooldown.
    async with http.get(f"{base}/api/v1/search", params={"q": "x"}) as resp:
        await _problem(resp, 503)
        assert 1 <= int(resp.headers["Retry-After"]) <= BREAKER_COOLDOWN
    async with http.get(f"{base}/readyz") as resp:
        assert resp.status == 503
        report = await resp.json()
        assert report["checks"]["upstream:search"].startswith("unreachable")
        assert report["checks"]["upstream:photos"] == "ok"
        assert report["breakers"]["search"] == "open"
    # The service back: after the cooldown, one trial request goes through
    # and closes the breaker.
    await asyncio.to_thread(topology.restart, "search")
    await asyncio.sleep(max(0.0, opened + BREAKER_COOLDOWN + 0.5 - loop.time()))
    async with http.get(f"{base}/api/v1/search", params={"q": "gw_alice"}) as resp:
        assert resp.status == 200, await resp.text()
    async with http.get(f"{base}/readyz") as resp:
        assert resp.status == 200, await resp.text()
        assert (await resp.json())["breakers"]["search"] == "closed"

"""Moderation (picshare/moderation.py) against a real receiver on 127.0.0.1:
every `photo.uploaded` reaches it signed (verified with the reference
Standard Webhooks library); its verdict in the answer or through the
callback decides whether the photo is shown; while it is down the photo
waits, never shown unmoderated."""

from __future__ import annotations

import asyncio
import itertools
from collections.abc import AsyncIterator, Callable
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient
from standardwebhooks.webhooks import Webhook

import tests.imaging as imaging
from picshare import keys, webhook_signature
from picshare.app import create_app
from tests.amqp_harness import AMQP_URL, amqp_exchange
from tests.conftest import AiohttpClient, bearer, make_settings, signup, upload, upload_ready
from tests.handlers.graphql.gqlclient import Gql, codes
from tests.servers import free_port, run_command

__all__ = ["amqp_exchange"]  # the fixture, used by name

Client = TestClient[Any, Any]
TOKEN = "moderation-token-0123456789"
PHOTO = "/api/v1/photos/{}"

# An answer of the receiver: (status, JSON body or None).
Answer = tuple[int, dict[str, Any] | None]


@dataclass
class Receiver:
    """The moderation service: answers each delivery with the next answer of
    `answers` (the last one repeats), after verifying its signature."""

    secret: str
    answers: list[Answer]
    port: int = field(default_factory=free_port)
    deliveries: list[dict[str, Any]] = field(default_factory=list)
    ids: list[str] = field(default_factory=list)
    runner: web.AppRunner | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/moderate"

    async def handle(self, request: web.Request) -> web.Response:
        body = await request.read()
        # A wrong signature raises: a 500, which PicShare retries, and no delivery recorded.
        event = Webhook(self.secret).verify(body, dict(request.headers))
        self.ids.append(request.headers["webhook-id"])
        self.deliveries.append(event)
        status, answer = self.answers[min(len(self.deliveries), len(self.answers)) - 1]
        if answer is None:
            return web.Response(status=status)
        return web.json_response(answer, status=status)

    async def start(self) -> None:
        app = web.Application()
        app.router.add_post("/moderate", self.handle)
        self.runner = web.AppRunner(app)
        await self.runner.setup()
        await web.TCPSite(self.runner, "127.0.0.1", self.port).start()

    async def stop(self) -> None:
        if self.runner is not None:
            await self.runner.cleanup()


Start = Callable[..., Any]


@pytest.fixture
async def moderated(
    tmp_path: Path,
    database_url: str,
    media_pool: ProcessPoolExecutor,
    aiohttp_client: AiohttpClient,
) -> AsyncIterator[Start]:
    """`await moderated(answers, listening=True, **jobs)`: a receiver and an
    app whose moderation URL is the receiver's."""
    receivers: list[Receiver] = []

    async def start(
        answers: list[Answer],
        *,
        listening: bool = True,
        events: dict[str, Any] | None = None,
        **jobs: Any,
    ) -> tuple[Client, Receiver]:
        receiver = Receiver(webhook_signature.new_secret(), answers)
        receivers.append(receiver)
        if listening:
            await receiver.start()
        settings = make_settings(
            tmp_path / "data",
            database_url,
            moderation={"url": receiver.url, "secret": receiver.secret, "token": TOKEN},
            jobs=jobs,
            events=events or {},
        )
        client: Client = await aiohttp_client(create_app(settings, media_pool=media_pool))
        return client, receiver

    yield start
    for receiver in receivers:
        await receiver.stop()


async def _until(check: Callable[[], Any], timeout: float = 20.0) -> Any:
    async with asyncio.timeout(timeout):
        while not (found := await check()):
            await asyncio.sleep(0.05)
    return found


async def _post(client: Client, token: str, *, caption: str = "", tags: str = "") -> str:
    resp = await upload(client, token, imaging.jpeg_bytes(48, 32), caption=caption, tags=tags)
    assert resp.status == 201, await resp.text()
    body = await resp.json()
    assert body["status"] == "processing"
    return str(body["id"])


async def _photo(client: Client, pid: str, token: str | None = None) -> tuple[int, Any]:
    resp = await client.get(PHOTO.format(pid), headers=bearer(token) if token else {})
    return resp.status, await resp.json()


async def _rendered(client: Client, pid: str, owner: str) -> dict[str, Any]:
    """The photo as its owner sees it, once its renditions exist."""

    async def check() -> dict[str, Any] | None:
        status, body = await _photo(client, pid, owner)
        assert status == 200
        return body if body["urls"]["large"] else None

    found: dict[str, Any] = await _until(check)
    return found


async def _status(client: Client, pid: str, owner: str, wanted: str) -> dict[str, Any]:
    async def check() -> dict[str, Any] | None:
        _, body = await _photo(client, pid, owner)
        return body if body["status"] == wanted else None

    found: dict[str, Any] = await _until(check)
    return found


async def _ready_events(client: Client, pid: str) -> int:
    count = 0
    for db in client.app[keys.DATABASES].everything():
        count += await db.primary.pool.fetchval(
            "SELECT count(*) FROM outbox WHERE type = 'photo.ready' AND data->>'photo_id' = $1",
            pid,
        )
    return int(count)


async def _verdict(client: Client, pid: str, body: Any, token: str | None = TOKEN) -> Any:
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    return await client.post(f"/api/v1/moderation/{pid}", json=body, headers=headers)


async def test_approved_in_the_answer_the_photo_is_shown_once(moderated: Start) -> None:
    client, receiver = await moderated([(200, {"verdict": "approve"})])
    alice = await signup(client, "alice")
    pids = [await _post(client, alice, caption=f"sunset {i}") for i in range(3)]
    for pid in pids:
        assert (await _status(client, pid, alice, "ready"))["urls"]["large"]
        status, body = await _photo(client, pid)
        assert (status, body["status"]) == (200, "ready")
    # One signed delivery per upload: the event, its id as webhook-id.
    assert sorted(d["data"]["photo_id"] for d in receiver.deliveries) == sorted(pids)
    assert all(d["type"] == "photo.uploaded" for d in receiver.deliveries)
    assert receiver.ids == [d["id"] for d in receiver.deliveries]
    public = await (await client.get("/api/v1/photos")).json()
    assert set(pids) <= {p["id"] for p in public["items"]}
    for pid in pids:
        assert await _ready_events(client, pid) == 1


async def test_a_rejected_photo_is_its_owners_alone_on_every_surface(moderated: Start) -> None:
    client, receiver = await moderated([(200, {"verdict": "reject"})])
    alice = await signup(client, "alice")
    bob = await signup(client, "bob")
    assert (await client.put("/api/v1/users/alice/follow", headers=bearer(bob))).status == 200
    pid = await _post(client, alice, caption="zebracrossing", tags="stripes")
    mine = await _status(client, pid, alice, "rejected")
    mine = await _rendered(client, pid, alice)  # rendered all the same: its owner sees it
    assert mine["status"] == "rejected"
    # The REST photo and its page: 404 to anyone else.
    for token in (bob, None):
        assert (await _photo(client, pid, token))[0] == 404
    assert (await client.get(f"/p/{pid}")).status == 404
    # Every list, feed, tag and search, as bob (who follows alice) and anonymous.
    surfaces = [
        "/api/v1/photos",
        "/api/v1/users/alice/photos",
        "/api/v1/tags/stripes/photos",
        "/api/v1/feed",
    ]
    for path in surfaces:
        for headers in (bearer(bob), {}):
            if path.endswith("feed") and not headers:
                continue
            resp = await client.get(path, headers=headers)
            assert resp.status == 200, path
            assert pid not in {p["id"] for p in (await resp.json())["items"]}, path
    found = await (await client.get("/api/v1/search?q=zebracrossing", headers=bearer(bob))).json()
    assert found["photos"] == []
    # Media: the owner's URLs are signed and work; the same files unsigned are refused.
    large = mine["urls"]["large"]
    assert "sig=" in large
    assert (await client.get(large)).status == 200
    assert (await client.get(urlsplit(large).path)).status == 404
    # GraphQL: not found for others.
    query = "query($id: ID!) { photo(id: $id) { id status } }"
    assert codes(await Gql(client, bob).errors(query, id=pid)) == ["NOT_FOUND"]
    assert (await Gql(client, alice)(query, id=pid))["photo"]["status"] == "rejected"
    assert await _ready_events(client, pid) == 0
    assert len(receiver.deliveries) == 1


async def test_a_later_verdict_through_the_callback_latest_wins(moderated: Start) -> None:
    client, receiver = await moderated([(202, None)])  # accepted, verdict later
    alice = await signup(client, "alice")
    pid = await _post(client, alice)
    await _rendered(client, pid, alice)
    await _until(lambda: _at_least(receiver, 1))
    await asyncio.sleep(0.3)
    assert (await _photo(client, pid, alice))[1]["status"] == "processing"
    assert (await _photo(client, pid))[0] == 404

    # The callback's refusals.
    resp = await _verdict(client, pid, {"verdict": "approve"}, token=None)
    assert resp.status == 401
    assert resp.content_type == "application/problem+json"
    basic = {"Authorization": "Basic dXNlcjpwYXNz"}
    resp = await client.post(
        f"/api/v1/moderation/{pid}", json={"verdict": "approve"}, headers=basic
    )
    assert resp.status == 401
    user_token = await _verdict(client, pid, {"verdict": "approve"}, token=alice)
    assert user_token.status == 403  # a user's token is not the moderation token
    assert (await _verdict(client, pid, {"verdict": "approve"}, token=TOKEN + "x")).status == 403
    for bad in ({"verdict": "maybe"}, {"verdict": None}, {}):
        resp = await _verdict(client, pid, bad)
        assert resp.status == 400
        assert [e["field"] for e in (await resp.json())["errors"]] == ["verdict"]
    assert (await _verdict(client, "123456789", {"verdict": "approve"})).status == 404
    assert (await _verdict(client, "nope", {"verdict": "approve"})).status == 404
    assert (await _photo(client, pid, alice))[1]["status"] == "processing"

    resp = await _verdict(client, pid, {"verdict": "approve"})
    assert resp.status == 200
    assert await resp.json() == {"id": pid, "verdict": "approve", "status": "ready"}
    assert (await _photo(client, pid))[1]["status"] == "ready"
    # Taken down by a later rejection, and put back by a later approval.
    resp = await _verdict(client, pid, {"verdict": "reject"})
    assert (await resp.json())["status"] == "rejected"
    assert (await _photo(client, pid))[0] == 404
    assert (await _photo(client, pid, alice))[1]["status"] == "rejected"
    resp = await _verdict(client, pid, {"verdict": "approve"})
    assert (await resp.json())["status"] == "ready"
    assert (await _photo(client, pid))[0] == 200
    assert await _ready_events(client, pid) == 1  # photo.ready once, however often shown
    assert len(receiver.deliveries) == 1


async def _at_least(receiver: Receiver, count: int) -> bool:
    return len(receiver.deliveries) >= count


async def test_a_verdict_before_the_renditions_waits_for_them(moderated: Start) -> None:
    client, receiver = await moderated([(202, None)], enabled=False)  # jobs held back
    alice = await signup(client, "alice")
    approved = await _post(client, alice)
    rejected = await _post(client, alice)
    resp = await _verdict(client, approved, {"verdict": "approve"})
    assert (await resp.json())["status"] == "processing"  # no renditions yet
    resp = await _verdict(client, rejected, {"verdict": "reject"})
    assert (await resp.json())["status"] == "rejected"
    assert (await _photo(client, approved))[0] == 404
    await client.app[keys.JOBS].start()
    assert (await _status(client, approved, alice, "ready"))["urls"]["large"]
    assert (await _photo(client, approved))[0] == 200
    assert (await _rendered(client, rejected, alice))["status"] == "rejected"
    assert (await _photo(client, rejected))[0] == 404
    assert await _ready_events(client, approved) == 1
    assert await _ready_events(client, rejected) == 0
    # Both had their verdict before the delivery ran: nothing was sent.
    await asyncio.sleep(0.5)
    assert receiver.deliveries == []


async def test_while_the_service_is_down_the_photo_waits_then_is_shown(moderated: Start) -> None:
    # Refused first (nothing listens), then 503 twice, then an approval.
    client, receiver = await moderated(
        [(503, None), (500, {"error": "busy"}), (200, {"verdict": "approve"})], listening=False
    )
    alice = await signup(client, "alice")
    pid = await _post(client, alice)
    await _rendered(client, pid, alice)

    async def refused_once() -> bool:
        for db in client.app[keys.DATABASES].everything():
            error = await db.primary.pool.fetchval(
                "SELECT last_error FROM jobs WHERE kind = 'event:moderation'"
            )
            if error:
                return True
        return False

    await _until(refused_once)
    await receiver.start()
    watched: list[int] = []
    for _ in itertools.count():
        _, mine = await _photo(client, pid, alice)
        watched.append((await _photo(client, pid))[0])
        if mine["status"] != "processing":
            break
        await asyncio.sleep(0.1)
    assert mine["status"] == "ready"
    assert set(watched[:-1]) <= {404}  # never shown while it waited
    assert (await _photo(client, pid))[0] == 200
    assert len(receiver.deliveries) == 3
    assert len(set(receiver.ids)) == 1  # the same webhook-id on every attempt


async def test_retries_spent_the_photo_stays_hidden_and_the_event_is_dead(
    moderated: Start, database_url: str
) -> None:
    client, receiver = await moderated([(500, None)], max_attempts=2)
    alice = await signup(client, "alice")
    pid = await _post(client, alice)
    await _rendered(client, pid, alice)
    relay = client.app[keys.RELAY]

    async def dead() -> list[Any]:
        return [d for d in await relay.dead() if d.consumer == "moderation"]

    [letter] = await _until(dead)
    assert letter.event.data["photo_id"] == pid
    assert "500" in letter.error
    assert (await _photo(client, pid, alice))[1]["status"] == "processing"
    assert (await _photo(client, pid))[0] == 404
    listed = await asyncio.to_thread(run_command, ["events", "dead"], database_url)
    assert listed.returncode == 0, listed.stderr
    assert str(letter.event.id) in listed.stdout and "moderation" in listed.stdout
    # The service back, the operator replays it.
    receiver.answers = [(200, {"verdict": "approve"})]
    receiver.deliveries.clear()
    assert (
        await relay.retry(None) == 1
    )  # `run.py events retry --all` (tests/picshare/test_outbox.py)
    await _status(client, pid, alice, "ready")
    assert (await _photo(client, pid))[0] == 200


async def test_through_rabbitmq_a_failed_delivery_is_retried(
    moderated: Start, amqp_exchange: str
) -> None:
    events = {"amqp_url": AMQP_URL, "exchange": amqp_exchange, "relay_interval": 0.2}
    events |= {"retry_base": 0.05, "max_attempts": 3, "timeout": 3.0}
    client, receiver = await moderated([(503, None), (200, {"verdict": "approve"})], events=events)
    alice = await signup(client, "alice")
    pid = await _post(client, alice)
    await _status(client, pid, alice, "ready")
    assert (await _photo(client, pid))[0] == 200
    assert len(receiver.deliveries) == 2 and len(set(receiver.ids)) == 1
    assert await _ready_events(client, pid) == 1


async def test_without_a_moderation_url_photos_are_ready_as_before(client: Client) -> None:
    alice = await signup(client, "alice")
    photo = await upload_ready(client, alice, imaging.jpeg_bytes(40, 30))
    assert photo["status"] == "ready"
    assert (await _photo(client, photo["id"]))[0] == 200
    assert await _ready_events(client, photo["id"]) == 1
    for db in client.app[keys.DATABASES].everything():
        queued = await db.primary.pool.fetchval(
            "SELECT count(*) FROM jobs WHERE kind = 'event:moderation'"
        )
        assert queued == 0  # no consumer, no delivery job
    # No token configured: no bearer token is the moderation token.
    assert (await _verdict(client, photo["id"], {"verdict": "reject"})).status == 403
    assert (await _photo(client, photo["id"]))[0] == 200

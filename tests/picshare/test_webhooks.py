"""Webhook deliveries (picshare/webhooks.py) to real receivers on 127.0.0.1,
signatures checked with the `standardwebhooks` package: a user's events
reach that user's endpoints only; the same webhook-id on every retry; 410
disables; Retry-After is the next delay; a slow receiver times out; the SSRF
guard refuses at delivery what it would refuse at registration; deliveries
survive the process that queued them."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path
from typing import Any

from aiohttp.test_utils import TestClient

import tests.imaging as imaging
from picshare import keys
from picshare.app import create_app
from picshare.config import Settings
from picshare.domain_events import DomainEvent
from picshare.webhooks import CONSUMER, msg_id
from storage import webhooks_repo
from tests.amqp_harness import AMQP_URL, amqp_exchange
from tests.conftest import AiohttpClient, bearer, make_settings, signup, upload_ready
from tests.webhook_receiver import Answer, receiver

__all__ = ["amqp_exchange"]  # the fixture, used by name
Client = TestClient[Any, Any]
FAST = {"allow_loopback": True, "retry_scale": 0.0002, "timeout": 2.0}


def _settings(tmp_path: Path, database_url: str, **webhooks: Any) -> Settings:
    return make_settings(tmp_path / "data", database_url, webhooks={**FAST, **webhooks})


async def _client(
    settings: Settings, media_pool: ProcessPoolExecutor, aiohttp_client: AiohttpClient
) -> Client:
    client: Client = await aiohttp_client(create_app(settings, media_pool=media_pool))
    return client


async def _register(client: Client, token: str, url: str, events: list[str]) -> dict[str, Any]:
    resp = await client.post(
        "/api/v1/webhooks", json={"url": url, "events": events}, headers=bearer(token)
    )
    assert resp.status == 201, await resp.text()
    body: dict[str, Any] = await resp.json()
    return body


async def _log(client: Client, token: str, endpoint_id: str) -> list[dict[str, Any]]:
    resp = await client.get(f"/api/v1/webhooks/{endpoint_id}/deliveries", headers=bearer(token))
    assert resp.status == 200, await resp.text()
    items: list[dict[str, Any]] = (await resp.json())["items"]
    return sorted(items, key=lambda d: d["attempt"])


async def _until(check: Callable[[], Awaitable[bool]], timeout: float = 10.0) -> None:
    async with asyncio.timeout(timeout):
        while not await check():
            await asyncio.sleep(0.05)


async def _processed(client: Client, event_type: str) -> int:
    """How many events of the type the webhooks consumer has handled (its
    durable jobs, with the in-process relay, done)."""
    total = 0
    for db in client.app[keys.DATABASES].everything():
        total += await db.primary.pool.fetchval(
            "SELECT count(*) FROM jobs WHERE kind = $1 AND status = 'done' "
            "AND payload -> 'event' ->> 'type' = $2",
            f"event:{CONSUMER}",
            event_type,
        )
    return total


async def test_a_like_reaches_the_photo_owners_endpoint_only_signed(
    tmp_path: Path,
    database_url: str,
    media_pool: ProcessPoolExecutor,
    aiohttp_client: AiohttpClient,
) -> None:
    client = await _client(_settings(tmp_path, database_url), media_pool, aiohttp_client)
    alice, bob = await signup(client, "alice"), await signup(client, "bob")
    async with receiver() as alices, receiver() as bobs:
        mine = await _register(client, alice, alices.url, ["photo.liked", "comment.created"])
        assert mine["secret"].startswith("whsec_")
        await _register(client, bob, bobs.url, ["photo.liked"])
        photo = await upload_ready(client, alice, imaging.jpeg_bytes(24, 24))
        assert (await client.put(f"/api/v1/photos/{photo['id']}/like", headers=bearer(bob))).ok

        [got] = await alices.wait_for(1)
        [body] = alices.verified(mine["secret"])
        assert body["type"] == "photo.liked"
        assert body["data"]["photo_id"] == photo["id"]  # type: ignore[index]
        assert body["data"]["user"]["username"] == "bob"  # type: ignore[index]
        assert got.headers["webhook-id"] == msg_id(int(str(body["id"])), int(mine["id"]))
        # Bob's endpoint takes likes too, but this like is on Alice's photo.
        await _until(lambda: _processed_like(client))
        await asyncio.sleep(0.3)
        assert bobs.received == []
        [entry] = await _log(client, alice, mine["id"])
        assert entry["status"] == 200 and entry["attempt"] == 1
        assert entry["webhook_id"] == got.headers["webhook-id"]
        # The event delivered to the consumer again (a broker's redelivery):
        # nothing more is queued or sent.
        await client.app[keys.WEBHOOKS].consumer().handle(DomainEvent.from_json(body))
        await asyncio.sleep(0.5)
        assert len(alices.received) == 1


async def _processed_like(client: Client) -> bool:
    return await _processed(client, "photo.liked") >= 1


async def test_failed_attempts_are_retried_with_the_same_webhook_id(
    tmp_path: Path,
    database_url: str,
    media_pool: ProcessPoolExecutor,
    aiohttp_client: AiohttpClient,
) -> None:
    client = await _client(_settings(tmp_path, database_url), media_pool, aiohttp_client)
    alice, bob = await signup(client, "alice"), await signup(client, "bob")
    async with receiver([Answer(500), Answer(502)]) as hooks:
        endpoint = await _register(client, alice, hooks.url, ["user.followed"])
        assert (await client.put("/api/v1/users/alice/follow", headers=bearer(bob))).ok
        received = await hooks.wait_for(3)
        assert len({r.headers["webhook-id"] for r in received}) == 1
        # Each attempt signed anew (its own timestamp), all valid.
        assert {b["type"] for b in hooks.verified(endpoint["secret"])} == {"user.followed"}

        async def logged() -> bool:
            return len(await _log(client, alice, endpoint["id"])) == 3

        await _until(logged)
        log = await _log(client, alice, endpoint["id"])
        assert [d["status"] for d in log] == [500, 502, 200]
        assert [d["attempt"] for d in log] == [1, 2, 3]
        assert log[0]["next_attempt_at"] is not None and log[2]["next_attempt_at"] is None
        await asyncio.sleep(0.5)
        assert len(hooks.received) == 3  # delivered: no more attempts


async def test_410_disables_the_endpoint(
    tmp_path: Path,
    database_url: str,
    media_pool: ProcessPoolExecutor,
    aiohttp_client: AiohttpClient,
) -> None:
    client = await _client(_settings(tmp_path, database_url), media_pool, aiohttp_client)
    alice, bob, carol = [await signup(client, n) for n in ("alice", "bob", "carol")]
    async with receiver([Answer(410)]) as hooks:
        endpoint = await _register(client, alice, hooks.url, ["user.followed"])
        assert (await client.put("/api/v1/users/alice/follow", headers=bearer(bob))).ok
        await hooks.wait_for(1)

        async def disabled() -> bool:
            resp = await client.get("/api/v1/webhooks", headers=bearer(alice))
            return bool((await resp.json())["items"][0]["disabled"])

        await _until(disabled)
        assert (await client.put("/api/v1/users/alice/follow", headers=bearer(carol))).ok

        async def both_processed() -> bool:
            return await _processed(client, "user.followed") == 2

        await _until(both_processed)
        await asyncio.sleep(0.5)
        assert len(hooks.received) == 1  # neither retried nor sent the next event
        [entry] = await _log(client, alice, endpoint["id"])
        assert entry["status"] == 410 and entry["next_attempt_at"] is None


async def test_retry_after_is_the_next_delay(
    tmp_path: Path,
    database_url: str,
    media_pool: ProcessPoolExecutor,
    aiohttp_client: AiohttpClient,
) -> None:
    client = await _client(_settings(tmp_path, database_url), media_pool, aiohttp_client)
    alice, bob = await signup(client, "alice"), await signup(client, "bob")
    # The schedule's next delay is 1 ms here (5 s x 0.0002): Retry-After wins.
    async with receiver([Answer(429, {"Retry-After": "2"})]) as hooks:
        endpoint = await _register(client, alice, hooks.url, ["user.followed"])
        assert (await client.put("/api/v1/users/alice/follow", headers=bearer(bob))).ok
        first, second = await hooks.wait_for(2)
        assert second.at - first.at >= 1.9
        assert first.headers["webhook-id"] == second.headers["webhook-id"]
        log = await _log(client, alice, endpoint["id"])
        assert log[0]["status"] == 429


async def test_a_slow_receiver_times_out_and_is_tried_again(
    tmp_path: Path,
    database_url: str,
    media_pool: ProcessPoolExecutor,
    aiohttp_client: AiohttpClient,
) -> None:
    settings = _settings(tmp_path, database_url, timeout=0.5)
    client = await _client(settings, media_pool, aiohttp_client)
    alice, bob = await signup(client, "alice"), await signup(client, "bob")
    async with receiver([Answer(200, delay=1.5)]) as hooks:
        endpoint = await _register(client, alice, hooks.url, ["user.followed"])
        assert (await client.put("/api/v1/users/alice/follow", headers=bearer(bob))).ok
        await hooks.wait_for(2)

        async def logged() -> bool:
            return len(await _log(client, alice, endpoint["id"])) == 2

        await _until(logged)
        first, second = await _log(client, alice, endpoint["id"])
        assert first["status"] is None and "Timeout" in first["error"]
        assert 400 <= first["duration_ms"] < 2000
        assert second["status"] == 200


async def test_deliveries_wait_in_the_database_for_a_process_to_send_them(
    tmp_path: Path,
    database_url: str,
    media_pool: ProcessPoolExecutor,
    aiohttp_client: AiohttpClient,
) -> None:
    """The process that queued a delivery runs no jobs (as if it crashed
    before sending); another one, started later, delivers it. That one has
    loopback refused: what was allowed at registration is checked again at
    delivery, for an IP literal and for a name."""
    queued = _settings(tmp_path, database_url, allow_loopback=True)
    web = await _client(queued.replace(jobs={"enabled": False}), media_pool, aiohttp_client)
    alice, bob = await signup(web, "alice"), await signup(web, "bob")
    async with receiver() as hooks:
        good = await _register(web, alice, hooks.url, ["user.followed"])
        by_name = await _register(
            web, alice, hooks.url.replace("127.0.0.1", "localhost"), ["user.followed"]
        )
        v6 = await _register(web, alice, f"http://[::1]:{hooks.port}/hook", ["user.followed"])
        # Never registrable (the API refuses them): written as if DNS had
        # changed under a registered name.
        alice_id = int((await (await web.get("/api/v1/me", headers=bearer(alice))).json())["id"])
        db = web.app[keys.DATABASES].of_user(alice_id)
        async with db.transaction() as conn:
            private = [
                await webhooks_repo.add_endpoint(
                    conn, user_id=alice_id, url=url, events=["user.followed"], secret=good["secret"]
                )
                for url in ("http://10.0.0.1/hook", "http://169.254.169.254/latest/meta-data")
            ]
        assert (await web.put("/api/v1/users/alice/follow", headers=bearer(bob))).ok
        await asyncio.sleep(0.5)
        assert hooks.received == []  # nobody runs the jobs yet

        # Loopback allowed: the receiver gets it, from the other process.
        sender = await _client(queued, media_pool, aiohttp_client)
        await hooks.wait_for(3)
        await asyncio.sleep(0.3)
        assert len(hooks.received) == 3  # good, by_name and v6, once each
        private_log = await _log(web, alice, str(private[0].id))
        assert private_log and "refused" in private_log[0]["error"]
        assert "private address" in private_log[0]["error"]
        metadata_log = await _log(web, alice, str(private[1].id))
        assert "link-local" in metadata_log[0]["error"]
        await sender.close()

        # Loopback refused in the next process: the same endpoints are refused.
        refusing = await _client(
            _settings(tmp_path, database_url, allow_loopback=False),
            media_pool,
            aiohttp_client,
        )
        carol = await signup(refusing, "carol")
        assert (await refusing.put("/api/v1/users/alice/follow", headers=bearer(carol))).ok

        async def refused_everywhere() -> bool:
            for endpoint in (good, by_name, v6):
                log = await _log(refusing, alice, endpoint["id"])
                if not any("refused" in d["error"] for d in log):
                    return False
            return True

        await _until(refused_everywhere)
        assert len(hooks.received) == 3
        by_name_log = await _log(refusing, alice, by_name["id"])
        assert any("localhost resolves to" in d["error"] for d in by_name_log)


async def test_delivered_through_rabbitmq(
    tmp_path: Path,
    database_url: str,
    media_pool: ProcessPoolExecutor,
    aiohttp_client: AiohttpClient,
    amqp_exchange: str,
) -> None:
    """With the broker relay, the webhooks consumer reads its own queue; the
    deliveries are still durable jobs."""
    events = {"amqp_url": AMQP_URL, "exchange": amqp_exchange, "relay_interval": 0.2}
    settings = _settings(tmp_path, database_url).replace(events=events)
    client = await _client(settings, media_pool, aiohttp_client)
    alice, bob = await signup(client, "alice"), await signup(client, "bob")
    async with receiver([Answer(503)]) as hooks:
        endpoint = await _register(client, alice, hooks.url, ["user.followed"])
        assert (await client.put("/api/v1/users/alice/follow", headers=bearer(bob))).ok
        first, second = await hooks.wait_for(2)
        assert first.headers["webhook-id"] == second.headers["webhook-id"]
        [body, _] = hooks.verified(endpoint["secret"])
        assert body["type"] == "user.followed"

"""The claim service on a real PostgreSQL: one holder per key, answers kept
for the holder's fingerprint, tokens guarding against a slow former holder,
and waiting for a running first request (the upload form's way)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import pytest

from picshare.config import IdempotencySettings
from picshare.idempotency import Answer, Claim, IdempotencyService, KeyInFlight, KeyReused
from storage.databases import primary_only
from storage.db import create_pool
from storage.migrate import migrate
from storage.shards import Shards


@pytest.fixture
async def service(database_url: str) -> AsyncIterator[IdempotencyService]:
    pool = await create_pool(
        database_url, min_size=1, max_size=4, command_timeout=10, connect_timeout=10
    )
    db = primary_only(pool)
    async with db.write() as conn:
        await migrate(conn, shard_id=0)
    yield IdempotencyService(db=Shards.of_one(db), settings=IdempotencySettings(lease=1))
    await pool.close()


async def test_one_claim_per_key_then_its_answer(service: IdempotencyService) -> None:
    claim = await service.claim(1, "k", "fp")
    assert isinstance(claim, Claim)
    with pytest.raises(KeyInFlight):
        await service.claim(1, "k", "fp")
    with pytest.raises(KeyReused):
        await service.claim(1, "k", "other")
    assert isinstance(await service.claim(2, "k", "fp"), Claim)  # another user's key
    answer = Answer(201, "application/json", "/x", b'{"a":1}')
    await service.complete(claim, answer)
    assert await service.claim(1, "k", "fp") == answer
    with pytest.raises(KeyReused):
        await service.claim(1, "k", "other")


async def test_a_released_key_is_free_again(service: IdempotencyService) -> None:
    claim = await service.claim(1, "k", "fp")
    assert isinstance(claim, Claim)
    await service.release(claim)
    again = await service.claim(1, "k", "fp")
    assert isinstance(again, Claim) and again.token != claim.token


async def test_a_lapsed_holder_cannot_store_or_release(service: IdempotencyService) -> None:
    old = await service.claim(1, "k", "fp")
    assert isinstance(old, Claim)
    await asyncio.sleep(1.2)  # the lease (1 s) lapses: nobody renewed it
    new = await service.claim(1, "k", "fp")
    assert isinstance(new, Claim)
    await service.complete(old, Answer(200, None, None, b"old"))
    await service.release(old)
    with pytest.raises(KeyInFlight):  # still the new holder's
        await service.claim(1, "k", "fp")
    await service.complete(new, Answer(200, None, None, b"new"))
    assert await service.claim(1, "k", "fp") == Answer(200, None, None, b"new")


async def test_a_renewed_claim_does_not_lapse(service: IdempotencyService) -> None:
    claim = await service.claim(1, "k", "fp")
    assert isinstance(claim, Claim)
    renew = asyncio.create_task(service.keep_alive(claim))
    try:
        await asyncio.sleep(1.5)
        with pytest.raises(KeyInFlight):
            await service.claim(1, "k", "fp")
    finally:
        renew.cancel()


async def test_waiting_for_the_first_gets_its_answer(service: IdempotencyService) -> None:
    claim = await service.claim(1, "k", "fp")
    assert isinstance(claim, Claim)
    waiter = asyncio.create_task(service.claim_or_wait(1, "k", "fp", wait=5))
    await asyncio.sleep(0.3)
    assert not waiter.done()
    await service.complete(claim, Answer(303, None, "/p/1", b""))
    assert await waiter == Answer(303, None, "/p/1", b"")

"""The payments ledger (picshare/payments.py) against a real PostgreSQL: top-ups,
tips, the rules on each, the receiver's notification, the database's own
guards, and the invariants under 1,000 concurrent tips."""

from __future__ import annotations

import asyncio
import random
import time
from collections import Counter
from pathlib import Path
from typing import Any

import asyncpg
import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient

import tests.imaging as imaging
from picshare import keys
from picshare.app import create_app
from picshare.errors import Conflict, InvalidInput, NotFound, Unavailable
from picshare.payments import PaymentService, money_text
from storage import users_repo
from storage.records import NotificationKind, TransferKind, UserRecord
from tests.conftest import AiohttpClient, bearer, make_settings, signup, upload_ready

Client = TestClient[Any, Any]


async def _user(client: Client, name: str) -> UserRecord:
    await signup(client, name)
    async with client.app[keys.DATABASES].of_username(name).write() as conn:
        user = await users_repo.user_by_username(conn, name)
    assert user is not None
    return user


def _payments(client: Client) -> PaymentService:
    service: PaymentService = client.app[keys.PAYMENTS]
    return service


async def _audit(client: Client) -> dict[str, Any]:
    """The ledger's invariants, computed independently of the service's code."""
    async with client.app[keys.DATABASES].payments.write() as conn:
        unbalanced = await conn.fetchval(
            "SELECT count(*) FROM (SELECT transfer_id FROM ledger_entries GROUP BY transfer_id "
            "HAVING sum(amount_cents) <> 0 OR count(*) <> 2) x"
        )
        orphans = await conn.fetchval(
            "SELECT count(*) FROM transfers t WHERE NOT EXISTS "
            "(SELECT 1 FROM ledger_entries e WHERE e.transfer_id = t.id)"
        )
        total = await conn.fetchval("SELECT coalesce(sum(amount_cents), 0) FROM ledger_entries")
        negative = await conn.fetchval(
            "SELECT count(*) FROM accounts WHERE kind = 'user' AND balance_cents < 0"
        )
        mismatched = await conn.fetchval(
            "SELECT count(*) FROM accounts a WHERE a.kind = 'user' AND a.balance_cents <> "
            "(SELECT coalesce(sum(amount_cents), 0) FROM ledger_entries e "
            " WHERE e.account_id = a.id)"
        )
        wallets = await conn.fetchval(
            "SELECT coalesce(sum(balance_cents), 0) FROM accounts WHERE kind = 'user'"
        )
        topped_up = await conn.fetchval(
            "SELECT coalesce(sum(amount_cents), 0) FROM transfers WHERE kind = 'topup'"
        )
    return {
        "unbalanced": unbalanced,
        "orphans": orphans,
        "total": total,
        "negative": negative,
        "mismatched": mismatched,
        "wallets": wallets,
        "topped_up": topped_up,
    }


async def test_topup_then_tip_moves_money_and_notifies_the_receiver(client: Client) -> None:
    pay = _payments(client)
    alice = await _user(client, "alice")
    bob = await _user(client, "bob")
    assert (await pay.wallet(alice.id)).balance_cents == 0  # no wallet yet: zero

    receipt = await pay.topup(alice, 2_500)
    assert (receipt.kind, receipt.amount_cents, receipt.balance_cents) == (
        TransferKind.TOPUP,
        2_500,
        2_500,
    )
    assert receipt.sender is None and receipt.receiver == "alice"

    published: list[tuple[int, dict[str, Any]]] = []

    async def listen(user_id: int, event: dict[str, Any]) -> None:
        published.append((user_id, event))

    client.app[keys.BUS].subscribe(listen)
    tip = await pay.tip(alice, "BOB", 700)  # usernames are case-insensitive
    assert (tip.sender, tip.receiver, tip.balance_cents) == ("alice", "bob", 1_800)
    assert (await pay.wallet(alice.id)).balance_cents == 1_800
    assert (await pay.wallet(bob.id)).balance_cents == 700
    assert [(u, e["kind"], e["text"]) for u, e in published] == [
        (bob.id, NotificationKind.TIP, "alice tipped you $7.00")
    ]
    moves = await pay.movements(alice.id)
    assert [(m.kind, m.amount_cents, m.counterparty) for m in moves] == [
        (TransferKind.TIP, -700, "bob"),
        (TransferKind.TOPUP, 2_500, None),
    ]
    assert [(m.amount_cents, m.counterparty) for m in await pay.movements(bob.id)] == [
        (700, "alice")
    ]
    audit = await _audit(client)
    assert audit == {**audit, "unbalanced": 0, "orphans": 0, "total": 0, "mismatched": 0}
    assert audit["wallets"] == audit["topped_up"] == 2_500


async def test_insufficient_funds_self_tips_and_unknown_users_change_nothing(
    client: Client,
) -> None:
    pay = _payments(client)
    alice = await _user(client, "alice")
    await _user(client, "bob")
    await pay.topup(alice, 500)
    with pytest.raises(Conflict) as short:
        await pay.tip(alice, "bob", 501)
    assert [e.field for e in short.value.errors] == ["amount_cents"]
    with pytest.raises(InvalidInput) as self_tip:
        await pay.tip(alice, "alice", 100)
    assert [e.field for e in self_tip.value.errors] == ["to"]
    with pytest.raises(NotFound) as nobody:
        await pay.tip(alice, "nobody_here", 100)
    assert [e.field for e in nobody.value.errors] == ["to"]
    assert (await pay.wallet(alice.id)).balance_cents == 500
    assert len(await pay.movements(alice.id)) == 1


@pytest.mark.parametrize(
    ("amount", "message"),
    [
        (0, "more than zero"),
        (-5, "more than zero"),
        (1.5, "whole number"),
        ("100", "whole number"),
        (True, "whole number"),
        (None, "whole number"),
        (50_001, "at most 50000"),
        (2**70, "at most"),
    ],
)
async def test_topup_amounts_are_checked(client: Client, amount: object, message: str) -> None:
    alice = await _user(client, "alice")
    with pytest.raises(InvalidInput) as bad:
        await _payments(client).topup(alice, amount)
    assert bad.value.errors[0].field == "amount_cents"
    assert message in bad.value.errors[0].message


async def test_tips_are_capped(client: Client) -> None:
    pay = _payments(client)
    alice = await _user(client, "alice")
    await _user(client, "bob")
    await pay.topup(alice, 50_000)
    with pytest.raises(InvalidInput) as over:
        await pay.tip(alice, "bob", 10_001)
    assert over.value.errors[0].field == "amount_cents"
    assert (await pay.tip(alice, "bob", 10_000)).balance_cents == 40_000


async def test_a_tip_for_a_photo_must_be_one_of_the_receivers_the_tipper_sees(
    client: Client,
) -> None:
    pay = _payments(client)
    alice = await _user(client, "alice")
    bob = await _user(client, "bob")
    carol_token = await signup(client, "carol")
    await pay.topup(alice, 1_000)
    bobs = await upload_ready(client, await _token(client, "bob"), imaging.jpeg_bytes(32, 32))
    carols = await upload_ready(client, carol_token, imaging.jpeg_bytes(32, 32))

    tip = await pay.tip(alice, "bob", 100, bobs["id"])
    assert tip.photo_id == int(bobs["id"])
    with pytest.raises(InvalidInput) as wrong_owner:
        await pay.tip(alice, "bob", 100, carols["id"])
    assert wrong_owner.value.errors[0].field == "photo_id"
    with pytest.raises(NotFound):
        await pay.tip(alice, "bob", 100, "123")
    with pytest.raises(InvalidInput):
        await pay.tip(alice, "bob", 100, "not-an-id")
    # A private account's photo is invisible to a stranger: as if missing.
    await client.patch("/api/v1/me", json={"private": True}, headers=bearer(carol_token))
    with pytest.raises(NotFound):
        await pay.tip(alice, "carol", 100, carols["id"])
    assert (await pay.wallet(bob.id)).balance_cents == 100


async def _token(client: Client, name: str) -> str:
    resp = await client.post(
        "/api/v1/auth/login", json={"username": name, "password": "correct horse"}
    )
    return str((await resp.json())["token"])


async def test_the_database_itself_refuses_unbalanced_or_negative_money(client: Client) -> None:
    """The guards do not depend on the service's code being right."""
    pay = _payments(client)
    alice = await _user(client, "alice")
    await pay.topup(alice, 100)
    async with client.app[keys.DATABASES].payments.write() as conn:
        wallet = await conn.fetchval("SELECT id FROM accounts WHERE user_id = $1", alice.id)
        provider = await conn.fetchval("SELECT id FROM accounts WHERE kind = 'provider'")
        with pytest.raises(asyncpg.CheckViolationError):
            await conn.execute("UPDATE accounts SET balance_cents = -1 WHERE id = $1", wallet)
        with pytest.raises(asyncpg.CheckViolationError, match="unbalanced"):
            await _one_sided_transfer(conn, provider, wallet)
        with pytest.raises(asyncpg.RestrictViolationError, match="append-only"):
            await conn.execute("DELETE FROM ledger_entries")
        with pytest.raises(asyncpg.RestrictViolationError, match="append-only"):
            await conn.execute("UPDATE transfers SET amount_cents = 1")
    assert (await pay.wallet(alice.id)).balance_cents == 100


async def _one_sided_transfer(conn: Any, provider: int, wallet: int) -> None:
    """A transfer with a credit and no debit, in one transaction."""
    async with conn.transaction():
        transfer = await conn.fetchval(
            "INSERT INTO transfers (kind, from_account, to_account, amount_cents) "
            "VALUES ('topup', $1, $2, 5) RETURNING id",
            provider,
            wallet,
        )
        await conn.execute("INSERT INTO ledger_entries VALUES ($1, $2, 5)", transfer, wallet)


async def test_a_conflict_is_retried_and_counted(client: Client) -> None:
    """A tip whose snapshot saw the wallet before another transaction changed
    it fails to serialize, and is run again on a fresh snapshot."""
    alice = await _user(client, "alice")
    await _user(client, "bob")
    pay = _payments(client)
    await pay.topup(alice, 1_000)
    before = pay.retries
    db = client.app[keys.DATABASES].payments
    async with db.write() as holder, holder.transaction(isolation="serializable"):
        await holder.execute(
            "UPDATE accounts SET balance_cents = balance_cents - 400 WHERE user_id = $1",
            alice.id,
        )
        tip = asyncio.ensure_future(pay.tip(alice, "bob", 10))
        await asyncio.sleep(0.2)  # the tip now waits on the wallet's row lock
        assert not tip.done()
    # (The holder's debit has no entries: it stands for a concurrent payment.)
    assert (await tip).balance_cents == 590  # it saw the holder's change
    assert pay.retries == before + 1


async def test_one_attempt_only_answers_unavailable_on_a_conflict(
    tmp_path: Path, database_url: str, aiohttp_client: AiohttpClient, media_pool: Any
) -> None:
    settings = make_settings(tmp_path / "data", database_url, payments={"max_attempts": 1})
    client: Client = await aiohttp_client(create_app(settings, media_pool=media_pool))
    alice = await _user(client, "alice")
    await _user(client, "bob")
    pay = _payments(client)
    await pay.topup(alice, 1_000)
    db = client.app[keys.DATABASES].payments
    async with db.write() as holder, holder.transaction(isolation="serializable"):
        await holder.execute(
            "UPDATE accounts SET balance_cents = balance_cents WHERE user_id = $1", alice.id
        )
        tip = asyncio.ensure_future(pay.tip(alice, "bob", 10))
        await asyncio.sleep(0.2)
    with pytest.raises(Unavailable):
        await tip
    assert pay.retries == 0  # one attempt allowed: none run again
    assert (await pay.wallet(alice.id)).balance_cents == 1_000


USERS = 20
TIPS = 1_000
START = 5_000  # cents each user is topped up with


async def test_a_thousand_concurrent_tips_create_and_lose_no_money(
    tmp_path: Path, database_url: str, aiohttp_client: AiohttpClient, media_pool: Any
) -> None:
    """1,000 tips among 20 users at once, amounts chosen so that some senders
    run dry: afterwards no balance is negative, every transfer's entries sum
    to zero, all entries sum to zero, each wallet equals its entries, and the
    wallets hold exactly what was topped up."""
    settings = make_settings(
        tmp_path / "data",
        database_url,
        database={"pool_max": 20},
        payments={"max_attempts": 50},
    )
    app: web.Application = create_app(settings, media_pool=media_pool)
    client: Client = await aiohttp_client(app)
    pay = _payments(client)
    users = [await _user(client, f"user{i:02d}") for i in range(USERS)]
    await asyncio.gather(*(pay.topup(u, START) for u in users))  # concurrent top-ups too
    rng = random.Random(9)
    plan = []
    for _ in range(TIPS):
        sender, receiver = rng.sample(users, 2)
        plan.append((sender, receiver.username, rng.randint(1, 900)))

    async def one(sender: UserRecord, to: str, amount: int) -> str:
        try:
            await pay.tip(sender, to, amount)
        except Conflict:
            return "insufficient"
        except Unavailable:
            # Its serializable retries ran out under this contention (a busy
            # machine): refused whole, which the audit below checks.
            return "gave_up"
        return "ok"

    retries_before = pay.retries
    started = time.perf_counter()
    outcomes = Counter(await asyncio.gather(*(one(*p) for p in plan)))
    elapsed = time.perf_counter() - started
    retries = pay.retries - retries_before
    print(
        f"\n{TIPS} concurrent tips: {dict(outcomes)} in {elapsed:.1f} s,"
        f" {retries} serialization retries"
    )

    assert outcomes["ok"] + outcomes["insufficient"] + outcomes["gave_up"] == TIPS
    assert outcomes["ok"] > TIPS // 2 and outcomes["gave_up"] < TIPS // 20
    audit = await _audit(client)
    assert audit["negative"] == 0
    assert audit["unbalanced"] == 0 and audit["orphans"] == 0
    assert audit["total"] == 0
    assert audit["mismatched"] == 0
    assert audit["wallets"] == audit["topped_up"] == USERS * START
    shards = client.app[keys.DATABASES]
    async with shards.payments.write() as conn:
        tips = await conn.fetchval("SELECT count(*) FROM transfers WHERE kind = 'tip'")
    notified = 0
    for db in shards.physical:  # each receiver's notification is on the receiver's shard
        async with db.write() as conn:
            notified += await conn.fetchval("SELECT count(*) FROM notifications WHERE kind = 'tip'")
    assert tips == notified == outcomes["ok"]
    # Contention was real, and each retry was counted where /metrics reads it.
    assert retries > 0
    metrics = client.app[keys.METRICS].render().decode()
    assert f"picshare_payment_retries_total {float(pay.retries)}" in metrics


def test_money_is_written_for_people() -> None:
    assert money_text(123_456, "USD") == "$1,234.56"
    assert money_text(-5, "USD") == "-$0.05"
    assert money_text(700, "EUR") == "7.00 EUR"


async def test_a_request_run_again_finds_its_transfer(client: Client) -> None:
    """The ledger's own guard: the same request key (the idempotency layer let
    it through again, say after a lost commit reply) moves money once, also
    when both runs race."""
    alice, bob = await _user(client, "alice"), await _user(client, "bob")
    payments = _payments(client)
    first = await payments.topup(alice, 1_000, request_key="k-topup")
    again = await payments.topup(alice, 1_000, request_key="k-topup")
    assert again.id == first.id and again.balance_cents == 1_000
    tips = await asyncio.gather(
        *(payments.tip(alice, "bob", 300, request_key="k-tip") for _ in range(5))
    )
    assert {t.id for t in tips} == {tips[0].id}
    assert (await payments.wallet(alice.id)).balance_cents == 700
    assert (await payments.wallet(bob.id)).balance_cents == 300
    # Keys are per user: bob's "k-tip" is his own.
    await payments.topup(bob, 50, request_key="k-tip")
    assert (await payments.wallet(bob.id)).balance_cents == 350
    audit = await _audit(client)
    assert audit["unbalanced"] == audit["orphans"] == audit["total"] == 0

"""SQL for the payments ledger (storage/migrations/0004_payments.sql).

The ledger lives in the catalog database, whichever shards its users are on,
so a tip between two shards' users is one transaction. Wallets keep their
user's username (migration 0008): the users are not in this database.

Every function expects to run inside the caller's serializable transaction
on the primary (picshare/payments.py): the ledger is never read from a
replica or a cache. Wallets are locked in account-id order, so two transfers
between the same wallets in opposite directions wait for each other instead
of deadlocking.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from storage.db import Connection
from storage.records import TransferKind, WalletMovement


@dataclass(frozen=True, slots=True)
class Wallet:
    account_id: int
    user_id: int
    balance_cents: int


@dataclass(frozen=True, slots=True)
class Transfer:
    id: int
    created_at: datetime


_LOCK_WALLETS = (
    "SELECT id, user_id, balance_cents FROM accounts WHERE user_id = ANY($1::bigint[]) "
    "ORDER BY id FOR UPDATE"
)


async def provider_account(conn: Connection) -> int:
    """The stand-in payment provider's account (made by the migration)."""
    account_id = await conn.fetchval("SELECT id FROM accounts WHERE kind = 'provider'")
    assert account_id is not None, "migration 0004 makes the provider account"
    return int(account_id)


async def lock_wallets(conn: Connection, owners: dict[int, str]) -> dict[int, Wallet]:
    """The wallets of `owners` (user id -> username), locked until the
    transaction ends; made (empty, with the username, which never changes)
    the first time a user needs one."""
    wanted = sorted(owners)
    rows = await conn.fetch(_LOCK_WALLETS, wanted)
    if len(rows) < len(wanted):
        # Two first transfers racing to make one wallet: the loser of the
        # unique index gets a serialization failure and is run again.
        await conn.execute(
            "INSERT INTO accounts (kind, user_id, username, balance_cents) "
            "SELECT 'user', u, n, 0 FROM unnest($1::bigint[], $2::text[]) AS x (u, n) "
            "ON CONFLICT (user_id) DO NOTHING",
            wanted,
            [owners[u] for u in wanted],
        )
        rows = await conn.fetch(_LOCK_WALLETS, wanted)
    return {r["user_id"]: Wallet(r["id"], r["user_id"], r["balance_cents"]) for r in rows}


async def balance(conn: Connection, user_id: int) -> int:
    """A user's balance; 0 for one who never had a wallet."""
    value = await conn.fetchval(
        "SELECT balance_cents FROM accounts WHERE user_id = $1 AND kind = 'user'", user_id
    )
    return 0 if value is None else int(value)


async def record_transfer(
    conn: Connection,
    *,
    kind: TransferKind,
    from_account: int,
    to_account: int,
    amount_cents: int,
    photo_id: int | None = None,
    request: tuple[int, str] | None = None,
) -> Transfer:
    """The transfer and its two entries, in one statement: the debit and the
    credit always sum to zero (a deferred trigger checks it again at commit)."""
    row = await conn.fetchrow(
        "WITH t AS ("
        "  INSERT INTO transfers"
        "  (kind, from_account, to_account, amount_cents, photo_id, request_user, request_key)"
        "  VALUES ($1, $2, $3, $4, $5, $6, $7) RETURNING id, created_at"
        "), e AS ("
        "  INSERT INTO ledger_entries (transfer_id, account_id, amount_cents)"
        "  SELECT t.id, x.account_id, x.amount FROM t,"
        "  (VALUES ($2::bigint, -$4::bigint), ($3::bigint, $4::bigint)) AS x (account_id, amount)"
        ") SELECT id, created_at FROM t",
        kind,
        from_account,
        to_account,
        amount_cents,
        photo_id,
        None if request is None else request[0],
        None if request is None else request[1],
    )
    assert row is not None
    return Transfer(row["id"], row["created_at"])


@dataclass(frozen=True, slots=True)
class MadeTransfer:
    """A transfer found by the request that made it."""

    id: int
    kind: str
    amount_cents: int
    sender: str | None  # None: the payment provider
    receiver: str
    photo_id: int | None
    created_at: datetime


async def transfer_by_request(conn: Connection, user_id: int, key: str) -> MadeTransfer | None:
    row = await conn.fetchrow(
        "SELECT t.id, t.kind, t.amount_cents, t.photo_id, t.created_at,"
        " fa.username AS sender, ta.username AS receiver"
        " FROM transfers t"
        " JOIN accounts fa ON fa.id = t.from_account"
        " JOIN accounts ta ON ta.id = t.to_account"
        " WHERE t.request_user = $1 AND t.request_key = $2",
        user_id,
        key,
    )
    if row is None:
        return None
    return MadeTransfer(
        row["id"],
        row["kind"],
        row["amount_cents"],
        row["sender"],
        row["receiver"],
        row["photo_id"],
        row["created_at"],
    )


async def add_to_balance(conn: Connection, account_id: int, delta_cents: int) -> int:
    """Move a wallet's balance by `delta_cents`; its CHECK refuses a negative
    result (asyncpg.CheckViolationError), the last guard behind the service's."""
    value = await conn.fetchval(
        "UPDATE accounts SET balance_cents = balance_cents + $2 "
        "WHERE id = $1 AND kind = 'user' RETURNING balance_cents",
        account_id,
        delta_cents,
    )
    assert value is not None, "only user wallets keep a balance"
    return int(value)


async def movements(conn: Connection, user_id: int, limit: int) -> list[WalletMovement]:
    """A user's latest transfers, either side, newest first."""
    rows = await conn.fetch(
        "WITH w AS (SELECT id FROM accounts WHERE user_id = $1), t AS ("
        "  (SELECT * FROM transfers WHERE from_account = (SELECT id FROM w)"
        "   ORDER BY id DESC LIMIT $2)"
        "  UNION ALL"
        "  (SELECT * FROM transfers WHERE to_account = (SELECT id FROM w)"
        "   ORDER BY id DESC LIMIT $2)"
        ") SELECT t.id, t.kind, t.photo_id, t.created_at,"
        "  CASE WHEN t.to_account = (SELECT id FROM w) THEN t.amount_cents"
        "       ELSE -t.amount_cents END AS amount_cents,"
        "  a.username AS counterparty"
        " FROM t JOIN accounts a ON a.id = CASE WHEN t.to_account = (SELECT id FROM w)"
        "   THEN t.from_account ELSE t.to_account END"
        " ORDER BY t.id DESC LIMIT $2",
        user_id,
        limit,
    )
    return [WalletMovement.from_row(r) for r in rows]


@dataclass(frozen=True, slots=True)
class TipNotice:
    """What a tip's notification tells its receiver."""

    transfer_id: int
    receiver_id: int
    tipper_id: int
    tipper: str
    amount_cents: int
    photo_id: int | None


async def tip_notice(conn: Connection, transfer_id: int) -> TipNotice | None:
    """The tip `transfer_id` as its notification needs it; None if it is no tip."""
    row = await conn.fetchrow(
        "SELECT t.id, t.amount_cents, t.photo_id, fa.user_id AS tipper_id,"
        " fa.username AS tipper, ta.user_id AS receiver_id"
        " FROM transfers t"
        " JOIN accounts fa ON fa.id = t.from_account"
        " JOIN accounts ta ON ta.id = t.to_account"
        " WHERE t.id = $1 AND t.kind = 'tip'",
        transfer_id,
    )
    if row is None:
        return None
    return TipNotice(
        row["id"],
        row["receiver_id"],
        row["tipper_id"],
        row["tipper"],
        row["amount_cents"],
        row["photo_id"],
    )

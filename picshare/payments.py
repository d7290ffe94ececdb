"""The payments ledger: wallets, top-ups from a stand-in payment provider,
and tips between users (CONTRACT.md, "Payments ledger").

The ledger lives in the PAYMENTS table group's database (`shards.payments`:
its own with `PICSHARE_DATABASE_GROUP_PAYMENTS_URL`, else the catalog's), so
a tip between users of two shards is still one transaction. The receiver and the
photo are looked up on their shards first; the receiver's notification is
written on the receiver's shard by a job enqueued in the tip's transaction
(and at once after it commits, the job then finding it done).

The consistent side of CAP. Every operation, reads included, is one
SERIALIZABLE transaction on the primary (`db.transaction`, never `db.read`:
money is never read from a replica or a cache), so while the primary is
unreachable these fail with 503 rather than answer from stale data. A
transaction that loses a serialization conflict (or, rarely, a deadlock) is
run again from the start, a bounded number of times, after a short random
pause; `retries` counts them. The database guards the rest: a wallet's
balance cannot go below zero (CHECK), and each transfer's two entries must
sum to zero (a deferred trigger), whatever code writes them.
"""

from __future__ import annotations

import asyncio
import logging
import random
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import datetime
from typing import TypeVar

import asyncpg

from picshare import photo_access
from picshare.config import PaymentSettings
from picshare.errors import Conflict, NotFound, Unavailable, invalid
from picshare.jobs import JobKind, JobRunner
from picshare.notify import Notifier
from picshare.outbox import Outbox
from storage import ledger_repo, users_repo
from storage.db import Connection
from storage.ids import parse_id
from storage.records import TransferKind, UserRecord, WalletMovement
from storage.router import PRIMARY
from storage.shards import Shards

T = TypeVar("T")
log = logging.getLogger(__name__)
# The job that writes a tip's notification on the receiver's shard.
TIP_NOTIFICATION = "tip_notification"

# What a serializable transaction may fail with only because another ran at
# the same time: running it again is the cure.
RETRYABLE: tuple[type[BaseException], ...] = (
    asyncpg.SerializationError,
    asyncpg.DeadlockDetectedError,
)
MAX_RETRY_DELAY = 0.1  # seconds: the random pause's ceiling


@dataclass(frozen=True, slots=True)
class Wallet:
    balance_cents: int
    currency: str


@dataclass(frozen=True, slots=True)
class Receipt:
    """A transfer just made, and the caller's balance after it."""

    id: int
    kind: TransferKind
    amount_cents: int
    currency: str
    sender: str | None  # None: the payment provider (a top-up)
    receiver: str
    photo_id: int | None
    created_at: datetime
    balance_cents: int


def money_text(cents: int, currency: str) -> str:
    """'$12.50' for dollars, '12.50 EUR' otherwise: how people read amounts."""
    sign = "-" if cents < 0 else ""
    whole, part = divmod(abs(cents), 100)
    if currency == "USD":
        return f"{sign}${whole:,}.{part:02d}"
    return f"{sign}{whole:,}.{part:02d} {currency}"


class PaymentService:
    __slots__ = (
        "_db",
        "_events",
        "_jobs",
        "_notifier",
        "_on_retry",
        "_provider",
        "_settings",
        "retries",
    )

    def __init__(
        self,
        *,
        db: Shards,
        notifier: Notifier,
        jobs: JobRunner,
        settings: PaymentSettings,
        events: Outbox,
        on_retry: Callable[[], None] | None = None,
    ) -> None:
        self._db = db
        self._events = events
        self._notifier = notifier
        self._jobs = jobs
        self._settings = settings
        self._on_retry = on_retry
        self._provider: int | None = None
        self.retries = 0  # transactions run again after a conflict, since start

    def __repr__(self) -> str:
        return f"<PaymentService {self._settings.currency} retries={self.retries}>"

    @property
    def currency(self) -> str:
        return self._settings.currency

    def job_kinds(self) -> dict[str, JobKind]:
        return {TIP_NOTIFICATION: JobKind(self._notify_tip)}

    # -- reads (on the primary, serializable like the writes) -------------------

    async def wallet(self, user_id: int) -> Wallet:
        async def read(conn: Connection) -> Wallet:
            return Wallet(await ledger_repo.balance(conn, user_id), self.currency)

        return await self._serializable(read, readonly=True)

    async def movements(self, user_id: int, *, limit: int = 20) -> list[WalletMovement]:
        async def read(conn: Connection) -> list[WalletMovement]:
            return await ledger_repo.movements(conn, user_id, limit)

        return await self._serializable(read, readonly=True)

    # -- writes -------------------------------------------------------------------

    async def topup(
        self, user: UserRecord, amount_cents: object, *, request_key: str | None = None
    ) -> Receipt:
        """Credit from the stand-in payment provider, up to `max_topup_cents`.
        `request_key` (the request's Idempotency-Key): the same request again
        returns the transfer it made instead of making another."""
        amount = _amount(amount_cents, self._settings.max_topup_cents, "top-up")

        async def work(conn: Connection) -> Receipt:
            made = await self._made(conn, user.id, request_key)
            if made is not None:
                return made
            provider = await self._provider_account(conn)
            wallet = (await ledger_repo.lock_wallets(conn, {user.id: user.username}))[user.id]
            transfer = await ledger_repo.record_transfer(
                conn,
                kind=TransferKind.TOPUP,
                from_account=provider,
                to_account=wallet.account_id,
                amount_cents=amount,
                request=None if request_key is None else (user.id, request_key),
            )
            balance = await ledger_repo.add_to_balance(conn, wallet.account_id, amount)
            return Receipt(
                transfer.id,
                TransferKind.TOPUP,
                amount,
                self.currency,
                None,
                user.username,
                None,
                transfer.created_at,
                balance,
            )

        return await self._serializable(work)

    async def tip(
        self,
        tipper: UserRecord,
        to: object,
        amount_cents: object,
        photo_id: object = None,
        *,
        request_key: str | None = None,
    ) -> Receipt:
        """Move credit from the tipper's wallet to `to`'s, optionally for one of
        their photos the tipper can see; the receiver is notified."""
        if not isinstance(to, str) or not to:
            raise invalid("to", "must be the username of the user to tip")
        amount = _amount(amount_cents, self._settings.max_tip_cents, "tip")
        photo = _photo_id(photo_id)

        if request_key is not None:
            # A retry of a tip that was made answers as it did, whatever
            # happened to the photo or the receiver since.
            made = await self._serializable(
                lambda conn: self._made(conn, tipper.id, request_key), readonly=True
            )
            if made is not None:
                return made
        # On their shards, before the ledger's transaction: a user and a
        # photo are no rows of the ledger's database. Usernames never change, and a
        # photo deleted meanwhile leaves the tip standing, as it would after.
        receiver = await self._receiver(to)
        if receiver.id == tipper.id:
            raise invalid("to", "you cannot tip yourself")
        if photo is not None:
            await self._check_photo(photo, tipper, receiver)

        async def work(conn: Connection) -> Receipt:
            made = await self._made(conn, tipper.id, request_key)
            if made is not None:
                return made
            wallets = await ledger_repo.lock_wallets(
                conn, {tipper.id: tipper.username, receiver.id: receiver.username}
            )
            source, target = wallets[tipper.id], wallets[receiver.id]
            if source.balance_cents < amount:
                raise Conflict(
                    f"insufficient funds: the balance is "
                    f"{money_text(source.balance_cents, self.currency)}",
                    field="amount_cents",
                )
            transfer = await ledger_repo.record_transfer(
                conn,
                kind=TransferKind.TIP,
                from_account=source.account_id,
                to_account=target.account_id,
                amount_cents=amount,
                photo_id=photo,
                request=None if request_key is None else (tipper.id, request_key),
            )
            balance = await ledger_repo.add_to_balance(conn, source.account_id, -amount)
            await ledger_repo.add_to_balance(conn, target.account_id, amount)
            await self._jobs.enqueue(conn, TIP_NOTIFICATION, {"transfer_id": transfer.id})
            await self._events.payment_tip(
                conn,
                transfer_id=transfer.id,
                from_user=tipper.id,
                to_user=receiver.id,
                amount_cents=amount,
                currency=self.currency,
                photo_id=photo,
            )
            return Receipt(
                transfer.id,
                TransferKind.TIP,
                amount,
                self.currency,
                tipper.username,
                receiver.username,
                photo,
                transfer.created_at,
                balance,
            )

        receipt = await self._serializable(work)
        self._events.committed()
        await self._tell_receiver(receipt.id)
        return receipt

    async def _receiver(self, username: str) -> UserRecord:
        # The primary: a user who signed up a moment ago can be tipped.
        async with self._db.of_username(username).read(PRIMARY) as conn:
            receiver = await users_repo.user_by_username(conn, username)
        if receiver is None:
            raise NotFound("no such user", field="to")
        return receiver

    async def _check_photo(self, photo_id: int, tipper: UserRecord, receiver: UserRecord) -> None:
        """The photo must be the receiver's, and one the tipper may see."""
        found = await photo_access.visible_photo(self._db, photo_id, tipper.id, PRIMARY)
        if found is None:
            raise NotFound("no such photo", field="photo_id")
        if found.owner_id != receiver.id:
            raise invalid("photo_id", f"is not a photo of {receiver.username}")

    # -- the tip's notification (the receiver's shard) ------------------------------

    async def _tell_receiver(self, transfer_id: int) -> None:
        """Write the tip's notification now; if that fails, its job (committed
        with the tip) writes it later. Either way the tip stands."""
        try:
            await self._notify_tip({"transfer_id": transfer_id})
        except Exception:
            log.warning("a tip's notification waits for its job", exc_info=True)
            self._jobs.wake()

    async def _notify_tip(self, payload: dict[str, object]) -> None:
        """The tip's notification on the receiver's shard, once however often
        this runs; pushed live by the run that wrote it."""
        transfer_id = int(str(payload["transfer_id"]))
        async with self._db.payments.read(PRIMARY) as conn:
            tip = await ledger_repo.tip_notice(conn, transfer_id)
        if tip is None:
            return  # not a tip: nothing to tell
        where = " for your photo" if tip.photo_id is not None else ""
        amount = money_text(tip.amount_cents, self.currency)
        inbox = self._db.inbox_of(tip.receiver_id)
        async with self._notifier.transaction(inbox) as (_, notes):
            await notes.tipped(
                transfer_id=tip.transfer_id,
                receiver_id=tip.receiver_id,
                tipper_id=tip.tipper_id,
                tipper=tip.tipper,
                photo_id=tip.photo_id,
                text=f"{tip.tipper} tipped you {amount}{where}",
            )

    # -- the retry loop -----------------------------------------------------------

    async def _made(self, conn: Connection, user_id: int, key: str | None) -> Receipt | None:
        """The receipt of the transfer this request already made, if it did."""
        if key is None:
            return None
        made = await ledger_repo.transfer_by_request(conn, user_id, key)
        if made is None:
            return None
        return Receipt(
            made.id,
            TransferKind(made.kind),
            made.amount_cents,
            self.currency,
            made.sender,
            made.receiver,
            made.photo_id,
            made.created_at,
            await ledger_repo.balance(conn, user_id),  # now, not then
        )

    async def _serializable(
        self,
        work: Callable[[Connection], Awaitable[T]],
        *,
        readonly: bool = False,
    ) -> T:
        """Run `work` in one serializable transaction in the catalog, again
        (from the start, on a fresh snapshot) when it loses a conflict."""
        attempts = self._settings.max_attempts
        for attempt in range(1, attempts + 1):
            try:
                async with self._db.payments.transaction(
                    isolation="serializable", readonly=readonly
                ) as conn:
                    return await work(conn)
            except asyncpg.UniqueViolationError as exc:
                # The same request running twice at once: the loser runs
                # again and finds the winner's transfer.
                if exc.constraint_name != "transfers_request_key" or attempt == attempts:
                    raise
            except RETRYABLE:
                if attempt == attempts:
                    break
                self.retries += 1
                if self._on_retry is not None:
                    self._on_retry()
                # Full jitter: conflicting transactions spread out instead of
                # colliding again in step.
                ceiling = min(MAX_RETRY_DELAY, self._settings.retry_base_delay * 2**attempt)
                await asyncio.sleep(random.uniform(0, ceiling))
        raise Unavailable("too many concurrent payments touch these wallets; try again")

    async def _provider_account(self, conn: Connection) -> int:
        if self._provider is None:  # never changes once the migration made it
            self._provider = await ledger_repo.provider_account(conn)
        return self._provider


def _amount(value: object, cap: int, what: str) -> int:
    # bool is an int to Python, not to a client sending `true`.
    if not isinstance(value, int) or isinstance(value, bool):
        raise invalid("amount_cents", "must be a whole number of cents")
    if value <= 0:
        raise invalid("amount_cents", "must be more than zero")
    if value > cap:
        raise invalid("amount_cents", f"a {what} is at most {cap} cents")
    return value


def _photo_id(value: object) -> int | None:
    if value is None:
        return None
    parsed = parse_id(value) if isinstance(value, str) else None
    if parsed is None:
        raise invalid("photo_id", "must be a photo id (a string of digits)")
    return parsed

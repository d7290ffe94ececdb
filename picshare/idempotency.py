"""Idempotency-Key claims: run a user's request once, replay its answer after.

`claim` takes a user's key for one request (identified by its fingerprint)
on the primary, atomically, so two processes given the same key cannot both
run it. The holder then `complete`s the claim with the answer to store, or
`release`s it (the request failed on our side: a retry should run again).
Everything goes through the primary (`write()`) of the user's shard, where
a user's keys live: never a replica, never a cache, since a stale "absent"
would run a request twice.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import secrets
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass

from picshare.config import IdempotencySettings
from picshare.errors import Conflict, Unprocessable
from storage import idempotency_repo
from storage.router import DatabaseUnavailable
from storage.shards import Shards

__all__ = [
    "Answer",
    "Claim",
    "IdempotencyService",
    "KeyInFlight",
    "KeyReused",
]

log = logging.getLogger(__name__)
HEADER = "Idempotency-Key"
_SWEEP_BATCH = 1000
_CLAIM_ATTEMPTS = 3


@dataclass(frozen=True, slots=True)
class Answer:
    """A stored answer: what a replay sends back."""

    status: int
    content_type: str | None
    location: str | None
    body: bytes


@dataclass(frozen=True, slots=True)
class Claim:
    """The right to run the request once; `token` proves it is still ours."""

    user_id: int
    key: str
    token: int


class KeyInFlight(Conflict):
    """The first request with this key is still running (409, Retry-After)."""

    retry_after = 1


class KeyReused(Unprocessable):
    """The key was used for another request (422)."""


class IdempotencyService:
    __slots__ = ("_db", "_last_sweep", "_settings")

    def __init__(self, *, db: Shards, settings: IdempotencySettings) -> None:
        self._db = db
        self._settings = settings
        self._last_sweep = time.monotonic()

    def __repr__(self) -> str:
        return f"<IdempotencyService ttl={self._settings.ttl}s lease={self._settings.lease}s>"

    @property
    def lease(self) -> float:
        return float(self._settings.lease)

    @property
    def max_body(self) -> int:
        return self._settings.max_body

    async def claim(self, user_id: int, key: str, fingerprint: str) -> Claim | Answer:
        """Our claim on the key, or the stored answer to replay.

        Raises KeyReused for another request under the key, KeyInFlight while
        its first request runs."""
        await self._maybe_sweep()
        for _ in range(_CLAIM_ATTEMPTS):
            token = secrets.randbits(63)
            async with self._db.of_user(user_id).write() as conn:
                if await idempotency_repo.claim(
                    conn,
                    user_id=user_id,
                    key=key,
                    fingerprint=fingerprint,
                    token=token,
                    lease_seconds=self._settings.lease,
                    ttl_seconds=self._settings.ttl,
                ):
                    return Claim(user_id, key, token)
                row = await idempotency_repo.find(conn, user_id=user_id, key=key)
            if row is None:
                continue  # released or expired between the two statements: claim again
            if row.fingerprint != fingerprint:
                raise KeyReused(
                    f"this {HEADER} was already used for a different request", field=HEADER
                )
            if row.state == "in_flight":
                if row.lease_expired:
                    continue  # its holder is gone: the next claim takes it over
                raise KeyInFlight(
                    f"a request with this {HEADER} is still being processed", field=HEADER
                )
            assert row.status is not None
            return Answer(row.status, row.content_type, row.location, row.body or b"")
        raise KeyInFlight(f"a request with this {HEADER} is still being processed", field=HEADER)

    async def claim_or_wait(
        self, user_id: int, key: str, fingerprint: str, *, wait: float
    ) -> Claim | Answer:
        """Like `claim`, but wait up to `wait` seconds for a running first
        request (for browser forms, where a 409 page helps nobody)."""
        deadline = time.monotonic() + wait
        while True:
            try:
                return await self.claim(user_id, key, fingerprint)
            except KeyInFlight:
                if time.monotonic() >= deadline:
                    raise
            await asyncio.sleep(0.1)

    async def complete(self, claim: Claim, answer: Answer) -> None:
        async with self._db.of_user(claim.user_id).write() as conn:
            stored = await idempotency_repo.complete(
                conn,
                user_id=claim.user_id,
                key=claim.key,
                token=claim.token,
                status=answer.status,
                content_type=answer.content_type,
                location=answer.location,
                body=answer.body,
            )
        if not stored:
            log.warning(
                "idempotency key of user %s was taken over before it completed", claim.user_id
            )

    async def release(self, claim: Claim) -> None:
        async with self._db.of_user(claim.user_id).write() as conn:
            await idempotency_repo.release(
                conn, user_id=claim.user_id, key=claim.key, token=claim.token
            )

    @asynccontextmanager
    async def held(self, claim: Claim) -> AsyncIterator[None]:
        """Keep `claim` alive (its lease renewed) while the block runs."""
        renewing = asyncio.ensure_future(self.keep_alive(claim))
        try:
            yield
        finally:
            renewing.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await renewing

    async def keep_alive(self, claim: Claim) -> None:
        """Extend the claim's lease until cancelled (run beside a slow request,
        so only a claim whose process is gone ever expires)."""
        while True:
            await asyncio.sleep(self._settings.lease / 3)
            try:
                async with self._db.of_user(claim.user_id).write() as conn:
                    held = await idempotency_repo.extend(
                        conn,
                        user_id=claim.user_id,
                        key=claim.key,
                        token=claim.token,
                        lease_seconds=self._settings.lease,
                    )
            except asyncio.CancelledError:
                raise
            except Exception:
                log.warning("extending an idempotency lease failed", exc_info=True)
                continue
            if not held:
                return

    async def _maybe_sweep(self) -> None:
        """A bounded delete of expired keys, at most once per sweep interval per
        process: keys only accumulate through claims, so claims clean up."""
        now = time.monotonic()
        if now - self._last_sweep < self._settings.sweep_interval:
            return
        self._last_sweep = now
        try:
            await self.sweep()
        except Exception:
            log.warning("sweeping expired idempotency keys failed", exc_info=True)

    async def sweep(self, *, limit: int = _SWEEP_BATCH) -> int:
        """Delete up to `limit` expired keys on each shard; the number deleted.
        A shard that cannot be reached is swept another time."""
        deleted = 0
        for db in self._db.physical:
            try:
                async with db.write() as conn:
                    deleted += await idempotency_repo.sweep(conn, limit=limit)
            except DatabaseUnavailable as exc:
                log.warning("sweeping expired idempotency keys: %s", exc)
        return deleted

"""Cache-aside for the hottest reads: photo details, profiles, first feed pages.

What is cached is what every viewer shares; what depends on the viewer
(liked_by_me, a follow that makes a private photo visible) is asked of the
database per request, in one query. Entries are split so that each write
invalidates exactly what it changed:

- `photo:{id}`: the photo's own row, without owner fields. Likes, comments,
  rendering and deletion invalidate it.
- `user:{id}`: the owner's public fields and counts. Profile edits, follows,
  uploads and deletes invalidate it; photos read their owner from here, so an
  edited display name is right everywhere at once.
- `uname:{username}`: username -> id (usernames never change).
- the first feed page of a viewer, under the namespace `feed:{viewer}`: bumped
  by the viewer's own follows, unfollows, likes, uploads and deletes. A
  followee's new photo appears when the entry expires (`cache.feed_ttl`,
  15 s): invalidating every follower's feed on each upload would be fan-out on
  write in disguise. Like counts shown in a cached feed page are as old as it.

TTLs carry jitter (the cache adds it), and a missing hot key is recomputed by
one caller only (stampede protection, in the cache implementations).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import asdict, dataclass
from datetime import datetime
from typing import Any

from storage import photos_repo, users_repo
from storage.cache import Cache
from storage.db import Pool
from storage.records import PhotoRecord, UserRecord

_USER_FIELDS = (
    "id",
    "username",
    "display_name",
    "bio",
    "private",
    "photo_count",
    "follower_count",
    "following_count",
    "created_at",
)
_OWNER_FIELDS = ("owner_username", "owner_display_name", "owner_private", "liked_by_me")


@dataclass(frozen=True, slots=True)
class CacheTtls:
    photo: float = 60.0
    profile: float = 60.0
    feed: float = 15.0


class CachedReads:
    __slots__ = ("_cache", "_pool", "_ttl")

    def __init__(self, *, pool: Pool, cache: Cache, ttl: CacheTtls) -> None:
        self._pool = pool
        self._cache = cache
        self._ttl = ttl

    def __repr__(self) -> str:
        return f"<CachedReads {self._cache.name}>"

    # -- reads ----------------------------------------------------------------

    async def photo(self, photo_id: int) -> PhotoRecord | None:
        """The photo with its owner's current fields; liked_by_me is False (per viewer)."""
        row = await self._cache.get_or_compute(
            f"photo:{photo_id}", lambda: self._photo_row(photo_id), ttl=self._ttl.photo
        )
        if row is None:
            return None
        owner = await self.user(int(row["owner_id"]))
        if owner is None:
            return None
        return PhotoRecord(
            **{k: v for k, v in row.items() if k != "created_at"},
            created_at=datetime.fromisoformat(row["created_at"]),
            owner_username=owner.username,
            owner_display_name=owner.display_name,
            owner_private=owner.private,
            liked_by_me=False,
        )

    async def user(self, user_id: int) -> UserRecord | None:
        row = await self._cache.get_or_compute(
            f"user:{user_id}", lambda: self._user_row(user_id), ttl=self._ttl.profile
        )
        return None if row is None else _user_from(row)

    async def user_by_name(self, username: str) -> UserRecord | None:
        key = username.lower()
        user_id = await self._cache.get_or_compute(
            f"uname:{key}", lambda: self._user_id(key), ttl=self._ttl.profile
        )
        return None if user_id is None else await self.user(int(user_id))

    async def feed_first_page(
        self, viewer_id: int, limit: int, compute: Callable[[], Awaitable[list[PhotoRecord]]]
    ) -> list[PhotoRecord]:
        """The viewer's first feed page (`limit` rows), cached under `feed:{viewer}`."""

        async def rows() -> list[dict[str, Any]]:
            return [_photo_dict(p) for p in await compute()]

        cached: list[dict[str, Any]] = await self._cache.get_or_compute(
            f"first:{limit}", rows, ttl=self._ttl.feed, namespace=f"feed:{viewer_id}"
        )
        return [_photo_from(r) for r in cached]

    # -- invalidation -----------------------------------------------------------

    async def photo_changed(self, *photo_ids: int) -> None:
        await self._cache.delete(*(f"photo:{i}" for i in photo_ids))

    async def users_changed(self, *user_ids: int) -> None:
        await self._cache.delete(*(f"user:{i}" for i in user_ids))

    async def feed_changed(self, viewer_id: int) -> None:
        await self._cache.bump(f"feed:{viewer_id}")

    # -- sources ----------------------------------------------------------------

    async def _photo_row(self, photo_id: int) -> dict[str, Any] | None:
        async with self._pool.acquire() as conn:
            photo = await photos_repo.photo_by_id(conn, photo_id)
        if photo is None:
            return None
        row = {k: v for k, v in asdict(photo).items() if k not in _OWNER_FIELDS}
        row["created_at"] = photo.created_at.isoformat()
        return row

    async def _user_row(self, user_id: int) -> dict[str, Any] | None:
        async with self._pool.acquire() as conn:
            user = await users_repo.user_by_id(conn, user_id)
        if user is None:
            return None
        row = {k: getattr(user, k) for k in _USER_FIELDS}
        row["created_at"] = user.created_at.isoformat()
        return row

    async def _user_id(self, username: str) -> int | None:
        async with self._pool.acquire() as conn:
            user = await users_repo.user_by_username(conn, username)
        return None if user is None else user.id


def _photo_dict(photo: PhotoRecord) -> dict[str, Any]:
    row = asdict(photo)
    row["created_at"] = photo.created_at.isoformat()
    return row


def _photo_from(row: dict[str, Any]) -> PhotoRecord:
    fields = {k: v for k, v in row.items() if k != "created_at"}
    return PhotoRecord(**fields, created_at=datetime.fromisoformat(row["created_at"]))


def _user_from(row: dict[str, Any]) -> UserRecord:
    # Cached profiles never hold the email, password hash or settings.
    return UserRecord(
        id=int(row["id"]),
        username=row["username"],
        email="",
        password_hash="",
        display_name=row["display_name"],
        bio=row["bio"],
        private=bool(row["private"]),
        settings={},
        photo_count=int(row["photo_count"]),
        follower_count=int(row["follower_count"]),
        following_count=int(row["following_count"]),
        created_at=datetime.fromisoformat(row["created_at"]),
    )

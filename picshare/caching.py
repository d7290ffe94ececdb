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
from dataclasses import asdict, dataclass, replace
from datetime import datetime
from typing import Any

import orjson

from storage import photos_repo, social_repo, users_repo
from storage.cache import Cache
from storage.cache.memo import Memo
from storage.records import PhotoRecord, UserRecord
from storage.router import PRIMARY, Databases
from storage.shards import Shards

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
# (the viewer likes the photo, the viewer follows its owner)
ViewerFlags = tuple[bool, bool]
_OWNER_FIELDS = ("owner_username", "owner_display_name", "owner_private", "liked_by_me")


@dataclass(frozen=True, slots=True)
class CacheTtls:
    photo: float = 60.0
    profile: float = 60.0
    feed: float = 15.0
    public: float = 5.0


_NULL = orjson.dumps(None)
STALE_TTL = 1.0  # seconds


def _identity(data: bytes) -> Any:
    return data


class CachedReads:
    __slots__ = ("_cache", "_db", "_joined", "_pages", "_photos", "_ttl", "_users")

    def _fresh(self, ttl: float, source: Databases | None = None) -> float:
        """An entry's lifetime: `ttl`, or a moment while the primary it is
        filled from (`source`; None: an entry filled from several shards, any
        of them) is down: it then comes from a replica that may be far behind,
        and must not outlive the outage by a whole TTL."""
        down = self._db.primary_down() if source is None else not source.primary.up
        return min(ttl, STALE_TTL) if down else ttl

    def __init__(self, *, db: Shards, cache: Cache, ttl: CacheTtls) -> None:
        # Entries are filled from the primary (a replica only while it is
        # down): an entry outlives the read that filled it, and a replica that
        # has not yet replayed the write behind an invalidation would put the
        # old value back for a whole TTL. Lists that services fill through
        # `feed_first_page` and the like read as their service says.
        self._db = db
        self._cache = cache
        self._ttl = ttl
        # Decoded entries per exact bytes (storage/cache/memo.py): a hit reuses
        # the records it made last time instead of building new ones.
        self._photos: Memo[bytes, dict[str, Any]] = Memo(orjson.loads)
        self._users: Memo[bytes, UserRecord] = Memo(lambda raw: _user_from(orjson.loads(raw)))
        self._joined: Memo[tuple[bytes, bytes], PhotoRecord] = Memo(self._join)
        self._pages: Memo[bytes, list[PhotoRecord]] = Memo(
            lambda raw: [_photo_from(r) for r in orjson.loads(raw)], max_entries=256
        )

    def __repr__(self) -> str:
        return f"<CachedReads {self._cache.name}>"

    # -- reads ----------------------------------------------------------------

    async def photo(
        self, photo_id: int, viewer_id: int | None = None
    ) -> tuple[PhotoRecord | None, ViewerFlags | None]:
        """The photo with its owner's current fields (liked_by_me False: it is
        per viewer), and the viewer's flags when an entry this call had to read
        from the database brought them in the same statement; None: ask them
        (both entries were cached). The same record object while neither entry
        changes: callers never mutate it."""
        key = f"photo:{photo_id}"
        # A hit in this process is answered without a coroutine (Cache.peek).
        raw = self._cache.peek(key)
        read: list[tuple[PhotoRecord, bool]] = []
        if raw is None:
            raw = await self._raw(
                key,
                lambda: self._photo_row(photo_id, viewer_id, read),
                self._fresh(self._ttl.photo, self._db.photos_of(photo_id)),
            )
        if raw == _NULL:
            return None, None
        if read:
            # This call's own statement (not another caller's, whose value it
            # may have waited for) read the owner's fields and the viewer's
            # flags with the row. `user:{id}` is not filled from them: read
            # before that entry's lease, they could put back a profile whose
            # change invalidated it meanwhile. The next read of this photo
            # fills it, with the flags again (`_user_row`).
            photo, follows = read[0]
            return replace(photo, liked_by_me=False), (photo.liked_by_me, follows)
        owner_id = int(self._photos(raw)["owner_id"])
        owner = self._cache.peek(f"user:{owner_id}")
        flags: list[ViewerFlags] = []
        if owner is None:
            owner = await self._user_raw(owner_id, viewer_id, photo_id, flags)
        if owner == _NULL:
            return None, None
        return self._joined((raw, owner)), (flags[0] if flags else None)

    async def user(self, user_id: int) -> UserRecord | None:
        raw = await self._user_raw(user_id, None, 0, [])
        return None if raw == _NULL else self._users(raw)

    async def user_by_name(self, username: str) -> UserRecord | None:
        key = username.lower()
        user_id = await self._cache.get_or_compute(
            f"uname:{key}",
            lambda: self._user_id(key),
            ttl=self._fresh(self._ttl.profile, self._db.of_username(key)),
        )
        return None if user_id is None else await self.user(int(user_id))

    async def public_first_page(self, limit: int, compute: Callable[[], Awaitable[Rows]]) -> Rows:
        """The first page of newest public photos as anyone signed out sees it
        (`limit` rows), under the namespace `public`: bumped when a photo
        joins or leaves it (ready, deleted, its owner going private or
        renamed); like and comment counts on it are as old as the entry
        (`cache.public_ttl`). `compute` says whether a shard was left out:
        such a page is handed back, never stored."""
        key = f"first:{limit}"
        raw = self._cache.peek(key, "public")  # the front page: a hit nearly always
        if raw is None:
            try:
                raw = await self._raw(
                    key, _whole(compute), self._fresh(self._ttl.public), namespace="public"
                )
            except _PartialPage as page:
                return page.rows, True
        return self._pages(raw), False

    async def feed_first_page(
        self, viewer_id: int, limit: int, compute: Callable[[], Awaitable[Rows]]
    ) -> Rows:
        """The viewer's first feed page (`limit` rows), cached under `feed:{viewer}`
        unless a shard was left out of it."""
        try:
            cached: list[dict[str, Any]] = await self._cache.get_or_compute(
                f"first:{limit}",
                _whole(compute),
                ttl=self._fresh(self._ttl.feed),
                namespace=f"feed:{viewer_id}",
            )
        except _PartialPage as page:
            return page.rows, True
        return [_photo_from(r) for r in cached], False

    # -- invalidation -----------------------------------------------------------

    async def photo_changed(self, *photo_ids: int) -> None:
        await self._cache.delete(*(f"photo:{i}" for i in photo_ids))

    async def users_changed(self, *user_ids: int) -> None:
        await self._cache.delete(*(f"user:{i}" for i in user_ids))

    async def feed_changed(self, viewer_id: int) -> None:
        await self._cache.bump(f"feed:{viewer_id}")

    async def public_changed(self) -> None:
        await self._cache.bump("public")

    # -- sources ----------------------------------------------------------------

    async def _user_raw(
        self, user_id: int, viewer_id: int | None, photo_id: int, flags: list[ViewerFlags]
    ) -> bytes:
        """The `user:{id}` entry; a signed-in viewer's flags on `photo_id` are
        read with the row when it is missing and put in `flags`."""
        return await self._raw(
            f"user:{user_id}",
            lambda: self._user_row(user_id, viewer_id, photo_id, flags),
            self._fresh(self._ttl.profile, self._db.of_user(user_id)),
        )

    async def _raw(
        self,
        key: str,
        compute: Callable[[], Awaitable[Any]],
        ttl: float,
        *,
        namespace: str | None = None,
    ) -> bytes:
        """The entry's encoded bytes, left for this module's memos to decode."""
        raw: bytes = await self._cache.get_or_compute(
            key, compute, ttl=ttl, namespace=namespace, decode=_identity
        )
        return raw

    def _join(self, entries: tuple[bytes, bytes]) -> PhotoRecord:
        row, owner = self._photos(entries[0]), self._users(entries[1])
        return PhotoRecord(
            **{k: v for k, v in row.items() if k != "created_at"},
            created_at=datetime.fromisoformat(row["created_at"]),
            owner_username=owner.username,
            owner_display_name=owner.display_name,
            owner_private=owner.private,
            liked_by_me=False,
        )

    async def _photo_row(
        self, photo_id: int, viewer_id: int | None, read: list[tuple[PhotoRecord, bool]]
    ) -> dict[str, Any] | None:
        apart = self._db.photos is not None
        async with self._db.photos_of(photo_id).read(PRIMARY) as conn:
            seen = await photos_repo.photo_seen_by(
                conn, photo_id, viewer_id, likes_here=self._db.likes is None, follows_here=not apart
            )
        if seen is None:
            return None
        if apart and viewer_id is not None:
            # The follow from the owner's database (its side of every follow).
            owner_id = seen[0].owner_id
            async with self._db.of_user(owner_id).read(PRIMARY) as conn:
                seen = (seen[0], await social_repo.follows(conn, viewer_id, owner_id))
        read.append(seen)
        photo = seen[0]
        row = {k: v for k, v in asdict(photo).items() if k not in _OWNER_FIELDS}
        row["created_at"] = photo.created_at.isoformat()
        return row

    async def _user_row(
        self, user_id: int, viewer_id: int | None, photo_id: int, flags: list[ViewerFlags]
    ) -> dict[str, Any] | None:
        async with self._db.of_user(user_id).read(PRIMARY) as conn:
            if viewer_id is None:
                user = await users_repo.user_by_id(conn, user_id)
            else:
                seen = await users_repo.owner_seen_by(
                    conn, user_id, viewer_id, photo_id, likes_here=self._db.likes is None
                )
                user = None if seen is None else seen[0]
                if seen is not None:
                    flags.append((seen[1], seen[2]))
        if user is None:
            return None
        row = {k: getattr(user, k) for k in _USER_FIELDS}
        row["created_at"] = user.created_at.isoformat()
        return row

    async def _user_id(self, username: str) -> int | None:
        async with self._db.of_username(username).read(PRIMARY) as conn:
            user = await users_repo.user_by_username(conn, username)
        return None if user is None else user.id


# A page's rows, and whether a shard was left out of them.
Rows = tuple[list[PhotoRecord], bool]


class _PartialPage(Exception):
    """Rows a shard was missing from: raised through the cache, which then
    stores nothing (and hands it to every caller waiting for that entry)."""

    def __init__(self, rows: list[PhotoRecord]) -> None:
        super().__init__("a shard was left out of this page")
        self.rows = rows


def _whole(compute: Callable[[], Awaitable[Rows]]) -> Callable[[], Awaitable[list[Any]]]:
    """`compute` as a cache source: the rows as dicts, or _PartialPage."""

    async def rows() -> list[dict[str, Any]]:
        found, partial = await compute()
        if partial:
            raise _PartialPage(found)
        return [_photo_dict(p) for p in found]

    return rows


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

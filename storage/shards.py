"""Shards: one storage router (storage/router.py) per physical database,
and the answer to "which database for this?" (DESIGN.md, "The storage router").

- by ID: the 13 shard bits of every ID name its logical shard, the shard map
  names the database: no router call, no fan-out (`of_id`);
- by user: a user's rows (photos, likes and comments on them, notifications)
  live on the user's shard, so a user's id answers too (`of_user`);
- by username: the router says which logical shard a name belongs to
  (`of_username`), and new rows of that user are made with it (`logical_for`);
- everything global (the shard map, the username directory, payments) lives in
  the catalog: `PICSHARE_DATABASE_URL` when shards are set, else the first;
- across shards: `gather` asks every database at once, each within a time
  budget; one that does not answer in time is left out and the request is
  marked partial (`PicShare-Partial: 1`), never failed.

The single-database default is this same code with one shard: every answer is
that database, and `gather` asks it alone."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Generic, TypeVar

from storage import scope as request_scope
from storage.ids import shard_of
from storage.router import PRIMARY, Databases, DatabaseStatus, DatabaseUnavailable
from storage.shard_map import ShardMap
from storage.shard_map import load as load_map
from storage.shard_routers import ShardRouter
from storage.table_groups import COMMENTS, LIKES, NOTIFICATIONS, PAYMENTS, PHOTOS, SEARCH

log = logging.getLogger(__name__)
T = TypeVar("T")


@dataclass(frozen=True, slots=True)
class Gathered(Generic[T]):
    """What the shards that answered in time returned, in shard order."""

    results: list[T]
    partial: bool


class Shards:
    __slots__ = ("_budget", "_groups", "_only", "catalog", "map", "physical", "router")

    def __init__(
        self,
        physical: Sequence[Databases],
        *,
        router: ShardRouter,
        shard_map: ShardMap,
        catalog: Databases | None = None,
        budget: float = 2.0,
        groups: Mapping[str, Databases] | None = None,
    ) -> None:
        if not physical:
            raise ValueError("at least one database")
        self.physical = tuple(physical)
        self.router = router
        self.map = shard_map
        self.catalog = catalog if catalog is not None else self.physical[0]
        self._budget = budget
        self._groups = dict(groups or {})
        # One database: every question has the same answer, asked of no map.
        self._only = self.physical[0] if len(self.physical) == 1 else None

    @classmethod
    def of_one(cls, db: Databases) -> Shards:
        """One database, no sharding (tools and tests over a pool they own)."""
        from storage.shard_routers.hashed import HashRouter

        return cls([db], router=HashRouter(1), shard_map=ShardMap("hash", (0,)))

    def __repr__(self) -> str:
        return f"<Shards {len(self.physical)} databases, {self.map.router} router>"

    @property
    def single(self) -> bool:
        return self._only is not None

    # -- which database --------------------------------------------------------

    def of_id(self, id_: int) -> Databases:
        """The database holding the row with this ID (a user, a photo, a
        comment, a notification): named by the ID itself."""
        if self._only is not None:
            return self._only
        return self.physical[self.map.physical_of(shard_of(id_))]

    def of_logical(self, logical: int) -> Databases:
        """The database holding logical shard `logical` (a token carries its user's)."""
        if self._only is not None:
            return self._only
        return self.physical[self.map.physical_of(logical)]

    # A user's rows live with the user, whose id names its shard.
    of_user = of_id

    def logical_for(self, username: str) -> int:
        """The logical shard a user called `username` belongs to (sign-up)."""
        return self.router.logical_for_username(username.lower())

    def of_username(self, username: str) -> Databases:
        if self._only is not None:
            return self._only
        return self.physical[self.map.physical_of(self.logical_for(username))]

    def by_database(self, ids: Iterable[int]) -> list[tuple[Databases, list[int]]]:
        """`ids` grouped by the database holding them (each group in the given order)."""
        groups: dict[int, list[int]] = {}
        for id_ in ids:
            index = 0 if self._only is not None else self.map.physical_of(shard_of(id_))
            groups.setdefault(index, []).append(id_)
        return [(self.physical[i], groups[i]) for i in sorted(groups)]

    def index_of(self, db: Databases) -> int:
        return self.physical.index(db)

    async def reload_map(self) -> bool:
        """Read the map again from the catalog (a move changes it); whether it changed."""
        async with self.catalog.read(PRIMARY) as conn:
            fresh = await load_map(conn, self.map.router)
        if fresh.version == self.map.version or len(fresh.placement) != len(self.map.placement):
            return False
        self.map = fresh
        return True

    # -- across shards ---------------------------------------------------------

    async def gather(
        self,
        fn: Callable[[Databases], Awaitable[T]],
        *,
        among: Sequence[Databases] | None = None,
        budget: float | None = None,
    ) -> Gathered[T]:
        """`fn` on every database (or `among`) at once. A database that fails or
        takes longer than the budget is left out: the answer is partial."""
        targets = self.physical if among is None else among
        if len(targets) == 1:
            # Alone, a database's error is the request's error, as before shards.
            return Gathered([await fn(targets[0])], False)
        limit = self._budget if budget is None else budget
        tasks = [asyncio.ensure_future(asyncio.wait_for(fn(db), limit)) for db in targets]
        outcomes = await asyncio.gather(*tasks, return_exceptions=True)
        results: list[T] = []
        partial = False
        for db, outcome in zip(targets, outcomes, strict=True):
            if isinstance(outcome, BaseException):
                if not isinstance(outcome, (TimeoutError, DatabaseUnavailable, OSError)):
                    raise outcome
                log.warning("shard %s left out of a read: %r", db.primary.label, outcome)
                partial = True
            else:
                results.append(outcome)
        if partial:
            scope = request_scope.current()
            if scope is not None:
                scope.partial = True
        return Gathered(results, partial)

    @property
    def payments(self) -> Databases:
        """The ledger's database: the PAYMENTS group's own, else the catalog's
        (payments are one ledger for the whole site, on no user's shard)."""
        return self._groups.get(PAYMENTS, self.catalog)

    @property
    def inbox(self) -> Databases | None:
        """The NOTIFICATIONS group's own database, or None: then a user's
        notifications live on the user's shard (picshare/notify.py)."""
        return self._groups.get(NOTIFICATIONS)

    def inbox_of(self, user_id: int) -> Databases:
        """The database holding a user's notifications."""
        return self._groups.get(NOTIFICATIONS) or self.of_user(user_id)

    def by_inbox(self, user_ids: Sequence[int]) -> list[tuple[Databases, list[int]]]:
        """`user_ids` grouped by the database holding their notifications."""
        return self._by_group(NOTIFICATIONS, user_ids)

    @property
    def photos(self) -> Databases | None:
        """The PHOTOS group's own database, or None: then a user's photos
        (and tags) live with the user, on the owner's shard, beside the
        follows the privacy rule reads (storage/visibility.py)."""
        return self._groups.get(PHOTOS)

    def photos_of(self, id_: int) -> Databases:
        """The database holding a photo (by its id) or a user's photos (by
        the user's id: a photo's id carries its owner's logical shard)."""
        return self._groups.get(PHOTOS) or self.of_id(id_)

    def by_photos(self, ids: Sequence[int]) -> list[tuple[Databases, list[int]]]:
        """Photo or owner ids grouped by the database holding those photos."""
        return self._by_group(PHOTOS, ids)

    @property
    def photo_dbs(self) -> tuple[Databases, ...]:
        """Every database holding photos (a list across owners asks each)."""
        apart = self._groups.get(PHOTOS)
        return (apart,) if apart is not None else self.physical

    @property
    def likes(self) -> Databases | None:
        """The LIKES group's own database, or None: then a photo's likes live
        with the photo, on its shard (picshare/likes.py). Either way one
        database answers both "who liked this photo" (the key, photo first)
        and "which of these did I like" (likes_user, user first)."""
        return self._groups.get(LIKES)

    def likes_of(self, photo_id: int) -> Databases:
        """The database holding a photo's likes."""
        return self._groups.get(LIKES) or self.of_id(photo_id)

    def by_likes(self, photo_ids: Sequence[int]) -> list[tuple[Databases, list[int]]]:
        """`photo_ids` grouped by the database holding their likes."""
        return self._by_group(LIKES, photo_ids)

    @property
    def comments(self) -> Databases | None:
        """The COMMENTS group's own database, or None: then a photo's
        comments live with the photo, on its shard (picshare/comments.py)."""
        return self._groups.get(COMMENTS)

    def comments_of(self, id_: int) -> Databases:
        """The database holding a photo's comments, or a comment (by its id,
        which carries its photo's logical shard)."""
        return self._groups.get(COMMENTS) or self.of_id(id_)

    def by_comments(self, photo_ids: Sequence[int]) -> list[tuple[Databases, list[int]]]:
        """`photo_ids` grouped by the database holding their comments."""
        return self._by_group(COMMENTS, photo_ids)

    def _by_group(self, group: str, ids: Sequence[int]) -> list[tuple[Databases, list[int]]]:
        """`ids` grouped by database: all in the group's own, if it has one,
        else where each ID names."""
        own = self._groups.get(group)
        if own is not None:
            return [(own, list(ids))] if ids else []
        return self.by_database(ids)

    @property
    def search_db(self) -> Databases | None:
        """The SEARCH group's own database, or None: then the index lives
        beside its sources (a photo's and a user's rows on the owner's shard,
        each shard's tag counts on that shard; picshare/search_index.py)."""
        return self._groups.get(SEARCH)

    def search_of(self, id_: int) -> Databases:
        """The database holding the index rows of a photo or user (by its id)."""
        return self._groups.get(SEARCH) or self.of_id(id_)

    def search_for(self, source: Databases) -> Databases:
        """The database holding the index rows made from `source`'s rows."""
        return self._groups.get(SEARCH) or source

    @property
    def search_dbs(self) -> tuple[Databases, ...]:
        """Every database holding index rows (a search asks each)."""
        apart = self._groups.get(SEARCH)
        return (apart,) if apart is not None else self.physical

    # -- operators -------------------------------------------------------------

    def everything(self) -> list[Databases]:
        """Every database once: the catalog (when it is its own), the shards,
        and the table groups' own databases."""
        found: list[Databases] = []
        for db in (self.catalog, *self.physical, *self._groups.values()):
            if db not in found:
                found.append(db)
        return found

    def primary_down(self) -> bool:
        """Whether some shard's primary is down (what a cache hit then may be missing)."""
        # A loop, not any() over a generator: asked on every answered request.
        for db in self.physical:  # noqa: SIM110
            if not db.primary.up:
                return True
        return False

    def status(self) -> list[DatabaseStatus]:
        return [status for db in self.everything() for status in db.status()]

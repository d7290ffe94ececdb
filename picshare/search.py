"""Search across users, tags and captions, honouring privacy and moderation.

Everything is searched in the search index (`search_users`, `search_tags`,
`search_photos`), which the `search` consumer keeps from domain events
(picshare/search_index.py). The index is beside its sources on every shard
(each asked at once), or in a database of its own: then the caption's
candidates are found there and the privacy rule runs again on the photos'
own shards, as they are."""

from __future__ import annotations

import heapq
import re
import unicodedata
from dataclasses import dataclass
from itertools import islice
from typing import TypeVar

from picshare.errors import invalid
from picshare.likes import Likes
from picshare.text import normalize_tag
from storage import search_repo, social_repo
from storage.records import PhotoRecord, UserListEntry
from storage.router import ANY, Databases, read_your_writes
from storage.shards import Gathered, Shards

K = TypeVar("K", search_repo.UserKey, search_repo.PhotoKey)
V = TypeVar("V", UserListEntry, PhotoRecord)

MAX_QUERY = 100
# Photos are ranked among the newest matches: this many per `limit` shown.
CANDIDATES_PER_RESULT = 5
# The newest index rows tried first (per database): a common word finds its
# candidates there; a word with fewer than `limit` matches in them is rare
# enough that all of its matches are few, about `limit` per this many photos
# (README, "Tags and search"). Walking the window costs ~2.5 µs a row.
RECENT_WINDOW = 1_000
_WORD = re.compile(r"\w+")


@dataclass(frozen=True, slots=True)
class SearchResult:
    users: list[UserListEntry]
    tags: list[tuple[str, int]]
    photos: list[PhotoRecord]
    # A shard did not answer in time: some matches may be missing.
    partial: bool = False


class SearchService:
    __slots__ = ("_db", "_likes")

    def __init__(self, *, db: Shards, likes: Likes) -> None:
        self._db = db
        # Where likes live (liked_by_me beside the photos, or marked after).
        self._likes = likes

    async def search(self, query: str | None, viewer_id: int | None, *, limit: int) -> SearchResult:
        text = unicodedata.normalize("NFKC", (query or "").strip())
        if not text:
            raise invalid("q", "is required")
        if "\x00" in text:
            raise invalid("q", "must not contain NUL")
        if len(text) > MAX_QUERY:
            raise invalid("q", f"must be at most {MAX_QUERY} characters")
        username = text.lstrip("@").lower()
        tag = normalize_tag(text)
        words = [w.lower() for w in _WORD.findall(text.lstrip("#@"))][:8]
        # Each word as a prefix ("sun" finds "sunset"), all of them required.
        tsquery = " & ".join(f"{w}:*" for w in words)
        found = await self._db.gather(
            lambda db: self._search_shard(db, username, tag, tsquery, viewer_id, limit),
            among=self._db.search_dbs,
        )
        users = _best([part.users for part in found.results], limit)
        photos = await self._likes.mark(
            viewer_id, _best([part.photos for part in found.results], limit)
        )
        tags = await self._tags(found, limit) if tag else []
        return SearchResult(users, tags, photos, partial=found.partial)

    async def _search_shard(
        self,
        db: Databases,
        username: str,
        tag: str,
        tsquery: str,
        viewer_id: int | None,
        limit: int,
    ) -> _ShardHits:
        """One index database's best matches, ranked as it would rank them
        alone; the privacy rule is applied there when each photo's owner
        lives there, else on the owners' shards (`_photos_apart`)."""
        apart = self._db.search_db is not None
        async with db.read(ANY) as conn:
            users = await search_repo.users(conn, username, limit=limit) if username else []
            # More tags than shown: a tag's total over shards may rank it
            # higher than any one shard does.
            tags = await search_repo.tags(conn, tag, limit=limit * 2) if tag else []
            photos = (
                await search_repo.photos(
                    conn,
                    tsquery,
                    viewer_id=viewer_id,
                    limit=limit,
                    candidates=limit * CANDIDATES_PER_RESULT,
                    window=RECENT_WINDOW,
                    likes_here=self._likes.here,
                )
                if tsquery and not apart
                else []
            )
        if tsquery and apart:
            photos = await self._photos_apart(db, tsquery, viewer_id, limit)
        return _ShardHits(users, tags, photos)

    async def _photos_apart(
        self, index: Databases, tsquery: str, viewer_id: int | None, limit: int
    ) -> list[tuple[search_repo.PhotoKey, PhotoRecord]]:
        """The index in a database of its own: its candidates (by its copy of
        the rule, given whom the viewer follows), then those the viewer may
        see as the photos and owners now are, read on their shards."""
        followees: list[int] = []
        if viewer_id is not None:
            async with self._db.of_user(viewer_id).read(read_your_writes(viewer_id)) as conn:
                followees = await social_repo.followee_ids(conn, viewer_id)
        async with index.read(ANY) as conn:
            found = await search_repo.candidates(
                conn,
                tsquery,
                viewer_id=viewer_id,
                followees=followees,
                limit=limit,
                candidates=limit * CANDIDATES_PER_RESULT,
                window=RECENT_WINDOW,
            )
        if not found:
            return []
        rank = dict(found)
        placed = dict(self._db.by_photos(list(rank)))

        async def visible(db: Databases) -> list[PhotoRecord]:
            async with db.read(read_your_writes(viewer_id)) as conn:
                return await search_repo.visible_photos(
                    conn,
                    placed[db],
                    viewer_id,
                    likes_here=self._likes.here,
                    # Apart from the users, the photos' rule is given them too.
                    followees=None if self._db.photos is None else followees,
                )

        seen = await self._db.gather(visible, among=list(placed))
        ranked = sorted(((-rank[p.id], -p.id), p) for part in seen.results for p in part)
        return ranked[:limit]

    async def _tags(self, found: Gathered[_ShardHits], limit: int) -> list[tuple[str, int]]:
        """The candidate tags' photo counts summed over the shards (one query
        each, for exactly those tags), best first: exact, prefix, fuzzy, each
        by popularity."""
        if len(found.results) == 1:
            # One database's counts are the totals.
            return [(hit.tag, hit.photo_count) for hit in found.results[0].tags[:limit]]
        tiers = {hit.tag: hit.tier for part in found.results for hit in part.tags}
        candidates = sorted(tiers)
        if not candidates:
            return []
        counted = (
            await self._db.gather(
                lambda db: self._tag_counts(db, candidates), among=self._db.search_dbs
            )
        ).results
        totals: dict[str, int] = {}
        for counts in counted:
            for name, count in counts.items():
                totals[name] = totals.get(name, 0) + count
        ranked = sorted(
            ((name, n) for name, n in totals.items() if n > 0),
            key=lambda t: (-tiers[t[0]], -t[1], t[0]),
        )
        return ranked[:limit]

    async def _tag_counts(self, db: Databases, tags: list[str]) -> dict[str, int]:
        async with db.read(ANY) as conn:
            return await search_repo.tag_counts(conn, tags)


@dataclass(frozen=True, slots=True)
class _ShardHits:
    users: list[tuple[search_repo.UserKey, UserListEntry]]
    tags: list[search_repo.TagHit]
    photos: list[tuple[search_repo.PhotoKey, PhotoRecord]]


def _best(parts: list[list[tuple[K, V]]], limit: int) -> list[V]:
    """The first `limit` of several shards' ranked lists, by their sort keys."""
    merged = heapq.merge(*parts, key=lambda pair: pair[0])
    return [value for _, value in islice(merged, limit)]

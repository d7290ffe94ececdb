"""Search across users, tags and captions, honouring privacy and moderation.

Captions are searched in the search index (`search_photos`), which the
`search` consumer keeps from domain events (picshare/search_index.py)."""

from __future__ import annotations

import heapq
import re
import unicodedata
from dataclasses import dataclass
from itertools import islice
from typing import TypeVar

from picshare.errors import invalid
from picshare.text import normalize_tag
from storage import search_repo
from storage.records import PhotoRecord, UserListEntry
from storage.router import ANY, Databases
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
    __slots__ = ("_db",)

    def __init__(self, *, db: Shards) -> None:
        self._db = db

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
            lambda db: self._search_shard(db, username, tag, tsquery, viewer_id, limit)
        )
        users = _best([part.users for part in found.results], limit)
        photos = _best([part.photos for part in found.results], limit)
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
        """One shard's best matches, ranked as it would rank them alone; the
        privacy rule is applied there (each photo's owner lives there)."""
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
                )
                if tsquery
                else []
            )
        return _ShardHits(users, tags, photos)

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
        counted = (await self._db.gather(lambda db: self._tag_counts(db, candidates))).results
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

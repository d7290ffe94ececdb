"""Search across users, tags and captions, honouring privacy and moderation."""

from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass

from picshare.errors import invalid
from picshare.text import normalize_tag
from storage import search_repo
from storage.records import PhotoRecord, UserListEntry
from storage.router import ANY
from storage.shards import Shards

MAX_QUERY = 100
_WORD = re.compile(r"\w+")


@dataclass(frozen=True, slots=True)
class SearchResult:
    users: list[UserListEntry]
    tags: list[tuple[str, int]]
    photos: list[PhotoRecord]


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
        async with self._db.unrouted.read(ANY) as conn:
            users = await search_repo.users(conn, username, limit=limit) if username else []
            tags = await search_repo.tags(conn, tag, limit=limit) if tag else []
            photos = (
                await search_repo.photos(conn, tsquery, viewer_id=viewer_id, limit=limit)
                if tsquery
                else []
            )
        return SearchResult(users, tags, photos)

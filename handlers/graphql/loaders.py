"""Per-request DataLoaders: every nested field that reads storage asks one of
these, so a page of photos costs one batched read per kind of thing per
database (the services group ids with `Shards.by_database`), not one per photo.

Made fresh for each request (and each operation on a socket, see
Context.renew): a loader's cache is what this request has read, never shared
with another viewer nor kept for a later operation.
"""

from __future__ import annotations

from collections.abc import Sequence

from aiohttp import web
from strawberry.dataloader import DataLoader

from picshare import keys
from storage.records import CommentRecord, UserRecord

# A photo's first comments: (photo id, how many).
CommentsKey = tuple[int, int]


class Loaders:
    __slots__ = ("comments", "followed", "users")

    def __init__(self, app: web.Application, viewer_id: int | None) -> None:
        users = app[keys.USERS]
        social = app[keys.SOCIAL]

        async def load_users(ids: Sequence[int]) -> list[UserRecord | None]:
            found = await users.by_ids(list(dict.fromkeys(ids)), viewer_id)
            return [found.get(i) for i in ids]

        async def load_comments(wanted: Sequence[CommentsKey]) -> list[list[CommentRecord]]:
            # One batch per page size asked for (a query asks for one or two).
            by_size: dict[int, list[int]] = {}
            for photo_id, size in wanted:
                by_size.setdefault(size, []).append(photo_id)
            found: dict[CommentsKey, list[CommentRecord]] = {}
            for size, photo_ids in by_size.items():
                latest = await social.latest_comments(
                    list(dict.fromkeys(photo_ids)), viewer_id, limit=size
                )
                found.update(((pid, size), rows) for pid, rows in latest.items())
            return [found[key] for key in wanted]

        async def load_followed(ids: Sequence[int]) -> list[bool]:
            if viewer_id is None:
                return [False for _ in ids]
            followed = await social.followed_among(viewer_id, list(dict.fromkeys(ids)))
            return [i in followed for i in ids]

        self.users: DataLoader[int, UserRecord | None] = DataLoader(load_users)
        self.comments: DataLoader[CommentsKey, list[CommentRecord]] = DataLoader(load_comments)
        self.followed: DataLoader[int, bool] = DataLoader(load_followed)

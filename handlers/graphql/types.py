"""The object types, made from the services' records, and Relay-style
connections (`edges { node cursor }`, `pageInfo { hasNextPage endCursor }`)
for every list. IDs are strings, as in REST (64-bit ids lose precision in
JavaScript). Nested reads go through the request's DataLoaders."""

from __future__ import annotations

from typing import Any, Generic, TypeVar

import strawberry
from strawberry.scalars import JSON

from handlers.graphql.context import Context
from handlers.serialize import iso
from picshare import keys, privacy
from picshare.errors import NotFound
from picshare.pagination import Page, encode_cursor, page_of
from picshare.payments import Receipt
from storage.records import CommentRecord, PhotoRecord, UserRecord

T = TypeVar("T")
Info = strawberry.Info[Context, None]


@strawberry.type
class PageInfo:
    has_next_page: bool
    end_cursor: str | None


@strawberry.type
class Edge(Generic[T]):
    node: T
    item_id: strawberry.Private[int]

    # Made only when asked for: most pages are read by `pageInfo.endCursor`.
    @strawberry.field
    def cursor(self) -> str:
        return encode_cursor(self.item_id)


@strawberry.type
class Connection(Generic[T]):
    edges: list[Edge[T]]
    page_info: PageInfo


def connection(nodes: list[T], ids: list[int], next_cursor: str | None) -> Connection[T]:
    """A page as a connection: each edge's cursor is REST's cursor after that item."""
    edges = [Edge(node=n, item_id=i) for n, i in zip(nodes, ids, strict=True)]
    return Connection(
        edges=edges,
        page_info=PageInfo(
            has_next_page=next_cursor is not None,
            end_cursor=next_cursor
            if next_cursor is not None
            else (encode_cursor(ids[-1]) if ids else None),
        ),
    )


def photo_connection(ctx: Context, page: Page[PhotoRecord]) -> Connection[Photo]:
    return connection(
        [photo_of(ctx, p) for p in page.items], [p.id for p in page.items], page.next_cursor
    )


@strawberry.type
class User:
    """A user. Made from a whole record, or from what a photo or comment row
    carries of its author (id, username, display name: no read at all); the
    other fields then load the record through the request's users loader."""

    id: strawberry.ID
    username: str
    display_name: str
    user_id: strawberry.Private[int]
    record: strawberry.Private[UserRecord | None] = None
    # How the viewer stands, when the read that found the user said it already.
    known_followed: strawberry.Private[bool | None] = None

    async def _whole(self, info: Info) -> UserRecord:
        if self.record is None:
            found = await info.context.loaders.users.load(self.user_id)
            if found is None:
                raise NotFound("no such user")
            self.record = found
        return self.record

    @strawberry.field
    async def bio(self, info: Info) -> str:
        return (await self._whole(info)).bio

    @strawberry.field
    async def private(self, info: Info) -> bool:
        return (await self._whole(info)).private

    @strawberry.field
    async def photo_count(self, info: Info) -> int:
        return (await self._whole(info)).photo_count

    @strawberry.field
    async def follower_count(self, info: Info) -> int:
        return (await self._whole(info)).follower_count

    @strawberry.field
    async def following_count(self, info: Info) -> int:
        return (await self._whole(info)).following_count

    @strawberry.field
    async def created_at(self, info: Info) -> str:
        return iso((await self._whole(info)).created_at)

    # Whether you follow them; null when signed out or yourself.
    @strawberry.field
    async def followed_by_me(self, info: Info) -> bool | None:
        viewer = info.context.viewer_id
        if viewer is None or viewer == self.user_id:
            return None
        if self.known_followed is not None:
            return self.known_followed
        return await info.context.loaders.followed.load(self.user_id)

    # Their photos that you may see, newest first.
    @strawberry.field
    async def photos(
        self, info: Info, first: int | None = None, after: str | None = None
    ) -> Connection[Photo]:
        ctx = info.context
        page = await ctx.app[keys.PHOTOS].list_by_user(
            username=self.username,
            cursor=after,
            limit=ctx.page_size(first),
            viewer_id=ctx.viewer_id,
        )
        return photo_connection(ctx, page)


def user_of(record: UserRecord, *, known_followed: bool | None = None) -> User:
    return User(
        id=strawberry.ID(str(record.id)),
        username=record.username,
        display_name=record.display_name,
        user_id=record.id,
        record=record,
        known_followed=known_followed,
    )


@strawberry.type
class Me(User):
    """You, with your private fields."""

    @strawberry.field
    def email(self) -> str:
        assert self.record is not None
        return self.record.email

    @strawberry.field
    def settings(self) -> JSON:
        assert self.record is not None
        return JSON(self.record.settings)


def me_of(record: UserRecord) -> Me:
    return Me(
        id=strawberry.ID(str(record.id)),
        username=record.username,
        display_name=record.display_name,
        user_id=record.id,
        record=record,
    )


def _author(user_id: int, username: str, display_name: str) -> User:
    return User(
        id=strawberry.ID(str(user_id)),
        username=username,
        display_name=display_name,
        user_id=user_id,
    )


@strawberry.type
class PhotoUrls:
    original: str | None
    large: str | None
    medium: str | None
    thumb: str | None


@strawberry.type
class Comment:
    id: strawberry.ID
    text: str
    photo_id: strawberry.ID
    created_at: str
    record: strawberry.Private[CommentRecord]

    @strawberry.field
    def user(self) -> User:
        c = self.record
        return _author(c.user_id, c.username, c.display_name)


def comment_of(c: CommentRecord) -> Comment:
    return Comment(
        id=strawberry.ID(str(c.id)),
        text=c.text,
        photo_id=strawberry.ID(str(c.photo_id)),
        created_at=iso(c.created_at),
        record=c,
    )


@strawberry.type
class Photo:
    """Plain fields, filled when made (the cheapest fields to resolve), but
    for the owner (from the row: no read) and the comments (the loader)."""

    id: strawberry.ID
    caption: str
    tags: list[str]
    width: int
    height: int
    blurhash: str | None
    status: str
    like_count: int
    comment_count: int
    liked_by_me: bool
    created_at: str
    urls: PhotoUrls
    record: strawberry.Private[PhotoRecord]

    @strawberry.field
    def owner(self) -> User:
        p = self.record
        return _author(p.owner_id, p.owner_username, p.owner_display_name)

    # Newest first.
    @strawberry.field
    async def comments(
        self, info: Info, first: int | None = None, after: str | None = None
    ) -> Connection[Comment]:
        ctx = info.context
        size = ctx.page_size(first)
        if after is not None:
            # A further page of one photo's comments: asked of that photo alone.
            page = await ctx.app[keys.SOCIAL].comments(
                self.record.id, ctx.viewer_id, cursor=after, limit=size
            )
        else:
            rows = await ctx.loaders.comments.load((self.record.id, size))
            page = page_of(rows, size)
        return connection(
            [comment_of(c) for c in page.items], [c.id for c in page.items], page.next_cursor
        )


def photo_of(ctx: Context, p: PhotoRecord) -> Photo:
    media = ctx.app[keys.MEDIA_URLS]
    signed = privacy.signed_media(p)
    return Photo(
        id=strawberry.ID(str(p.id)),
        caption=p.caption,
        tags=p.tags,
        width=p.width,
        height=p.height,
        blurhash=p.blurhash,
        status=str(p.status),
        like_count=p.like_count,
        comment_count=p.comment_count,
        liked_by_me=p.liked_by_me,
        created_at=iso(p.created_at),
        urls=PhotoUrls(
            original=media.url(p.original_key, signed=signed),
            large=media.url(p.large_key, signed=signed),
            medium=media.url(p.medium_key, signed=signed),
            thumb=media.url(p.thumb_key, signed=signed),
        ),
        record=p,
    )


@strawberry.type
class NotificationActor:
    username: str


@strawberry.type
class Notification:
    """As `/ws` frames and `GET /notifications` items carry it (picshare/notifications.py)."""

    id: strawberry.ID
    kind: str
    actor: NotificationActor
    photo_id: strawberry.ID | None
    text: str
    read: bool
    created_at: str

    @classmethod
    def of_event(cls, event: dict[str, Any]) -> Notification:
        photo_id = event.get("photo_id")
        return cls(
            id=strawberry.ID(event["id"]),
            kind=event["kind"],
            actor=NotificationActor(username=event["actor"]["username"]),
            photo_id=None if photo_id is None else strawberry.ID(photo_id),
            text=event["text"],
            read=bool(event.get("read", False)),
            created_at=event["created_at"],
        )


@strawberry.type
class Tag:
    name: str
    photo_count: int


@strawberry.type
class SearchResult:
    users: Connection[User]
    tags: Connection[Tag]
    photos: Connection[Photo]
    partial: bool = strawberry.field(description="A shard did not answer in time.")


@strawberry.type
class LikeState:
    photo_id: strawberry.ID
    like_count: int
    liked: bool


@strawberry.type
class Transfer:
    """A tip just made (as REST's receipt), with your balance after it."""

    id: strawberry.ID
    amount_cents: int
    currency: str
    to: str
    photo_id: strawberry.ID | None
    created_at: str
    balance_cents: int

    @classmethod
    def of_receipt(cls, r: Receipt) -> Transfer:
        return cls(
            id=strawberry.ID(str(r.id)),
            amount_cents=r.amount_cents,
            currency=r.currency,
            to=r.receiver,
            photo_id=None if r.photo_id is None else strawberry.ID(str(r.photo_id)),
            created_at=iso(r.created_at),
            balance_cents=r.balance_cents,
        )

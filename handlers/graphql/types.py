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
    cursor: str


@strawberry.type
class Connection(Generic[T]):
    edges: list[Edge[T]]
    page_info: PageInfo


def connection(nodes: list[T], ids: list[int], next_cursor: str | None) -> Connection[T]:
    """A page as a connection: each edge's cursor is REST's cursor after that item."""
    edges = [Edge(node=n, cursor=encode_cursor(i)) for n, i in zip(nodes, ids, strict=True)]
    return Connection(
        edges=edges,
        page_info=PageInfo(
            has_next_page=next_cursor is not None,
            end_cursor=next_cursor
            if next_cursor is not None
            else (edges[-1].cursor if edges else None),
        ),
    )


def photo_connection(page: Page[PhotoRecord]) -> Connection[Photo]:
    return connection(
        [Photo(record=p) for p in page.items], [p.id for p in page.items], page.next_cursor
    )


@strawberry.type
class User:
    record: strawberry.Private[UserRecord]
    # How the viewer stands, when the read that found the user said it already.
    known_followed: strawberry.Private[bool | None] = None

    @strawberry.field
    def id(self) -> strawberry.ID:
        return strawberry.ID(str(self.record.id))

    @strawberry.field
    def username(self) -> str:
        return self.record.username

    @strawberry.field
    def display_name(self) -> str:
        return self.record.display_name

    @strawberry.field
    def bio(self) -> str:
        return self.record.bio

    @strawberry.field
    def private(self) -> bool:
        return self.record.private

    @strawberry.field
    def photo_count(self) -> int:
        return self.record.photo_count

    @strawberry.field
    def follower_count(self) -> int:
        return self.record.follower_count

    @strawberry.field
    def following_count(self) -> int:
        return self.record.following_count

    @strawberry.field
    def created_at(self) -> str:
        return iso(self.record.created_at)

    # Whether you follow them; null when signed out or yourself.
    @strawberry.field
    async def followed_by_me(self, info: Info) -> bool | None:
        viewer = info.context.viewer_id
        if viewer is None or viewer == self.record.id:
            return None
        if self.known_followed is not None:
            return self.known_followed
        return await info.context.loaders.followed.load(self.record.id)

    # Their photos that you may see, newest first.
    @strawberry.field
    async def photos(
        self, info: Info, first: int | None = None, after: str | None = None
    ) -> Connection[Photo]:
        ctx = info.context
        page = await ctx.app[keys.PHOTOS].list_by_user(
            username=self.record.username,
            cursor=after,
            limit=ctx.page_size(first),
            viewer_id=ctx.viewer_id,
        )
        return photo_connection(page)


@strawberry.type
class Me(User):
    """You, with your private fields."""

    @strawberry.field
    def email(self) -> str:
        return self.record.email

    @strawberry.field
    def settings(self) -> JSON:
        return JSON(self.record.settings)


async def user_of(info: Info, user_id: int) -> User:
    found = await info.context.loaders.users.load(user_id)
    if found is None:
        raise NotFound("no such user")
    return User(record=found)


@strawberry.type
class PhotoUrls:
    original: str | None
    large: str | None
    medium: str | None
    thumb: str | None


@strawberry.type
class Comment:
    record: strawberry.Private[CommentRecord]

    @strawberry.field
    def id(self) -> strawberry.ID:
        return strawberry.ID(str(self.record.id))

    @strawberry.field
    def text(self) -> str:
        return self.record.text

    @strawberry.field
    def photo_id(self) -> strawberry.ID:
        return strawberry.ID(str(self.record.photo_id))

    @strawberry.field
    def created_at(self) -> str:
        return iso(self.record.created_at)

    @strawberry.field
    async def user(self, info: Info) -> User:
        return await user_of(info, self.record.user_id)


@strawberry.type
class Photo:
    record: strawberry.Private[PhotoRecord]

    @strawberry.field
    def id(self) -> strawberry.ID:
        return strawberry.ID(str(self.record.id))

    @strawberry.field
    async def owner(self, info: Info) -> User:
        return await user_of(info, self.record.owner_id)

    @strawberry.field
    def caption(self) -> str:
        return self.record.caption

    @strawberry.field
    def tags(self) -> list[str]:
        return self.record.tags

    @strawberry.field
    def width(self) -> int:
        return self.record.width

    @strawberry.field
    def height(self) -> int:
        return self.record.height

    @strawberry.field
    def blurhash(self) -> str | None:
        return self.record.blurhash

    @strawberry.field
    def status(self) -> str:
        return str(self.record.status)

    @strawberry.field
    def like_count(self) -> int:
        return self.record.like_count

    @strawberry.field
    def comment_count(self) -> int:
        return self.record.comment_count

    @strawberry.field
    def liked_by_me(self) -> bool:
        return self.record.liked_by_me

    @strawberry.field
    def created_at(self) -> str:
        return iso(self.record.created_at)

    @strawberry.field
    def urls(self, info: Info) -> PhotoUrls:
        p = self.record
        media = info.context.app[keys.MEDIA_URLS]
        signed = privacy.signed_media(p)
        return PhotoUrls(
            original=media.url(p.original_key, signed=signed),
            large=media.url(p.large_key, signed=signed),
            medium=media.url(p.medium_key, signed=signed),
            thumb=media.url(p.thumb_key, signed=signed),
        )

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
            [Comment(record=c) for c in page.items], [c.id for c in page.items], page.next_cursor
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

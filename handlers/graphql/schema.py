"""The schema of CONTRACT.md ("GraphQL"): every resolver calls the service
its REST twin calls, with the same viewer, so the same visibility rules hold
(a private or rejected photo is NOT_FOUND here as it is 404 there)."""

from __future__ import annotations

from collections.abc import AsyncGenerator, Awaitable, Iterable
from typing import Any

import strawberry
from graphql import GraphQLError
from strawberry.extensions import ParserCache, ValidationCache
from strawberry.scalars import JSON
from strawberry.types import ExecutionContext as StrawberryExecutionContext
from strawberry.types import ExecutionResult
from strawberry.types.graphql import OperationType

from handlers.graphql import compiled, errors, limits, live
from handlers.graphql.context import Context
from handlers.graphql.limits import Limits
from handlers.graphql.types import (
    Comment,
    Connection,
    Info,
    LikeState,
    Me,
    Notification,
    Photo,
    SearchResult,
    Tag,
    Transfer,
    User,
    comment_of,
    connection,
    me_of,
    photo_connection,
    photo_of,
    user_of,
)
from handlers.idempotency import check_key
from picshare import keys
from picshare.config import GraphQLSettings
from picshare.errors import NotFound
from picshare.notifications import event_of
from storage.ids import parse_id

SEARCH_LIMIT = 10


def _id(raw: strawberry.ID, what: str) -> int:
    parsed = parse_id(str(raw))
    if parsed is None:
        raise NotFound(f"no such {what}")
    return parsed


@strawberry.type
class Query:
    # You, or null when signed out.
    @strawberry.field
    def me(self, info: Info) -> Me | None:
        viewer = info.context.viewer
        return None if viewer is None else me_of(viewer)

    @strawberry.field
    async def user(self, info: Info, username: str) -> User:
        ctx = info.context
        profile = await ctx.app[keys.SOCIAL].profile(username, ctx.viewer_id)
        relation = profile.relationship
        return user_of(profile.user, known_followed=relation is not None and relation.following)

    @strawberry.field
    async def photo(self, info: Info, id: strawberry.ID) -> Photo:
        ctx = info.context
        return photo_of(ctx, await ctx.app[keys.PHOTOS].get(_id(id, "photo"), ctx.viewer_id))

    # A user's photos, a tag's, or the newest public ones.
    @strawberry.field
    async def photos(
        self,
        info: Info,
        first: int | None = None,
        after: str | None = None,
        user: str | None = None,
        tag: str | None = None,
    ) -> Connection[Photo]:
        ctx = info.context
        page = await ctx.app[keys.PHOTOS].browse(
            username=user,
            tag=tag,
            cursor=after,
            limit=ctx.page_size(first),
            viewer_id=ctx.viewer_id,
        )
        return photo_connection(ctx, page)

    # Your home feed: you and the people you follow, newest first.
    @strawberry.field
    async def feed(
        self, info: Info, first: int | None = None, after: str | None = None
    ) -> Connection[Photo]:
        ctx = info.context
        viewer = ctx.require_viewer()
        page = await ctx.app[keys.PHOTOS].feed(
            viewer_id=viewer.id, cursor=after, limit=ctx.page_size(first)
        )
        return photo_connection(ctx, page)

    @strawberry.field
    async def search(self, info: Info, q: str) -> SearchResult:
        ctx = info.context
        found = await ctx.app[keys.SEARCH].search(q, ctx.viewer_id, limit=SEARCH_LIMIT)
        users = await ctx.loaders.users.load_many([u.user_id for u in found.users])
        listed = [(e, u) for e, u in zip(found.users, users, strict=True) if u is not None]
        return SearchResult(
            users=connection([user_of(u) for _, u in listed], [e.id for e, _ in listed], None),
            tags=connection(
                [Tag(name=t, photo_count=n) for t, n in found.tags],
                list(range(1, len(found.tags) + 1)),
                None,
            ),
            photos=connection(
                [photo_of(ctx, p) for p in found.photos], [p.id for p in found.photos], None
            ),
            partial=found.partial,
        )

    # Your notifications, newest first.
    @strawberry.field
    async def notifications(
        self, info: Info, first: int | None = None, after: str | None = None
    ) -> Connection[Notification]:
        ctx = info.context
        viewer = ctx.require_viewer()
        inbox = await ctx.app[keys.NOTIFICATIONS].inbox(
            viewer.id, cursor=after, limit=ctx.page_size(first)
        )
        items = inbox.page.items
        return connection(
            [Notification.of_event(event_of(n)) for n in items],
            [n.id for n in items],
            inbox.page.next_cursor,
        )


@strawberry.type
class Mutation:
    @strawberry.mutation
    async def like_photo(self, info: Info, photo_id: strawberry.ID) -> LikeState:
        user = info.context.require_viewer()
        state = await info.context.app[keys.SOCIAL].like(_id(photo_id, "photo"), user)
        return LikeState(photo_id=photo_id, like_count=state.like_count, liked=state.liked)

    @strawberry.mutation
    async def unlike_photo(self, info: Info, photo_id: strawberry.ID) -> LikeState:
        user = info.context.require_viewer()
        state = await info.context.app[keys.SOCIAL].unlike(_id(photo_id, "photo"), user)
        return LikeState(photo_id=photo_id, like_count=state.like_count, liked=state.liked)

    @strawberry.mutation
    async def add_comment(self, info: Info, photo_id: strawberry.ID, text: str) -> Comment:
        user = info.context.require_viewer()
        made = await info.context.app[keys.SOCIAL].add_comment(_id(photo_id, "photo"), user, text)
        return comment_of(made)

    # The comment's author or the photo's owner; its id.
    @strawberry.mutation
    async def delete_comment(self, info: Info, comment_id: strawberry.ID) -> strawberry.ID:
        user = info.context.require_viewer()
        await info.context.app[keys.SOCIAL].delete_comment(_id(comment_id, "comment"), user.id)
        return comment_id

    # Follow, or ask to (private accounts); idempotent.
    @strawberry.mutation
    async def follow(self, info: Info, username: str) -> User:
        user = info.context.require_viewer()
        profile = await info.context.app[keys.SOCIAL].follow(username, user)
        relation = profile.relationship
        return user_of(profile.user, known_followed=relation is not None and relation.following)

    # Unfollow, or withdraw the request; idempotent.
    @strawberry.mutation
    async def unfollow(self, info: Info, username: str) -> User:
        user = info.context.require_viewer()
        profile = await info.context.app[keys.SOCIAL].unfollow(username, user)
        relation = profile.relationship
        return user_of(profile.user, known_followed=relation is not None and relation.following)

    # Your photo and its files; its id.
    @strawberry.mutation
    async def delete_photo(self, info: Info, photo_id: strawberry.ID) -> strawberry.ID:
        user = info.context.require_viewer()
        await info.context.app[keys.PHOTOS].delete(_id(photo_id, "photo"), user.id)
        return photo_id

    # Change what is given; the rest stays.
    @strawberry.mutation
    async def update_profile(
        self,
        info: Info,
        display_name: str | None = None,
        bio: str | None = None,
        private: bool | None = None,
        settings: JSON | None = None,
    ) -> Me:
        user = info.context.require_viewer()
        given: dict[str, Any] = {
            "display_name": display_name,
            "bio": bio,
            "private": private,
            "settings": settings,
        }
        changes = {k: v for k, v in given.items() if v is not None}
        updated = await info.context.app[keys.USERS].update_profile(user.id, changes)
        return me_of(updated)

    # Tip a user (optionally for one of their photos). `idempotencyKey` does
    # what the Idempotency-Key header does for `POST /payments/tips`: the same
    # key again returns the transfer it made instead of making another.
    @strawberry.mutation
    async def tip(
        self,
        info: Info,
        to: str,
        amount_cents: int,
        idempotency_key: str,
        photo_id: strawberry.ID | None = None,
    ) -> Transfer:
        user = info.context.require_viewer()
        check_key(idempotency_key)
        receipt = await info.context.app[keys.PAYMENTS].tip(
            user,
            to,
            amount_cents,
            None if photo_id is None else str(photo_id),
            request_key=idempotency_key,
        )
        return Transfer.of_receipt(receipt)


@strawberry.type
class Subscription:
    # Your notifications as they happen (as `/ws` sends them).
    @strawberry.subscription
    async def notifications(self, info: Info) -> AsyncGenerator[Notification, None]:
        user = info.context.require_viewer()
        async for event in live.notifications_of(info.context.app, user.id):
            yield Notification.of_event(event)


class PicShareSchema(strawberry.Schema):
    """Strawberry's schema with a fast path for queries (compiled.py): a
    query document is parsed, validated and compiled once, its limits
    measured once per set of `first` values, and run without graphql-core's
    field-by-field executor; anything else, and any query the fast path
    cannot finish, is strawberry's as before."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.plans = compiled.Plans(self._schema, self.config)

    async def execute(
        self,
        query: str | None,
        variable_values: dict[str, Any] | None = None,
        context_value: Any | None = None,
        root_value: Any | None = None,
        operation_name: str | None = None,
        allowed_operation_types: Iterable[OperationType] | None = None,
        operation_extensions: dict[str, Any] | None = None,
    ) -> ExecutionResult:
        def slow() -> Awaitable[ExecutionResult]:
            return super(PicShareSchema, self).execute(
                query,
                variable_values,
                context_value,
                root_value,
                operation_name,
                allowed_operation_types,
                operation_extensions,
            )

        if (
            query is None
            or not isinstance(context_value, Context)
            or context_value.socket  # authenticated again first, by Limits
            or (
                allowed_operation_types is not None
                and OperationType.QUERY not in allowed_operation_types
            )
        ):
            return await slow()
        settings = context_value.app[keys.SETTINGS]
        plan = self.plans.get(query, operation_name, settings.graphql.document_cache)
        if plan is None:
            return await slow()
        executor = self.execution_context_class.build(
            self._schema,
            plan.document,
            root_value,
            context_value,
            variable_values,
            operation_name,
            operation_extensions=operation_extensions,
        )
        if isinstance(executor, list):
            return await slow()  # variables that do not fit: strawberry says why
        depth, cost = compiled.measured(
            plan, executor.variable_values.coerced, settings.pagination.default_limit
        )
        try:
            limits.check(settings.graphql, depth, cost)
            await limits.charge(context_value, plan.operation, cost)
        except Exception:
            # Refused (or the limiter failed): strawberry's Limits says so,
            # with the code it gives for any operation.
            return await slow()
        try:
            data = await compiled.run(plan, executor)
        except Exception:
            # Run again by strawberry, for graphql-core's errors and partial
            # data; counted against the rate limit once already.
            token = limits.ALREADY_CHARGED.set(True)
            try:
                return await slow()
            finally:
                limits.ALREADY_CHARGED.reset(token)
        return ExecutionResult(data=data, errors=None)

    def process_errors(
        self,
        errors_: list[GraphQLError],
        execution_context: StrawberryExecutionContext | None = None,
    ) -> None:
        # The client's mistakes are answers, not log lines; bugs are logged
        # once, with their traceback, when given their code (errors.py). Given
        # here, before any transport formats them: subscriptions' errors carry
        # their code too.
        for error in errors_:
            errors.annotate(error)


def make_schema() -> PicShareSchema:
    size = GraphQLSettings().document_cache
    return PicShareSchema(
        query=Query,
        mutation=Mutation,
        subscription=Subscription,
        # What the fast path leaves to strawberry (mutations, subscriptions,
        # introspection) is parsed and validated once per process too.
        extensions=[
            lambda: ParserCache(maxsize=size),
            lambda: ValidationCache(maxsize=size),
            Limits,
        ],
    )


# Not loop-bound: one per process, shared by every app built in it.
SCHEMA = make_schema()
